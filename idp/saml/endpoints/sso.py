"""``/saml/sso``: the SingleSignOnService (Profiles §4.1, Web Browser SSO) for the
HTTP-Redirect and HTTP-POST bindings, through the shared login interaction as CAS does.

* The AuthnRequest passes every check of :mod:`idp.saml.authn_request` or gets an error page
  (or, once its SP and ACS URL are trusted, a SAML error status at the ACS).
* A request posted by HTTP-POST is parked and continued by a GET (``/saml/sso/continue``):
  the browser does not send our SameSite=Lax session cookie with another site's POST, but does
  with the top-level GET that follows it.
* A live session and no ``ForceAuthn``: the Response at once. ``ForceAuthn`` asks for the
  password again, like ``prompt=login``; ``IsPassive`` never shows a form, like ``prompt=none``,
  and answers NoPassive when it would need one (Core §3.4.1).
* Otherwise the login form; once signed in, the login layer sends the browser to
  ``/saml/sso/resume``, which answers for the session just started.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from core import audit
from idp import mfa, passkeys, released_attributes, sessions
from idp.authentication_levels import PHISHING_RESISTANT
from idp.models import BrowserSession, SamlServiceProvider, SamlSessionParticipant
from idp.request_scope import RequestScope, run_in_request_scope
from idp.saml import (
    authn_context,
    authn_request,
    bindings,
    encryption,
    idp_metadata,
    name_ids,
    pages,
    responses,
    service_providers,
    sp_metadata,
    xml_signatures,
)
from idp.saml.authn_request import AcceptedAuthnRequest, RequestRefused, StatusForSp
from idp.saml.service_providers import REGISTRY as SERVICE_PROVIDERS
from idp.saml.vocabulary import (
    HTTP_POST,
    INVALID_NAME_ID_POLICY,
    NO_AUTHN_CONTEXT,
    NO_PASSIVE,
    REQUESTER,
    RESPONDER,
)
from idp.web import login as login_pages
from keys import CertifiedKey

log = logging.getLogger("commune_sso.saml")

CONTINUE_PATH = "/saml/sso/continue"
INITIATE_PATH = "/saml/sso/initiate"
RESUME_PATH = "/saml/sso/resume"
INTERACTION_KEY = "saml"
# A posted AuthnRequest is base64 of up to MAX_DOCUMENT_BYTES of XML.
MAX_POSTED_FIELD = 4 * bindings.MAX_DOCUMENT_BYTES // 3 + 4


def received_message(scope: RequestScope, parameter: str) -> bindings.ReceivedMessage:
    if scope.http.method == "POST":
        return bindings.from_post(dict(scope.http.form), parameter)
    raw_query = scope.request.scope.get("query_string", b"").decode("latin-1")
    return bindings.from_redirect(dict(scope.http.query), raw_query, parameter)


def _signing_key(scope: RequestScope, sp: SamlServiceProvider) -> CertifiedKey:
    return xml_signatures.signing_key_for(
        scope.runtime.keyring, sp.signing_methods, now=scope.runtime.clock.now()
    )


def _post_response(scope: RequestScope, request: AcceptedAuthnRequest, xml: bytes) -> Response:
    return pages.post_to_sp(
        scope,
        sp_name=request.sp.name,
        url=request.acs_url,
        field="SAMLResponse",
        value=bindings.post_value(xml),
        relay_state=request.relay_state,
    )


def _post_status(
    scope: RequestScope, request: AcceptedAuthnRequest, status: str, sub_status: str | None
) -> Response:
    issuer = scope.runtime.settings.issuer
    xml = responses.response(
        issuer=idp_metadata.entity_id(issuer),
        destination=request.acs_url,
        in_response_to=request.request_id,
        now=scope.runtime.clock.now(),
        key=_signing_key(scope, request.sp),
        status=status,
        sub_status=sub_status,
    )
    return _post_response(scope, request, xml)


def _remember_participant(
    session: Session,
    *,
    browser_session: BrowserSession,
    sp: SamlServiceProvider,
    name_id: str,
    name_id_format: str,
    session_index: str,
    now: object,
) -> None:
    session.add(
        SamlSessionParticipant(
            session_id=browser_session.id,
            sp_pk=sp.id,
            name_id=name_id,
            name_id_format=name_id_format,
            session_index=session_index,
            created_at=now,
        )
    )


def _post_assertion(
    scope: RequestScope, request: AcceptedAuthnRequest, browser_session: BrowserSession
) -> Response:
    """Profiles §4.1.4.2: the signed Response with the signed Assertion, to the ACS."""
    runtime, session = scope.runtime, scope.session
    now = runtime.clock.now()
    sp, account = request.sp, browser_session.account
    context_class = authn_context.class_to_state(
        request.requested_context, list(browser_session.amr)
    )
    if context_class is None:
        # Even after signing in (again) the session does not satisfy RequestedAuthnContext.
        return _post_status(scope, request, RESPONDER, NO_AUTHN_CONTEXT)
    name_id = name_ids.name_id_for(
        session=session,
        clock=runtime.clock,
        sp=sp,
        account=account,
        name_id_format=request.name_id_format,
        allow_create=request.allow_create,
    )
    if name_id is None:
        return _post_status(scope, request, REQUESTER, INVALID_NAME_ID_POLICY)
    session_index = responses.saml_id()
    _remember_participant(
        session,
        browser_session=browser_session,
        sp=sp,
        name_id=name_id,
        name_id_format=request.name_id_format,
        session_index=session_index,
        now=now,
    )
    attributes = released_attributes.released(session, account, sp.attributes)
    issuer = idp_metadata.entity_id(runtime.settings.issuer)
    key = _signing_key(scope, sp)
    assertion = responses.assertion(
        issuer=issuer,
        audience=sp.entity_id,
        acs_url=request.acs_url,
        in_response_to=request.request_id,
        subject=responses.Subject(
            name_id=name_id,
            name_id_format=request.name_id_format,
            session_index=session_index,
            authn_instant=browser_session.auth_time,
            session_not_on_or_after=browser_session.expires_at,
            authn_context_class=context_class,
            attributes=attributes,
        ),
        now=now,
        key=key,
    )
    if sp.encrypt_assertions:
        assertion = encryption.encrypted_assertion(
            assertion, sp_metadata.load_certificate(sp.encryption_certificates[0])
        )
    xml = responses.response(
        issuer=issuer,
        destination=request.acs_url,
        in_response_to=request.request_id,
        now=now,
        key=key,
        assertion_element=assertion,
    )
    audit.record(
        session,
        clock=runtime.clock,
        actor=f"user:{account.username}",
        action="saml.assertion_issued",
        target=SERVICE_PROVIDERS.audit_target(sp),
        client_address=scope.http.client_address,
        details={
            "sid": browser_session.sid,
            "acs_url": request.acs_url,
            "name_id_format": request.name_id_format,
            "attributes": sorted(attributes),
            "force_authn": request.force_authn,
            "unsolicited": request.request_id is None,
            "encrypted": sp.encrypt_assertions,
            "authn_context": context_class,
        },
    )
    return _post_response(scope, request, xml)


def _park(scope: RequestScope, request: AcceptedAuthnRequest) -> str:
    sp = request.sp
    return login_pages.start_protocol_interaction(
        scope,
        client_id=f"saml:{sp.id}",
        client_name=sp.name,
        audit_target=SERVICE_PROVIDERS.audit_target(sp),
        resume_path=RESUME_PATH,
        protocol_key=INTERACTION_KEY,
        protocol_params=request.parked(),
        minimum_acr=sp.minimum_acr,
    )


def _needs_stronger_sign_in(
    scope: RequestScope, request: AcceptedAuthnRequest, browser_session: BrowserSession
) -> bool | None:
    """Whether the session falls short of RequestedAuthnContext (Core §3.3.2.2.1): False when
    it satisfies it; True when signing in again would (a second factor enrolled, which the
    login then requires); None when nothing we offer would."""
    requested = request.requested_context
    if authn_context.class_to_state(requested, list(browser_session.amr)) is not None:
        return False
    account = browser_session.account
    if mfa.has_totp(scope.session, account) or (
        passkeys.available(scope.runtime.settings) and passkeys.has_passkey(scope.session, account)
    ):
        return True
    return None


def _proceed(scope: RequestScope, request: AcceptedAuthnRequest, handle: str | None) -> Response:
    if not authn_context.satisfiable_at_all(request.requested_context):
        return _post_status(scope, request, RESPONDER, NO_AUTHN_CONTEXT)
    browser_session = login_pages.signed_in_session(scope)
    sign_in_again = request.force_authn
    if browser_session is not None and not sign_in_again:
        shortfall = _needs_stronger_sign_in(scope, request, browser_session)
        if shortfall is None:
            return _post_status(scope, request, RESPONDER, NO_AUTHN_CONTEXT)
        # Below the SP's level (or the official's unit's): stepped up as for an OIDC client.
        sign_in_again = shortfall or not login_pages.session_reaches_level(
            scope, browser_session, request.sp.minimum_acr
        )
    if request.is_passive and (browser_session is None or sign_in_again):
        return _post_status(scope, request, RESPONDER, NO_PASSIVE)
    if browser_session is not None and not sign_in_again:
        return _post_assertion(scope, request, browser_session)
    handle = handle or _park(scope, request)
    return login_pages.render_login_form(
        scope,
        handle,
        client_name=request.sp.name,
        ui_locales=None,
        passkey_required=request.sp.minimum_acr == PHISHING_RESISTANT,
    )


def single_sign_on(scope: RequestScope) -> Response:
    try:
        message = received_message(scope, "SAMLRequest")
        request = authn_request.accept(
            session=scope.session,
            clock=scope.runtime.clock,
            message=message,
            destination=f"{scope.runtime.settings.issuer}{idp_metadata.SSO_PATH}",
        )
    except bindings.BindingError as error:
        log.info("SAML AuthnRequest unreadable: %s", error)
        return pages.refused(scope)
    except RequestRefused as refusal:
        log.info(
            "SAML AuthnRequest refused (%s): %s",
            refusal.sp.entity_id if refusal.sp else "unknown SP",
            refusal.reason,
        )
        return pages.refused(
            scope, pages.UNKNOWN_SP if refusal.sp is None else pages.REFUSED_REQUEST
        )
    except StatusForSp as answer:
        return _post_status(scope, answer.request, answer.status, answer.sub_status)
    if message.binding == HTTP_POST:
        handle = _park(scope, request)
        return RedirectResponse(
            f"{CONTINUE_PATH}?{urlencode({'interaction': handle})}", status_code=303
        )
    return _proceed(scope, request, None)


def initiate(scope: RequestScope) -> Response:
    """IdP-initiated sign-in (Profiles §4.1.5): ``?providerId=<entity ID>&RelayState=...``,
    a link on a portal page; the Response goes to the SP's registered default ACS only."""
    params = dict(scope.http.query)
    sp = service_providers.REGISTRY.find_active(scope.session, params.get("providerId", ""))
    if sp is None:
        return pages.refused(scope, pages.UNKNOWN_SP)
    relay_state = params.get("RelayState")
    if relay_state is not None and len(relay_state) > bindings.MAX_RELAY_STATE:
        return pages.refused(scope)
    return _proceed(scope, authn_request.unsolicited(sp, relay_state), None)


def _parked_request(scope: RequestScope) -> tuple[AcceptedAuthnRequest, str] | None:
    handle = dict(scope.http.query).get("interaction")
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    if interaction is None or handle is None or INTERACTION_KEY not in interaction.params:
        return None
    parked = interaction.params[INTERACTION_KEY]
    sp = scope.session.get(SamlServiceProvider, int(parked["sp_pk"]))
    if sp is None or sp.removed_at is not None:
        return None
    return AcceptedAuthnRequest.from_parked(sp, parked), handle


def continue_posted(scope: RequestScope) -> Response:
    """The GET after a posted AuthnRequest, with our session cookie."""
    parked = _parked_request(scope)
    if parked is None:
        return pages.refused(scope, pages.EXPIRED_SIGN_IN)
    return _proceed(scope, *parked)


def resume(scope: RequestScope) -> Response:
    """Back from the login form: the interaction's own login started the current session."""
    handle = dict(scope.http.query).get("interaction")
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    browser_session = login_pages.signed_in_session(scope)
    parked = _parked_request(scope)
    if (
        interaction is None
        or parked is None
        or browser_session is None
        or interaction.authenticated_session_id != browser_session.id
    ):
        return pages.refused(scope, pages.EXPIRED_SIGN_IN)
    interaction.completed_at = scope.runtime.clock.now()
    sp = parked[0].sp
    if not login_pages.session_reaches_level(scope, browser_session, sp.minimum_acr):
        return login_pages.level_not_reached_page(scope, sp.name)
    return _post_assertion(scope, parked[0], browser_session)


async def sso_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, single_sign_on, max_field_length=MAX_POSTED_FIELD)


async def initiate_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, initiate)


async def continue_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, continue_posted)


async def resume_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, resume)
