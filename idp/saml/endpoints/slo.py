"""``/saml/slo``: the SingleLogoutService (Profiles §4.4) for HTTP-Redirect and HTTP-POST.

A LogoutRequest from an SP (signed when the SP has a signing certificate: §4.4.3.1 wants the
requester authenticated) ends the browser sessions its NameID and SessionIndexes name, through
the shared session end: OIDC and CAS apps of those sessions are told as after any logout, the
other SAML SPs get LogoutRequests in iframes, and the SP that asked gets a signed
LogoutResponse, by the binding it used when it registered one for it (§4.4.3.3).

A LogoutResponse (an SP answering one of our LogoutRequests, in its iframe) needs nothing more.
"""

from __future__ import annotations

import logging

from lxml import etree
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from idp.logout import session_end
from idp.models import BrowserSession, SamlSessionParticipant
from idp.request_scope import RequestScope, run_in_request_scope
from idp.saml import (
    bindings,
    idp_metadata,
    pages,
    service_providers,
    single_logout,
    xml_signatures,
)
from idp.saml.authn_request import RequestRefused, check_request, check_signature, issuer_of
from idp.saml.endpoints.sso import MAX_POSTED_FIELD, received_message
from idp.saml.vocabulary import HTTP_POST, HTTP_REDIRECT, NAMESPACES, qualified
from idp.saml.xml_parsing import UnsafeXml, parse_untrusted

log = logging.getLogger("commune_sso.saml")


def _sessions_named(scope: RequestScope, root: etree._Element, sp_pk: int) -> list[BrowserSession]:
    """Core §3.7.3.1: the live sessions in which this SP got this NameID, limited to the
    SessionIndexes named (all of them when none is)."""
    name_id = (root.findtext("saml:NameID", default="", namespaces=NAMESPACES) or "").strip()
    indexes = [
        (index.text or "").strip() for index in root.findall("samlp:SessionIndex", NAMESPACES)
    ]
    query = select(SamlSessionParticipant.session_id).where(
        SamlSessionParticipant.sp_pk == sp_pk, SamlSessionParticipant.name_id == name_id
    )
    if indexes:
        query = query.where(SamlSessionParticipant.session_index.in_(indexes))
    return list(
        scope.session.scalars(
            select(BrowserSession)
            .where(BrowserSession.id.in_(query), BrowserSession.ended_at.is_(None))
            .order_by(BrowserSession.id)
        )
    )


def _logout_request(scope: RequestScope, message: bindings.ReceivedMessage) -> Response:
    runtime = scope.runtime
    try:
        root = parse_untrusted(message.xml)
    except UnsafeXml as error:
        log.info("SAML LogoutRequest refused: %s", error)
        return pages.refused(scope)
    issuer = issuer_of(root) if root.tag == qualified("samlp", "LogoutRequest") else None
    sp = service_providers.REGISTRY.find_active(scope.session, issuer) if issuer else None
    if sp is None:
        log.info("SAML LogoutRequest refused: unknown service provider")
        return pages.refused(scope, pages.UNKNOWN_SP)
    try:
        root, signed = check_signature(
            root, message, sp, "SAMLRequest", required=bool(sp.signing_certificates)
        )
        request_id = check_request(
            root,
            session=scope.session,
            clock=runtime.clock,
            sp=sp,
            destination=f"{runtime.settings.issuer}{idp_metadata.SLO_PATH}",
            signed=signed,
        )
    except RequestRefused as refusal:
        log.info("SAML LogoutRequest refused (%s): %s", sp.entity_id, refusal.reason)
        return pages.refused(scope)
    frontchannel_urls: list[str] = []
    for browser_session in _sessions_named(scope, root, sp.id):
        frontchannel_urls += session_end.end_browser_session(
            scope,
            browser_session,
            target=service_providers.REGISTRY.audit_target(sp),
            except_saml_sp=sp.id,
        )
    service = single_logout.endpoint(sp, [message.binding, HTTP_REDIRECT, HTTP_POST])
    if service is None:
        return session_end.logged_out_page(
            scope, client_name=sp.name, frontchannel_urls=frontchannel_urls, continue_url=None
        )
    now = runtime.clock.now()
    key = xml_signatures.signing_key_for(runtime.keyring, sp.signing_methods, now=now)
    location = str(service["response_url"])
    answer = single_logout.logout_response(
        issuer=idp_metadata.entity_id(runtime.settings.issuer),
        destination=location,
        in_response_to=request_id,
        now=now,
    )
    if service["binding"] == HTTP_REDIRECT:
        continue_url = bindings.redirect_url(
            location,
            "SAMLResponse",
            etree.tostring(answer),
            relay_state=message.relay_state,
            key=key,
        )
        return session_end.logged_out_page(
            scope,
            client_name=sp.name,
            frontchannel_urls=frontchannel_urls,
            continue_url=continue_url,
        )
    response = pages.post_to_sp(
        scope,
        sp_name=sp.name,
        url=location,
        field="SAMLResponse",
        value=bindings.post_value(single_logout.signed_for_post(answer, key)),
        relay_state=message.relay_state,
        frontchannel_urls=frontchannel_urls,
    )
    response.delete_cookie(runtime.session_cookie_name, path="/")
    return response


def single_logout_service(scope: RequestScope) -> Response:
    source = dict(scope.http.form if scope.http.method == "POST" else scope.http.query)
    if "SAMLResponse" in source and "SAMLRequest" not in source:
        # An SP's answer to our LogoutRequest, in the hidden iframe of our own logged-out
        # page: nothing to show, and only our page may frame it.
        return Response(
            "<!doctype html><title>Signed out</title>",
            media_type="text/html",
            headers={
                "Cache-Control": "no-store",
                "Content-Security-Policy": "default-src 'none'; frame-ancestors 'self'",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )
    try:
        message = received_message(scope, "SAMLRequest")
    except bindings.BindingError as error:
        log.info("SAML LogoutRequest unreadable: %s", error)
        return pages.refused(scope)
    return _logout_request(scope, message)


async def slo_endpoint(request: Request) -> Response:
    response = await run_in_request_scope(
        request, single_logout_service, max_field_length=MAX_POSTED_FIELD
    )
    session_end.wake_delivery_worker(request)
    return response
