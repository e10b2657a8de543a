"""``/login/upstream/<upstream_id>/callback``: the upstream's authorization response (OIDC
Core §3.1.2.5), in three steps so that no database transaction waits on the network:

1. ``prepare`` (one transaction): the interaction named by the browser's cookie, the state it
   parked compared with the one returned (RFC 6749 §10.12), the ``iss`` parameter if sent
   (RFC 9207 §2.4: mix-up), the pending sign-in consumed (single use);
2. the code exchanged and the ID token verified (``token_request``, ``id_tokens``), no
   transaction open;
3. ``finish`` (one transaction): the official found by the administrator's link claim only
   (``linking``), refused when there is none or the account is disabled, otherwise our own
   login finished as after a password, with ``amr`` ["fed", ...the upstream's] and the
   upstream's ID token kept for logout (``upstream_logout``). When the upstream's ``amr``
   shows no multi-factor and the official has our TOTP, the login's TOTP step is asked first
   (``amr`` then ends with "otp"), the upstream's sign-in waiting sealed in the interaction.

Every refusal is audited and shown on the sign-in form in the official's language, so the
official can still sign in with a password."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from core import audit
from core.metrics import LOGINS
from core.web.i18n import N_
from idp import mfa, sessions
from idp.federation import linking, providers, upstream_logout
from idp.federation.endpoints.start import NO_LONGER_OFFERED, PENDING_KEY, callback_uri, cookie_name
from idp.federation.id_tokens import IdTokenRejected, verify_id_token
from idp.federation.token_request import (
    TokenRequest,
    UpstreamUnavailable,
    exchange_code,
    key_id,
    upstream_jwks,
)
from idp.models import Interaction, UpstreamProvider
from idp.oauth.endpoints import authorization
from idp.request_scope import RequestScope, run_in_request_scope
from idp.web import login as login_pages

log = logging.getLogger(__name__)

DID_NOT_COMPLETE = N_(
    "Signing in through the other provider did not complete. Please try again, or sign in "
    "with your password."
)
CANCELLED = N_("Signing in at the other provider was cancelled or refused.")
NO_MATCHING_OFFICIAL = N_(
    "Your identity was confirmed, but it matches no official's account. Accounts are not "
    "created by signing in: ask the IT staff of your unit to check the details of your account."
)
ACCOUNT_DISABLED = N_(
    "Your identity was confirmed, but your official's account is disabled. Contact the IT "
    "staff of your unit."
)
# RFC 8176 values are short tokens; a few of them are enough to say how the upstream checked.
MAX_UPSTREAM_AMR = 8
MAX_AMR_LENGTH = 32
# RFC 8176 values that say the upstream did multi-factor authentication or checked a
# possession factor: "mfa" itself, one-time passwords ("otp", "sms", "tel"), proof of
# possession of a hardware or software key ("hwk", "swk", "sc"), multiple channels ("mca").
MULTI_FACTOR_AMR = frozenset({"mfa", "otp", "sms", "tel", "hwk", "swk", "sc", "mca"})


class ExchangeDue(Response):
    """Not sent to the browser: tells the route that the code is to be exchanged."""

    def __init__(self, pending: PendingSignIn) -> None:
        super().__init__(status_code=202)
        self.pending = pending


@dataclass(frozen=True)
class PendingSignIn:
    handle: str
    upstream_pk: int
    issuer: str
    client_id: str
    nonce: str
    algorithms: list[str]
    token_request: TokenRequest


@dataclass(frozen=True)
class Verified:
    claims: dict[str, Any]
    id_token: str


def _refuse(
    scope: RequestScope,
    interaction: Interaction,
    handle: str,
    *,
    provider: UpstreamProvider | None,
    action: str,
    message: str,
    status_code: int,
    reason: str | None = None,
    actor: str = "anonymous",
) -> Response:
    LOGINS.labels("failure").inc()
    audit.record(
        scope.session,
        clock=scope.runtime.clock,
        actor=actor,
        action=action,
        target=f"upstream:{provider.upstream_id}" if provider else None,
        client_address=scope.http.client_address,
        details={"reason": reason} if reason else None,
    )
    response = login_pages.render_login(
        scope, interaction, handle, error=message, status_code=status_code
    )
    response.delete_cookie(cookie_name(scope), path="/")
    return response


def _callback_problem(
    query: dict[str, str],
    pending: dict[str, Any],
    provider: UpstreamProvider | None,
    upstream_id: str,
) -> tuple[str, int, str] | None:
    """Why the authorization response cannot be used: (message, status, reason for the log)."""
    if provider is None or provider.removed_at is not None or provider.upstream_id != upstream_id:
        return NO_LONGER_OFFERED, 403, "provider removed"
    returned_state = query.get("state", "").encode("utf-8")
    if not hmac.compare_digest(returned_state, str(pending["state"]).encode("utf-8")):
        return DID_NOT_COMPLETE, 400, "state mismatch"
    if "iss" in query and query["iss"] != provider.issuer:
        return DID_NOT_COMPLETE, 400, "iss mismatch"
    if "error" in query or not query.get("code"):
        return CANCELLED, 400, f"upstream error: {query.get('error', 'no code')}"[:100]
    return None


def prepare(scope: RequestScope, upstream_id: str) -> Response:
    handle = scope.http.cookies.get(cookie_name(scope))
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=handle
    )
    pending = interaction.params.get(PENDING_KEY) if interaction is not None else None
    if interaction is None or handle is None or not isinstance(pending, dict):
        return authorization.expired_interaction_page(scope)
    # Consumed now, whatever follows: a callback URL works once.
    interaction.params = {k: v for k, v in interaction.params.items() if k != PENDING_KEY}
    query = dict(scope.http.query)
    provider = scope.session.get(UpstreamProvider, int(pending["upstream_pk"]))
    problem = _callback_problem(query, pending, provider, upstream_id)
    if problem is not None:
        message, status_code, reason = problem
        return _refuse(
            scope,
            interaction,
            handle,
            provider=provider,
            action="login.upstream_failure",
            message=message,
            status_code=status_code,
            reason=reason,
        )
    assert provider is not None
    return ExchangeDue(
        PendingSignIn(
            handle=handle,
            upstream_pk=provider.id,
            issuer=provider.issuer,
            client_id=provider.client_id,
            nonce=str(pending["nonce"]),
            algorithms=list(provider.id_token_algs),
            token_request=TokenRequest(
                token_endpoint=provider.token_endpoint,
                jwks_uri=provider.jwks_uri,
                client_id=provider.client_id,
                client_secret=providers.client_secret(
                    provider, server_secret=scope.runtime.server_secret
                ),
                auth_method=provider.token_endpoint_auth_method,
                redirect_uri=callback_uri(scope, provider.upstream_id),
                code=query["code"],
                code_verifier=str(pending["verifier"]),
            ),
        )
    )


def upstream_amr(claims: dict[str, Any]) -> list[str]:
    """``fed`` first (the official signed in elsewhere), then what the upstream reported."""
    reported = claims.get("amr")
    values = [
        value
        for value in (reported if isinstance(reported, list) else [])
        if isinstance(value, str) and 0 < len(value) <= MAX_AMR_LENGTH and value != "fed"
    ]
    return ["fed", *list(dict.fromkeys(values))[:MAX_UPSTREAM_AMR]]


def did_multi_factor(amr: list[str]) -> bool:
    """Whether the upstream's ``amr`` (RFC 8176 §2) shows more than one factor or a factor
    that is one of a second kind: then our own TOTP is not asked again."""
    return any(value in MULTI_FACTOR_AMR for value in amr)


def finish(scope: RequestScope, pending: PendingSignIn, outcome: Verified | str) -> Response:
    """``outcome``: the verified ID token, or why the exchange or the token failed."""
    interaction = sessions.find_interaction(
        session=scope.session, clock=scope.runtime.clock, handle=pending.handle
    )
    if interaction is None:
        return authorization.expired_interaction_page(scope)
    provider = scope.session.get(UpstreamProvider, pending.upstream_pk)
    refuse = partial(_refuse, scope, interaction, pending.handle)
    if provider is None or provider.removed_at is not None:
        return refuse(
            provider=provider,
            action="login.upstream_failure",
            message=NO_LONGER_OFFERED,
            status_code=403,
            reason="provider removed",
        )
    if isinstance(outcome, str):
        return refuse(
            provider=provider,
            action="login.upstream_failure",
            message=DID_NOT_COMPLETE,
            status_code=400,
            reason=outcome[:200],
        )
    account = linking.linked_account(
        scope.session, link_claim=provider.link_claim, claims=outcome.claims
    )
    if account is None:
        return refuse(
            provider=provider,
            action="login.upstream_no_match",
            message=NO_MATCHING_OFFICIAL,
            status_code=403,
            reason=f"no official with this {provider.link_claim}",
        )
    if not account.is_active:
        return refuse(
            provider=provider,
            action="login.upstream_refused_disabled",
            message=ACCOUNT_DISABLED,
            status_code=403,
            actor=f"user:{account.username}",
        )
    amr = upstream_amr(outcome.claims)
    if not did_multi_factor(amr) and mfa.has_totp(scope.session, account):
        # The upstream checked one factor; the official has our TOTP: ask it, as after a
        # password, before the login finishes (the upstream's sign-in waits, sealed).
        response = login_pages.ask_second_factor(
            scope,
            interaction,
            pending.handle,
            account=account,
            amr=amr,
            details={"upstream": provider.upstream_id},
            parked=upstream_logout.park(
                server_secret=scope.runtime.server_secret,
                interaction_id=interaction.id,
                provider=provider,
                upstream_subject=str(outcome.claims["sub"]),
                id_token=outcome.id_token,
            ),
        )
        response.delete_cookie(cookie_name(scope), path="/")
        return response
    response = login_pages.finish_login(
        scope,
        interaction,
        pending.handle,
        account=account,
        amr=amr,
        throttle=None,
        details={"upstream": provider.upstream_id},
        finish_authorization=True,
    )
    assert interaction.authenticated_session_id is not None
    upstream_logout.remember(
        session=scope.session,
        clock=scope.runtime.clock,
        server_secret=scope.runtime.server_secret,
        browser_session_id=interaction.authenticated_session_id,
        provider=provider,
        upstream_subject=str(outcome.claims["sub"]),
        id_token=outcome.id_token,
    )
    response.delete_cookie(cookie_name(scope), path="/")
    return response


async def exchange_and_verify(request: Request, pending: PendingSignIn) -> Verified | str:
    runtime = request.app.state.idp
    try:
        tokens = await exchange_code(
            pending.token_request, keyring=runtime.keyring, now=runtime.clock.now()
        )
        id_token = str(tokens["id_token"])
        jwks = await upstream_jwks(
            pending.token_request.jwks_uri,
            kid=key_id(id_token),
            cache=runtime.upstream_documents,
        )
        claims = verify_id_token(
            id_token,
            jwks=jwks,
            algorithms=pending.algorithms,
            issuer=pending.issuer,
            client_id=pending.client_id,
            nonce=pending.nonce,
            now=runtime.clock.now(),
        )
    except (UpstreamUnavailable, IdTokenRejected) as error:
        log.warning("upstream sign-in at %s failed: %s", pending.issuer, error)
        return f"{type(error).__name__}: {error}"
    return Verified(claims=claims, id_token=id_token)


async def callback_endpoint(request: Request) -> Response:
    upstream_id = str(request.path_params["upstream_id"])
    response = await run_in_request_scope(request, lambda scope: prepare(scope, upstream_id))
    if not isinstance(response, ExchangeDue):
        return response
    pending = response.pending
    outcome = await exchange_and_verify(request, pending)
    return await run_in_request_scope(request, lambda scope: finish(scope, pending, outcome))
