"""Checking an AuthnRequest (SAML Core §3.4.1, Profiles §4.1.4.1), one named check after the
other. A request that fails a check before its SP and ACS URL are trusted gets an error page
(:class:`RequestRefused`: answering an unchecked URL would make us an open redirector or an
oracle); one that fails after that is answered at the ACS with a SAML status
(:class:`StatusForSp`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from lxml import etree
from sqlalchemy.orm import Session

from core.clock import Clock
from idp.models import SamlServiceProvider
from idp.saml import replay_cache, service_providers
from idp.saml.authn_context import (
    InvalidRequestedContext,
    RequestedContext,
    requested_context,
)
from idp.saml.bindings import HTTP_POST, HTTP_REDIRECT, ReceivedMessage, redirect_signature_is_valid
from idp.saml.vocabulary import (
    INVALID_NAME_ID_POLICY,
    NAME_ID_FORMATS,
    NAMESPACES,
    REQUESTER,
    UNSPECIFIED,
    qualified,
)
from idp.saml.xml_parsing import UnsafeXml, parse_untrusted
from idp.saml.xml_signatures import SignatureRefused, has_signature, verified_element

# How old a request may be, and how far ahead of our clock an SP's clock may run.
MAX_REQUEST_AGE = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=90)
# xs:ID is an NCName; bounded so it fits the replay cache.
REQUEST_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,255}")


class RequestRefused(Exception):
    """Not answered to the SP: the reason is logged, the official sees an error page."""

    def __init__(self, reason: str, *, sp: SamlServiceProvider | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sp = sp


@dataclass(frozen=True)
class AcceptedAuthnRequest:
    """A request to answer; ``request_id`` None for an IdP-initiated sign-in."""

    sp: SamlServiceProvider
    request_id: str | None
    acs_url: str
    relay_state: str | None
    force_authn: bool
    is_passive: bool
    name_id_format: str
    allow_create: bool
    # RequestedAuthnContext; None: any class will do.
    requested_context: RequestedContext | None = None

    def parked(self) -> dict[str, object]:
        """What the login interaction keeps (JSON) until the official has signed in."""
        return {
            "sp_pk": self.sp.id,
            "request_id": self.request_id,
            "acs_url": self.acs_url,
            "relay_state": self.relay_state,
            "force_authn": self.force_authn,
            "is_passive": self.is_passive,
            "name_id_format": self.name_id_format,
            "allow_create": self.allow_create,
            "requested_context": (
                self.requested_context.as_params() if self.requested_context else None
            ),
        }

    @classmethod
    def from_parked(
        cls, sp: SamlServiceProvider, parked: dict[str, object]
    ) -> AcceptedAuthnRequest:
        relay_state, request_id = parked.get("relay_state"), parked.get("request_id")
        return cls(
            sp=sp,
            request_id=str(request_id) if request_id is not None else None,
            acs_url=str(parked["acs_url"]),
            relay_state=str(relay_state) if relay_state is not None else None,
            force_authn=bool(parked["force_authn"]),
            is_passive=bool(parked["is_passive"]),
            name_id_format=str(parked["name_id_format"]),
            allow_create=bool(parked["allow_create"]),
            requested_context=RequestedContext.from_params(parked.get("requested_context")),
        )


class StatusForSp(Exception):
    """Answered at the (checked) ACS URL with a non-success status."""

    def __init__(self, request: AcceptedAuthnRequest, status: str, sub_status: str | None) -> None:
        super().__init__(sub_status or status)
        self.request = request
        self.status = status
        self.sub_status = sub_status


def _flag(element: etree._Element, name: str) -> bool:
    return (element.get(name) or "").strip().lower() in ("true", "1")


def issuer_of(element: etree._Element) -> str | None:
    issuer = element.find("saml:Issuer", NAMESPACES)
    return (issuer.text or "").strip() if issuer is not None else None


def unsolicited(sp: SamlServiceProvider, relay_state: str | None) -> AcceptedAuthnRequest:
    """IdP-initiated sign-in (Profiles §4.1.5): an unsolicited Response to the SP's default
    ACS, with its default NameID format."""
    defaults = [acs for acs in sp.assertion_consumer_services if acs.get("is_default")]
    return AcceptedAuthnRequest(
        sp=sp,
        request_id=None,
        acs_url=str((defaults or sp.assertion_consumer_services)[0]["url"]),
        relay_state=relay_state,
        force_authn=False,
        is_passive=False,
        name_id_format=sp.name_id_format,
        allow_create=True,
    )


def parse_instant(value: str | None) -> datetime | None:
    """xs:dateTime as SAML uses it (UTC, ``Z``); None when it is not one."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC)


def check_issue_instant(element: etree._Element, now: datetime) -> None:
    issued = parse_instant(element.get("IssueInstant"))
    if issued is None or issued < now - MAX_REQUEST_AGE or issued > now + CLOCK_SKEW:
        raise RequestRefused("IssueInstant missing or outside the accepted window")


def check_signature(
    root: etree._Element,
    message: ReceivedMessage,
    sp: SamlServiceProvider,
    parameter: str,
    *,
    required: bool,
) -> tuple[etree._Element, bool]:
    """The element to read from (the signed one when signed) and whether it was signed.

    HTTP-Redirect signs the query (§3.4.4.1); HTTP-POST carries an enveloped XML signature
    (§3.5.4). ``required``: an unsigned message is refused (an SP whose metadata says
    AuthnRequestsSigned, a LogoutRequest of an SP with a signing certificate)."""
    certificates = service_providers.signing_certificates(sp)
    if message.binding == HTTP_REDIRECT:
        signed = "Signature=" in (message.raw_query or "")
        if signed and not redirect_signature_is_valid(
            message.raw_query or "", parameter, certificates
        ):
            raise RequestRefused("the query signature does not verify")
    else:
        signed = has_signature(root)
        if signed:
            try:
                root = verified_element(root, certificates)
            except SignatureRefused as error:
                raise RequestRefused(f"XML signature refused: {error}") from error
            # Read again from what was signed: a wrapped document may name another SP.
            if issuer_of(root) != sp.entity_id:
                raise RequestRefused("the signed request names another issuer")
    if required and not signed:
        raise RequestRefused("the SP signs its requests and this one is not signed")
    return root, signed


def check_destination(element: etree._Element, expected: str, *, signed: bool) -> None:
    """Bindings §3.4.5.2 / §3.5.5.2: a signed message must name where it was sent."""
    destination = element.get("Destination")
    if destination is None and not signed:
        return
    if destination != expected:
        raise RequestRefused("Destination is not this endpoint")


def check_assertion_consumer_service(element: etree._Element, sp: SamlServiceProvider) -> str:
    """Core §3.4.1: the URL asked for must be one the SP registered (exactly), or the index of
    one, or nothing (the default one)."""
    registered = sp.assertion_consumer_services
    url = element.get("AssertionConsumerServiceURL")
    index = element.get("AssertionConsumerServiceIndex")
    binding = element.get("ProtocolBinding")
    if binding is not None and binding != HTTP_POST:
        raise RequestRefused("only the HTTP-POST binding is offered for responses")
    if url is not None:
        for acs in registered:
            if acs["url"] == url:
                return url
        raise RequestRefused("AssertionConsumerServiceURL is not registered")
    if index is not None:
        for acs in registered:
            if str(acs["index"]) == index.strip():
                return str(acs["url"])
        raise RequestRefused("AssertionConsumerServiceIndex is not registered")
    return unsolicited(sp, None).acs_url


def check_request(
    root: etree._Element,
    *,
    session: Session,
    clock: Clock,
    sp: SamlServiceProvider,
    destination: str,
    signed: bool,
) -> str:
    """The checks every request of an SP passes (Core §3.2.1; Profiles §4.1.4.1, §4.4.3.1):
    version, ID, IssueInstant, Destination, and the replay cache last, so only a request that
    passed everything else spends its ID. Returns the ID."""
    if root.get("Version") != "2.0":
        raise RequestRefused("Version is not 2.0")
    request_id = root.get("ID") or ""
    if not REQUEST_ID.fullmatch(request_id):
        raise RequestRefused("ID missing or not an NCName")
    now = clock.now()
    check_issue_instant(root, now)
    check_destination(root, destination, signed=signed)
    if not replay_cache.first_use(
        session=session,
        clock=clock,
        sp_pk=sp.id,
        request_id=request_id,
        keep_until=now + MAX_REQUEST_AGE + CLOCK_SKEW,
    ):
        raise RequestRefused("request ID already used (replay)")
    return request_id


def accept(
    *, session: Session, clock: Clock, message: ReceivedMessage, destination: str
) -> AcceptedAuthnRequest:
    """Every check of an AuthnRequest that arrived at ``destination``; raises
    :class:`RequestRefused` or :class:`StatusForSp`."""
    try:
        root = parse_untrusted(message.xml)
    except UnsafeXml as error:
        raise RequestRefused(str(error)) from error
    if root.tag != qualified("samlp", "AuthnRequest"):
        raise RequestRefused("not an AuthnRequest")
    issuer = issuer_of(root)
    sp = service_providers.REGISTRY.find_active(session, issuer) if issuer else None
    if sp is None:
        raise RequestRefused("unknown service provider")
    try:
        root, signed = check_signature(
            root, message, sp, "SAMLRequest", required=sp.authn_requests_signed
        )
        acs_url = check_assertion_consumer_service(root, sp)
        request_id = check_request(
            root, session=session, clock=clock, sp=sp, destination=destination, signed=signed
        )
    except RequestRefused as refusal:
        refusal.sp = sp  # known from here on: the official is told the request was refused
        raise
    policy = root.find("samlp:NameIDPolicy", NAMESPACES)
    requested_format = policy.get("Format") if policy is not None else None
    accepted = AcceptedAuthnRequest(
        sp=sp,
        request_id=request_id,
        acs_url=acs_url,
        relay_state=message.relay_state,
        force_authn=_flag(root, "ForceAuthn"),
        is_passive=_flag(root, "IsPassive"),
        name_id_format=(
            requested_format
            if requested_format and requested_format != UNSPECIFIED
            else sp.name_id_format
        ),
        # Core §3.4.1.1: AllowCreate defaults to false, but a request without a policy asks
        # for whatever the IdP gives.
        allow_create=policy is None or _flag(policy, "AllowCreate"),
    )
    if accepted.name_id_format not in NAME_ID_FORMATS:
        raise StatusForSp(accepted, REQUESTER, INVALID_NAME_ID_POLICY)
    try:
        return replace(accepted, requested_context=requested_context(root))
    except InvalidRequestedContext as error:
        raise StatusForSp(accepted, REQUESTER, None) from error
