"""The SAML 2.0 names this package speaks: XML namespaces, bindings, NameID formats, status
codes and authentication context classes (SAML Core, Bindings and Authn Context, 2005)."""

from __future__ import annotations

PROTOCOL_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
ASSERTION_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
METADATA_NS = "urn:oasis:names:tc:SAML:2.0:metadata"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XENC_NS = "http://www.w3.org/2001/04/xmlenc#"
MDUI_NS = "urn:oasis:names:tc:SAML:metadata:ui"
# SAML V2.0 Metadata Profile for Algorithm Support: md:Extensions/alg:SigningMethod.
ALG_NS = "urn:oasis:names:tc:SAML:metadata:algsupport"
NAMESPACES = {
    "samlp": PROTOCOL_NS,
    "saml": ASSERTION_NS,
    "md": METADATA_NS,
    "ds": DSIG_NS,
    "xenc": XENC_NS,
    "mdui": MDUI_NS,
    "alg": ALG_NS,
}

# Bindings §3.4 and §3.5; responses go to an SP only by HTTP-POST (no artifacts here).
HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

# Core §8.3.
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
EMAIL_ADDRESS = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAME_ID_FORMATS = (PERSISTENT, TRANSIENT, EMAIL_ADDRESS)

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
BASIC_ATTRIBUTE_NAME = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"

# Core §3.2.2.2.
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
INVALID_NAME_ID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
PARTIAL_LOGOUT = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"

# Authn Context §3.4: how the official signed in, from the session's RFC 8176 amr.
PASSWORD_PROTECTED_TRANSPORT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
TIME_SYNC_TOKEN = "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken"
# A certificate presented through TLS client authentication (Authn Context §3.4.25).
X509 = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
# REFEDS Multi-Factor Authentication Profile: the class SPs use to ask for any two factors.
REFEDS_MFA = "https://refeds.org/profile/mfa"

# XML-DSig algorithms accepted on requests (SHA-1 refused) and used on our messages.
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def qualified(prefix: str, local: str) -> str:
    """``{namespace}local`` for lxml, e.g. ``qualified("samlp", "Response")``."""
    return f"{{{NAMESPACES[prefix]}}}{local}"
