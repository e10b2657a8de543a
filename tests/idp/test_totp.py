"""HOTP (RFC 4226) and TOTP (RFC 6238) against the RFCs' own test vectors, and the
verification rules: ±1 step of drift, no replay of an accepted step."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from idp import totp

RFC_SEED_SHA1 = b"12345678901234567890"
RFC_SEED_SHA256 = b"12345678901234567890123456789012"
RFC_SEED_SHA512 = b"1234567890123456789012345678901234567890123456789012345678901234"


@pytest.mark.parametrize(
    ("counter", "expected"),
    # RFC 4226 Appendix D
    [
        (0, "755224"),
        (1, "287082"),
        (2, "359152"),
        (3, "969429"),
        (4, "338314"),
        (5, "254676"),
        (6, "287922"),
        (7, "162583"),
        (8, "399871"),
        (9, "520489"),
    ],
)
def test_hotp_rfc4226_appendix_d(counter: int, expected: str) -> None:
    assert totp.hotp(RFC_SEED_SHA1, counter) == expected


@pytest.mark.parametrize(
    ("unix_time", "step", "expected"),
    # RFC 6238 Appendix B, SHA1 rows (8 digits)
    [
        (59, 0x1, "94287082"),
        (1111111109, 0x23523EC, "07081804"),
        (1111111111, 0x23523ED, "14050471"),
        (1234567890, 0x273EF07, "89005924"),
        (2000000000, 0x3F940AA, "69279037"),
        (20000000000, 0x27BC86AA, "65353130"),
    ],
)
def test_totp_rfc6238_appendix_b_sha1(unix_time: int, step: int, expected: str) -> None:
    assert totp.time_step(unix_time) == step
    assert totp.totp(RFC_SEED_SHA1, unix_time, digits=8) == expected
    moment = datetime.fromtimestamp(unix_time, UTC)
    assert totp.totp(RFC_SEED_SHA1, moment, digits=8) == expected


@pytest.mark.parametrize(
    ("seed", "algorithm", "unix_time", "expected"),
    # RFC 6238 Appendix B, the other algorithms (with their seeds of the reference code)
    [
        (RFC_SEED_SHA256, "SHA256", 59, "46119246"),
        (RFC_SEED_SHA256, "SHA256", 1111111109, "68084774"),
        (RFC_SEED_SHA512, "SHA512", 59, "90693936"),
        (RFC_SEED_SHA512, "SHA512", 20000000000, "47863826"),
    ],
)
def test_totp_rfc6238_appendix_b_other_algorithms(
    seed: bytes, algorithm: str, unix_time: int, expected: str
) -> None:
    assert totp.totp(seed, unix_time, digits=8, algorithm=algorithm) == expected


NOW = datetime(2026, 11, 21, 10, 0, 15, tzinfo=UTC)


def test_current_step_and_one_step_either_side_are_accepted_but_not_two() -> None:
    key = totp.new_secret()
    current = totp.time_step(NOW)
    for offset in (-1, 0, 1):
        code = totp.totp(key, NOW + timedelta(seconds=30 * offset))
        assert totp.matching_step(key, code, now=NOW, last_used_step=None) == current + offset
    for offset in (-2, 2):
        code = totp.totp(key, NOW + timedelta(seconds=30 * offset))
        assert totp.matching_step(key, code, now=NOW, last_used_step=None) is None


def test_a_used_step_or_an_earlier_one_is_refused() -> None:
    key = totp.new_secret()
    code = totp.totp(key, NOW)
    step = totp.matching_step(key, code, now=NOW, last_used_step=None)
    assert step == totp.time_step(NOW)
    assert totp.matching_step(key, code, now=NOW, last_used_step=step) is None
    earlier = totp.totp(key, NOW - timedelta(seconds=30))
    assert totp.matching_step(key, earlier, now=NOW, last_used_step=step) is None
    later = totp.totp(key, NOW + timedelta(seconds=30))
    assert totp.matching_step(key, later, now=NOW, last_used_step=step) == step + 1


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "12345a", "١٢٣٤٥٦"])
def test_malformed_codes_are_refused(bad: str) -> None:
    assert totp.matching_step(totp.new_secret(), bad, now=NOW, last_used_step=None) is None


def test_spaces_typed_inside_the_code_are_ignored() -> None:
    key = totp.new_secret()
    code = totp.totp(key, NOW)
    assert totp.matching_step(key, f" {code[:3]} {code[3:]} ", now=NOW, last_used_step=None)


def test_provisioning_uri_carries_the_secret_and_issuer() -> None:
    key = totp.new_secret()
    uri = totp.provisioning_uri(key, account_name="nguyen.van.an", issuer="sso.laocai.gov.vn")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/sso.laocai.gov.vn:nguyen.van.an"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    padded = query["secret"] + "=" * (-len(query["secret"]) % 8)
    assert base64.b32decode(padded) == key
    assert query["issuer"] == "sso.laocai.gov.vn"
    assert (query["digits"], query["period"], query["algorithm"]) == ("6", "30", "SHA1")
    assert len(key) == 20
