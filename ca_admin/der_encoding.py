"""Hand-written DER for the few structures signed on every request (RFC 3161 tokens).

asn1crypto builds a SignedData that embeds a certificate by re-encoding the whole certificate
tree at every dump: about 40 ms a token, 40 times the budget. Every part that is the same in each
token is encoded once (with asn1crypto or ``cryptography``) and kept as bytes; these helpers put
the few varying parts around them (X.690 §8 and §10: definite lengths, minimal integers).
"""

from __future__ import annotations

from datetime import UTC, datetime

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OBJECT_IDENTIFIER = 0x06
GENERALIZED_TIME = 0x18


def length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


def tlv(tag: int, *contents: bytes) -> bytes:
    body = b"".join(contents)
    return bytes([tag]) + length(len(body)) + body


def integer(value: int) -> bytes:
    """A non-negative INTEGER in its fewest octets (a leading zero when the top bit is set)."""
    if value < 0:
        raise ValueError("only non-negative integers are encoded here")
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def generalized_time(moment: datetime) -> bytes:
    """X.690 §11.7: UTC ("Z"), fractional seconds without trailing zeros, none if zero."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y%m%d%H%M%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return tlv(GENERALIZED_TIME, (text + "Z").encode("ascii"))


def set_of(*elements: bytes) -> bytes:
    """X.690 §11.6: the elements of a DER SET OF in ascending order of their encodings."""
    return tlv(SET, *sorted(elements))
