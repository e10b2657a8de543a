"""RequestedAuthnContext (SAML Core §3.3.2.2.1, §3.4.1) against how the official signed in.

The classes we state (Authn Context §3.4) come from the session's RFC 8176 ``amr``: a password
is PasswordProtectedTransport; a password and a one-time code is TimeSyncToken, which may also
truthfully be stated as PasswordProtectedTransport when an SP asks for exactly that. A passkey
(``hwk``/``swk``) is stated with the same URI as the OIDC ``acr`` it reaches,
``urn:commune-sso:acr:phishing-resistant`` (Authn Context has no class for WebAuthn; an SP
names any URI it agrees with the IdP), and, as a passkey with user verification is two factors,
also as REFEDS MFA (``https://refeds.org/profile/mfa``). The comparison (exact, minimum,
better, maximum) is applied over that order of strength. A request
the session cannot satisfy asks for a stronger sign-in when the official has a second factor
enrolled (the login then requires it); otherwise it is answered Responder / NoAuthnContext.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from idp.authentication_levels import PHISHING_RESISTANT
from idp.saml.vocabulary import (
    NAMESPACES,
    PASSWORD_PROTECTED_TRANSPORT,
    REFEDS_MFA,
    TIME_SYNC_TOKEN,
    X509,
)

# Our classes, weakest first; a class not here is never stated by us.
STRENGTH = {
    PASSWORD_PROTECTED_TRANSPORT: 1,
    TIME_SYNC_TOKEN: 2,
    REFEDS_MFA: 2,
    PHISHING_RESISTANT: 3,
    X509: 3,
}
COMPARISONS = ("exact", "minimum", "better", "maximum")
# What the strongest sign-in we offer can claim, strongest first.
STRONGEST_SIGN_IN = (PHISHING_RESISTANT, TIME_SYNC_TOKEN, REFEDS_MFA, PASSWORD_PROTECTED_TRANSPORT)
PASSKEY_AMR = frozenset({"hwk", "swk"})
# A certificate sign-in (TLS client authentication at the proxy): RFC 8176 has no value of its
# own; "sc" (smart card) is what a certificate on a token is, "x509" what some IdPs send.
CERTIFICATE_AMR = frozenset({"sc", "x509"})


class InvalidRequestedContext(ValueError):
    """An unknown Comparison, or no AuthnContextClassRef (DeclRefs are not supported)."""


def claimable_classes(amr: Sequence[str]) -> tuple[str, ...]:
    """The classes a session may state, strongest first (a recovery code counts as ``otp``);
    never one the session did not do (a passkey alone is not a password)."""
    passkey = not PASSKEY_AMR.isdisjoint(amr)
    claimable: list[str] = []
    if passkey:
        claimable.append(PHISHING_RESISTANT)
    if not CERTIFICATE_AMR.isdisjoint(amr):
        claimable.append(X509)
    # Of two classes as strong, the OASIS one first: more SPs know it.
    if "otp" in amr:
        claimable.append(TIME_SYNC_TOKEN)
    if "otp" in amr or (passkey and "mfa" in amr):
        claimable.append(REFEDS_MFA)
    if "pwd" in amr or not claimable:
        claimable.append(PASSWORD_PROTECTED_TRANSPORT)
    return tuple(claimable)


@dataclass(frozen=True)
class RequestedContext:
    class_refs: tuple[str, ...]
    comparison: str = "exact"

    def chosen_class(self, claimable: Sequence[str]) -> str | None:
        """The class to state among ``claimable`` (strongest first), or None when none
        satisfies the request (Core §3.3.2.2.1)."""
        known = [ref for ref in self.class_refs if ref in STRENGTH]
        if not known:
            return None
        if self.comparison == "exact":
            return next((ref for ref in self.class_refs if ref in claimable), None)
        weakest = min(STRENGTH[ref] for ref in known)
        strongest = max(STRENGTH[ref] for ref in known)
        if self.comparison == "minimum":
            candidates = [c for c in claimable if STRENGTH[c] >= weakest]
        elif self.comparison == "better":
            candidates = [c for c in claimable if STRENGTH[c] > weakest]
        else:  # maximum: as strong as possible without exceeding the strongest asked for
            candidates = [c for c in claimable if STRENGTH[c] <= strongest]
        return candidates[0] if candidates else None

    def as_params(self) -> dict[str, object]:
        return {"class_refs": list(self.class_refs), "comparison": self.comparison}

    @classmethod
    def from_params(cls, params: object) -> RequestedContext | None:
        if not isinstance(params, dict):
            return None
        return cls(
            class_refs=tuple(str(ref) for ref in params.get("class_refs", [])),
            comparison=str(params.get("comparison", "exact")),
        )


def requested_context(authn_request: etree._Element) -> RequestedContext | None:
    """The AuthnRequest's RequestedAuthnContext; None when it has none (any class will do)."""
    element = authn_request.find("samlp:RequestedAuthnContext", NAMESPACES)
    if element is None:
        return None
    comparison = (element.get("Comparison") or "exact").strip()
    if comparison not in COMPARISONS:
        raise InvalidRequestedContext(f"unknown Comparison {comparison!r}")
    refs = tuple(
        (ref.text or "").strip()
        for ref in element.findall("saml:AuthnContextClassRef", NAMESPACES)
        if (ref.text or "").strip()
    )
    if not refs:
        raise InvalidRequestedContext("no AuthnContextClassRef")
    return RequestedContext(class_refs=refs, comparison=comparison)


def class_to_state(requested: RequestedContext | None, amr: Sequence[str]) -> str | None:
    """The AuthnContextClassRef of the assertion, or None when the session cannot satisfy
    the request."""
    claimable = claimable_classes(amr)
    if requested is None:
        return claimable[0]
    return requested.chosen_class(claimable)


def satisfiable_at_all(requested: RequestedContext | None) -> bool:
    """Whether our strongest sign-in would satisfy the request."""
    return requested is None or requested.chosen_class(STRONGEST_SIGN_IN) is not None
