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
    """The stored key of a serial (``ca_certificate.serial``): lowercase hex, no leading zeros.
    Shown to people only through :func:`openssl_serial`."""
    return format(serial, "x")


def openssl_serial(serial: int | str) -> str:
    """A serial as ``openssl x509 -serial`` prints it: uppercase hex, whole octets (a leading
    zero kept: every serial of ours starts with the octet 01), so an operator can compare the
    two by eye. Takes the number or its stored key."""
    number = serial if isinstance(serial, int) else int(serial, 16)
    digits = format(number, "X")
    return digits.rjust(len(digits) + len(digits) % 2, "0")


def parse_serial(text: str) -> int:
    """Hex as printed by openssl (any case, leading zeros or not, optional colons or 0x)."""
    cleaned = text.strip().lower().replace(":", "")
    cleaned = cleaned.removeprefix("0x")
    if not cleaned or len(cleaned) > 42 or any(c not in "0123456789abcdef" for c in cleaned):
        raise ValueError("not a hexadecimal serial number")
    return int(cleaned, 16)
