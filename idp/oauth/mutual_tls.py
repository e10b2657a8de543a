"""OAuth 2.0 Mutual-TLS client authentication and certificate-bound tokens, RFC 8705.

TLS ends at our reverse proxy, which forwards the certificate the client presented in the
handshake (core/web/client_certificate.py; it proved possession of the key there). Two client
authentication methods (§2), registered per client:

* ``tls_client_auth`` (§2.1): a certificate from a PKI we trust — our own CA (the ``device``
  profile, or any clientAuth profile): the CA's verdict (:data:`idp.runtime.IdpRuntime.
  certificate_check`: chain, validity, revocation from the CA's own status table) must be good,
  and the certificate must carry the one name the client registered (§2.1.2): the
  ``tls_client_auth_subject_dn`` (compared as names, not as text: RFC 4514 allows several
  spellings of one DN) or one ``tls_client_auth_san_dns/uri/ip/email``;
* ``self_signed_tls_client_auth`` (§2.2): the certificate's public key is one of the client's
  registered keys (its JWK Set, usually with ``x5c``); no chain, no validity (the registration
  is the trust).

The request names the client with ``client_id`` (§2) and carries no other credentials (RFC 6749
§2.3: one method per request). Tokens are bound to the certificate (§3) when the client
registered ``tls_client_certificate_bound_access_tokens``: the access token carries
``cnf.x5t#S256``, and whoever presents it must present the same certificate (userinfo).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.web.client_certificate import certificate_thumbprint
from idp.client_keys import ClientKeysUnavailable
from idp.clients import TLS_CLIENT_AUTH, ClientInfo
from idp.oauth.client_authentication import ASSERTION_FIELDS

if TYPE_CHECKING:
    from idp.oauth.grants import OAuthClient
    from idp.oauth.server import OAuthServer

CONFIRMATION_CLAIM = "x5t#S256"  # RFC 8705 §3.1


def subject_matches(certificate: x509.Certificate, registered_dn: str) -> bool:
    """§2.1.2: the certificate's subject is the registered DN (RFC 4514 text)."""
    try:
        expected = x509.Name.from_rfc4514_string(registered_dn)
    except ValueError:
        return False
    if certificate.subject == expected:
        return True

    # Attribute values compared without the encodings (PrintableString vs UTF8String).
    def pairs(name: x509.Name) -> list[tuple[str, str]]:
        return [(a.oid.dotted_string, str(a.value)) for a in name]

    return sorted(pairs(certificate.subject)) == sorted(pairs(expected))


def _alternative_names(certificate: x509.Certificate, kind: type[Any]) -> list[Any]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(extension.value.get_values_for_type(kind))


def _ip_matches(registered: str, present: list[Any]) -> bool:
    try:
        return ipaddress.ip_address(registered) in present
    except ValueError:
        return False


def names_registered_certificate(certificate: x509.Certificate, info: ClientInfo) -> bool:
    """§2.1.2: the certificate carries the one name the client registered: its subject DN,
    or a DNS name, URI, IP address or e-mail address among its subject alternative names."""
    if info.tls_client_auth_subject_dn:
        return subject_matches(certificate, info.tls_client_auth_subject_dn)
    if info.tls_client_auth_san_dns:
        dns = [name.lower() for name in _alternative_names(certificate, x509.DNSName)]
        return info.tls_client_auth_san_dns.lower() in dns
    if info.tls_client_auth_san_uri:
        uris = _alternative_names(certificate, x509.UniformResourceIdentifier)
        return info.tls_client_auth_san_uri in uris
    if info.tls_client_auth_san_ip:
        present = _alternative_names(certificate, x509.IPAddress)
        return _ip_matches(info.tls_client_auth_san_ip, present)
    if info.tls_client_auth_san_email:
        emails = [name.lower() for name in _alternative_names(certificate, x509.RFC822Name)]
        return info.tls_client_auth_san_email.lower() in emails
    return False


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def key_is_registered(server: OAuthServer, info: ClientInfo, certificate: x509.Certificate) -> bool:
    """§2.2: the certificate's key is one of the client's registered keys."""
    try:
        key_set = server.runtime.client_keys.key_set(jwks=info.jwks, jwks_uri=info.jwks_uri)
    except ClientKeysUnavailable:
        return False
    presented = _spki(certificate.public_key())
    return any(_spki(key.public_key) == presented for key in key_set.keys)


def _other_credentials(request: Any) -> bool:
    data = request.payload.data
    return bool(
        request.headers.get("Authorization")
        or "client_secret" in data
        or any(name in data for name in ASSERTION_FIELDS)
    )


def authenticate_mutual_tls(server: OAuthServer, request: Any, method: str) -> OAuthClient | None:
    """Authlib client authentication hook for ``method`` (one of
    :data:`idp.clients.MTLS_AUTH_METHODS`), registered per server with the server bound."""
    client_id = request.payload.data.get("client_id")
    if not client_id:
        return None
    client = server.query_client(client_id)
    if client is None or client.info.token_endpoint_auth_method != method:
        return None  # another method's client: its own hook answers
    if _other_credentials(request):
        raise InvalidRequestError("Use one client authentication method per request.")
    certificate = request.http.client_certificate
    if certificate is None:
        raise InvalidClientError(description="The client must present its TLS certificate.")
    if method == TLS_CLIENT_AUTH:
        check = server.runtime.certificate_check
        if check is None:
            raise InvalidClientError(description="No CA here can check TLS client certificates.")
        verdict = check(server.session, certificate, server.runtime.clock.now())
        if verdict.refusal is not None:
            raise InvalidClientError(
                description=f"The TLS client certificate is not usable ({verdict.refusal})."
            )
        if not names_registered_certificate(certificate, client.info):
            raise InvalidClientError(
                description="The TLS client certificate does not carry the registered name."
            )
    elif not key_is_registered(server, client.info, certificate):
        raise InvalidClientError(
            description="The TLS client certificate's key is not one the client registered."
        )
    return client


def confirmation_of(certificate: x509.Certificate) -> dict[str, str]:
    """The ``cnf`` claim of a token bound to ``certificate`` (§3.1)."""
    return {CONFIRMATION_CLAIM: certificate_thumbprint(certificate)}
