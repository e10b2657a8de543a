"""Service URL normalisation and pattern checks (idp.cas.service_urls): pure functions, the
rules every CAS endpoint compares through."""

from __future__ import annotations

import pytest

from core.errors import DomainError
from idp.cas import service_urls


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://app.example.vn", "https://app.example.vn/"),
        ("HTTPS://App.Example.VN:443/a", "https://app.example.vn/a"),
        ("http://127.0.0.1:80/a", "http://127.0.0.1/a"),
        ("https://app.example.vn:8443/a", "https://app.example.vn:8443/a"),
        ("https://app.example.vn/%7Euser/%41", "https://app.example.vn/~user/A"),
        ("https://app.example.vn/a%c3%a1", "https://app.example.vn/a%C3%A1"),
        (
            "https://app.example.vn/cb?next=%2fdocs&x=1",
            "https://app.example.vn/cb?next=%2Fdocs&x=1",
        ),
        ("https://[::1]:8443/", "https://[::1]:8443/"),
    ],
)
def test_normalise(given: str, normalised: str) -> None:
    assert service_urls.normalise(given) == normalised


@pytest.mark.parametrize(
    "look_alike",
    [
        "https://app.example.vn@evil.example/",
        "https://user:pass@app.example.vn/",
        "https://app.example.vn./",
        "https://app.example.vn\\@evil.example/",
        "https://app.example.vn/a/../b",
        "https://app.example.vn/a/./b",
        "https://app.example.vn/a/%2e%2E/b",
        "https://app.example.vn/a%2Fb",
        "https://app.example.vn/a%5cb",
        "https://app.example.vn/a%00",
        "https://app.example.vn/a%zz",
        "https://app.example.vn/a#fragment",
        "https://app.example.vn/a b",
        "https://app.example.vn/a\tb",
        "https://ứng-dụng.vn/",
        "https://app.example.vn:0/",
        "https://app.example.vn:65536/",
        "https://app.example.vn:/",
        "https://app.exa%6dple.vn/",
        "javascript://app.example.vn/",
        "//app.example.vn/",
        "app.example.vn/",
        "",
        "https://" + "a" * 3000 + ".vn/",
    ],
)
def test_look_alikes_and_tricks_are_refused(look_alike: str) -> None:
    with pytest.raises(service_urls.InvalidServiceUrl):
        service_urls.normalise(look_alike)


def test_a_pattern_cannot_reach_past_the_host() -> None:
    """The normalised URL always has a path: the host is followed by ":" or "/"."""
    pattern = service_urls.registrable_pattern(r"^https://app\.example\.vn/.*$")
    assert pattern.fullmatch(service_urls.normalise("https://APP.example.vn"))
    for other in (
        "https://app.example.vn.evil.com/",
        "https://app.example.vn:444/x",
        "http://app.example.vn/x",
    ):
        assert not pattern.fullmatch(service_urls.normalise(other))


@pytest.mark.parametrize(
    "pattern",
    [
        r"https://app\.example\.vn/.*",
        r"^https://app\.example\.vn/.*",
        r"https://app\.example\.vn/.*$",
        r"^https://app\.example\.vn/.*\$",
        r"^http://app\.example\.vn/.*$",
        r"^.*app\.example\.vn.*$",
        r"^https://.*$",
        r"^http://127\.0\.0\.1.*$",
        r"^https://app\.example\.vn/(.*$",
    ],
)
def test_unsafe_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(DomainError):
        service_urls.registrable_pattern(pattern)


def test_ticket_is_appended_to_the_query() -> None:
    assert service_urls.with_ticket("https://a.vn/cb", "ST-1") == "https://a.vn/cb?ticket=ST-1"
    assert service_urls.with_ticket("https://a.vn/cb?x=1", "ST-1") == (
        "https://a.vn/cb?x=1&ticket=ST-1"
    )
