"""HTTP-Redirect and HTTP-POST bindings (SAML Bindings §3.4, §3.5): getting a message out of a
request, and putting ours into a URL or a form.

HTTP-Redirect carries the message DEFLATE-compressed and base64-encoded in the query; its
signature covers the query string itself (§3.4.4.1), computed over the parameters exactly as
they were URL-encoded by the sender, so it is checked on the raw query, never on decoded
values.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from idp.saml.vocabulary import ECDSA_SHA256, HTTP_POST, HTTP_REDIRECT, RSA_SHA256, RSA_SHA512
from idp.saml.xml_parsing import MAX_DOCUMENT_BYTES
from keys import CertifiedKey

# RelayState: at most 80 bytes (§3.4.3, §3.5.3); some SPs send more, so allow a little slack
# but never an unbounded value that we would echo back.
MAX_RELAY_STATE = 1024
_HASHES: dict[str, hashes.HashAlgorithm] = {
    RSA_SHA256: hashes.SHA256(),
    RSA_SHA512: hashes.SHA512(),
    ECDSA_SHA256: hashes.SHA256(),
}
SIGNATURE_ALGORITHM_OF_KEY = {"RS256": RSA_SHA256, "ES256": ECDSA_SHA256}


class BindingError(ValueError):
    """The message cannot be read from the request (encoding, size, parameters)."""


@dataclass(frozen=True)
class ReceivedMessage:
    """A SAMLRequest or SAMLResponse as it arrived."""

    binding: str
    xml: bytes
    relay_state: str | None
    # HTTP-Redirect only: the raw query string, for the signature check.
    raw_query: str | None = None


def _base64(value: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=False)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise BindingError("not base64") from error


def _inflate(data: bytes) -> bytes:
    # Bounded: a few kilobytes of DEFLATE can expand to gigabytes.
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        xml = inflater.decompress(data, MAX_DOCUMENT_BYTES + 1)
    except zlib.error as error:
        raise BindingError("not DEFLATE data") from error
    if len(xml) > MAX_DOCUMENT_BYTES or inflater.unconsumed_tail:
        raise BindingError("message too large")
    return xml


def _relay_state(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_RELAY_STATE:
        raise BindingError("RelayState too long")
    return value


def from_redirect(query: dict[str, str], raw_query: str, parameter: str) -> ReceivedMessage:
    """§3.4.4.1: ``parameter`` (SAMLRequest or SAMLResponse) from the query of a GET."""
    encoded = query.get(parameter)
    if not encoded:
        raise BindingError(f"{parameter} is missing")
    if len(encoded) > MAX_DOCUMENT_BYTES:
        raise BindingError("message too large")
    return ReceivedMessage(
        binding=HTTP_REDIRECT,
        xml=_inflate(_base64(encoded)),
        relay_state=_relay_state(query.get("RelayState")),
        raw_query=raw_query,
    )


def from_post(form: dict[str, str], parameter: str) -> ReceivedMessage:
    """§3.5.4: ``parameter`` base64-encoded (not compressed) in a form POST."""
    encoded = form.get(parameter)
    if not encoded:
        raise BindingError(f"{parameter} is missing")
    xml = _base64(encoded)
    if len(xml) > MAX_DOCUMENT_BYTES:
        raise BindingError("message too large")
    return ReceivedMessage(
        binding=HTTP_POST, xml=xml, relay_state=_relay_state(form.get("RelayState"))
    )


# --- HTTP-Redirect signatures -----------------------------------------------------------------


def _raw_parameters(raw_query: str) -> dict[str, str]:
    """The query's parameters still URL-encoded, first occurrence of each."""
    found: dict[str, str] = {}
    for pair in raw_query.split("&"):
        name, _, value = pair.partition("=")
        found.setdefault(unquote_plus(name), value)
    return found


def redirect_signature_is_valid(
    raw_query: str, parameter: str, certificates: Sequence[x509.Certificate]
) -> bool:
    """§3.4.4.1: the Signature over ``parameter=...&RelayState=...&SigAlg=...`` (RelayState
    only when present) by one of ``certificates``, with SHA-256 or better."""
    raw = _raw_parameters(raw_query)
    if parameter not in raw or "SigAlg" not in raw or "Signature" not in raw:
        return False
    algorithm = unquote_plus(raw["SigAlg"])
    hash_algorithm = _HASHES.get(algorithm)
    if hash_algorithm is None:
        return False
    names = [parameter, *(["RelayState"] if "RelayState" in raw else []), "SigAlg"]
    signed = "&".join(f"{name}={raw[name]}" for name in names).encode("ascii", "replace")
    try:
        signature = base64.b64decode(unquote_plus(raw["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        return False
    for certificate in certificates:
        public_key = certificate.public_key()
        try:
            if isinstance(public_key, rsa.RSAPublicKey) and algorithm != ECDSA_SHA256:
                public_key.verify(signature, signed, padding.PKCS1v15(), hash_algorithm)
                return True
            if isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm == ECDSA_SHA256:
                public_key.verify(signature, signed, ec.ECDSA(hash_algorithm))
                return True
        except InvalidSignature:
            continue
    return False


def redirect_url(
    location: str,
    parameter: str,
    xml: bytes,
    *,
    relay_state: str | None,
    key: CertifiedKey,
) -> str:
    """§3.4.4.1: ``location`` with the message deflated, base64-encoded and signed."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compressor.compress(xml) + compressor.flush()
    algorithm = SIGNATURE_ALGORITHM_OF_KEY[key.alg]
    parts = [f"{parameter}={quote_plus(base64.b64encode(deflated).decode('ascii'))}"]
    if relay_state is not None:
        parts.append(f"RelayState={quote_plus(relay_state)}")
    parts.append(f"SigAlg={quote_plus(algorithm)}")
    signed = "&".join(parts).encode("ascii")
    if key.alg == "ES256":
        signature = key.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    else:
        signature = key.private_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    parts.append(f"Signature={quote_plus(base64.b64encode(signature).decode('ascii'))}")
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}{'&'.join(parts)}"


def post_value(xml: bytes) -> str:
    """§3.5.4: the form value of a message sent by HTTP-POST."""
    return base64.b64encode(xml).decode("ascii")
