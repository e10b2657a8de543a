"""Certificate serial numbers (RFC 5280 §4.1.2.2; CA/B Forum ≥ 64 random bits).

16 bytes from the CSPRNG behind a fixed 0x01 octet: always positive, always 17 octets (so the
DER INTEGER never needs a sign-padding zero and every CRL entry has the same size), far below
the 20-octet limit, and 128 bits of randomness.
"""

from __future__ import annotations

import secrets

RANDOM_BYTES = 16


def new_serial() -> int:
    return int.from_bytes(b"\x01" + secrets.token_bytes(RANDOM_BYTES), "big")


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def parse_serial(text: str) -> int:
    """Hex as printed by openssl (any case, optional colons or 0x), or decimal with a 'd' prefix."""
    cleaned = text.strip().lower().replace(":", "")
    cleaned = cleaned.removeprefix("0x")
    if not cleaned or len(cleaned) > 42 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError("not a hexadecimal serial number")
    return int(cleaned, 16)
