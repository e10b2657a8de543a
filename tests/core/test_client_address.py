"""The client address behind trusted proxies: rightmost untrusted hop, never the leftmost."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from core.settings import Settings
from core.web.client_address import client_address, client_address_of, parse_networks

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/24", "2001:db8:ffff::/48"])


def address(peer: str | None, *header_lines: tuple[str, str], header="x-forwarded-for"):
    headers = Headers(raw=[(k.encode(), v.encode()) for k, v in header_lines])
    return client_address_of(peer, headers, trusted_proxies=PROXIES, header=header)


def xff(value: str) -> tuple[str, str]:
    return ("x-forwarded-for", value)


def test_the_proxy_appended_entry_wins_over_whatever_the_client_wrote():
    # nginx's $proxy_add_x_forwarded_for: the client's own header, then the real peer.
    assert address("127.0.0.1", xff("198.51.100.1, 203.0.113.7")) == "203.0.113.7"
    assert address("127.0.0.1", xff("1.1.1.1, 2.2.2.2, 203.0.113.7")) == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right():
    assert address("127.0.0.1", xff("6.6.6.6, 203.0.113.7, 10.0.0.4")) == "203.0.113.7"
    assert address("10.0.0.9", xff("203.0.113.7, 10.0.0.4, 127.0.0.1")) == "203.0.113.7"


def test_several_header_lines_are_one_list():
    assert address("127.0.0.1", xff("6.6.6.6"), xff("203.0.113.7")) == "203.0.113.7"


def test_an_untrusted_peer_is_the_client_and_its_headers_are_ignored():
    assert address("203.0.113.9", xff("10.0.0.4")) == "203.0.113.9"
    assert address("203.0.113.9", xff("198.51.100.1, 127.0.0.1")) == "203.0.113.9"


def test_nothing_trusted_means_the_peer_whatever_the_headers():
    headers = Headers({"x-forwarded-for": "198.51.100.1"})
    assert client_address_of("127.0.0.1", headers, trusted_proxies=()) == "127.0.0.1"


def test_a_trusted_peer_without_a_header_is_itself_the_client():
    assert address("127.0.0.1") == "127.0.0.1"


def test_every_hop_trusted_gives_the_leftmost_trusted_hop():
    assert address("127.0.0.1", xff("10.0.0.3, 10.0.0.4")) == "10.0.0.3"


@pytest.mark.parametrize("junk", ["unknown", "_hidden", "not an address", "", "999.1.1.1"])
def test_a_hop_that_is_no_address_stops_at_the_nearest_trusted_proxy(junk):
    assert address("127.0.0.1", xff(f"203.0.113.7, {junk}, 10.0.0.4")) == "10.0.0.4"


def test_ports_brackets_and_mapped_addresses_are_normalised():
    assert address("127.0.0.1", xff("203.0.113.7:5123")) == "203.0.113.7"
    assert address("127.0.0.1", xff("[2001:db8::7]:443")) == "2001:db8::7"
    assert address("127.0.0.1", xff("2001:db8::7")) == "2001:db8::7"
    assert address("::ffff:127.0.0.1", xff("203.0.113.7")) == "203.0.113.7"
    assert address("2001:db8:ffff::1", xff("2001:db8::7")) == "2001:db8::7"


def test_rfc_7239_forwarded_is_read_only_when_chosen():
    forwarded = ("forwarded", 'for=198.51.100.1, for="[2001:db8::7]:4711";proto=https')
    assert address("127.0.0.1", forwarded, header="forwarded") == "2001:db8::7"
    assert address("127.0.0.1", forwarded) == "127.0.0.1"  # x-forwarded-for configured
    # ...and a client's X-Forwarded-For is ignored when the proxies write Forwarded.
    assert address("127.0.0.1", xff("198.51.100.1"), header="forwarded") == "127.0.0.1"
    by_only = ("forwarded", "for=203.0.113.7;by=10.0.0.4, by=10.0.0.5")
    assert address("127.0.0.1", by_only, header="forwarded") == "127.0.0.1"


def test_a_huge_header_is_read_only_from_its_last_hops():
    spoofed = ", ".join(["198.51.100.1"] * 5000 + ["203.0.113.7"])
    assert address("127.0.0.1", xff(spoofed)) == "203.0.113.7"


def test_the_asgi_scope_form_reads_the_peer_and_the_headers():
    scope = {
        "type": "http",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"x-forwarded-for", b"198.51.100.1, 203.0.113.7")],
    }
    assert client_address(scope, trusted_proxies=PROXIES) == "203.0.113.7"
    assert client_address(scope, trusted_proxies=()) == "127.0.0.1"
    assert client_address({"type": "http", "headers": []}, trusted_proxies=PROXIES) is None


def test_settings_parse_a_comma_separated_list_and_refuse_junk(monkeypatch):
    monkeypatch.setenv("COMMUNE_SSO_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1")
    assert [str(n) for n in Settings().trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    monkeypatch.setenv("COMMUNE_SSO_TRUSTED_PROXIES", "10.0.0.0/8, nginx")
    with pytest.raises(ValueError, match="'nginx' is not an IP address or CIDR block"):
        Settings()


def test_settings_read_the_list_from_a_file_as_written_in_the_variable(monkeypatch, tmp_path):
    secret = tmp_path / "trusted-proxies"
    secret.write_text("10.0.0.0/8, 127.0.0.1\n")
    monkeypatch.setenv("COMMUNE_SSO_TRUSTED_PROXIES_FILE", str(secret))
    assert [str(n) for n in Settings().trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32"]


def test_the_old_boolean_is_refused_with_the_setting_that_replaces_it(monkeypatch):
    monkeypatch.setenv("COMMUNE_SSO_TRUST_FORWARDED_FOR", "true")
    with pytest.raises(ValueError, match="COMMUNE_SSO_TRUSTED_PROXIES"):
        Settings()
