"""Token revocation, RFC 7009 §2. Revoking a refresh token revokes its whole grant (and so the
access tokens issued with it, §2.1); revoking an access token records its jti until expiry."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from starlette.requests import Request
from starlette.responses import Response

from core import audit
from idp import token_store
from idp.oauth.endpoints.presented_token import PresentedTokenLookup, respond
from idp.oauth.grants import CONFIDENTIAL_OR_PUBLIC
from idp.oauth.token_views import (
    PresentedAccessToken,
    PresentedToken,
)
from idp.request_scope import RequestScope, run_in_request_scope


class Revocation(PresentedTokenLookup, RevocationEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_OR_PUBLIC

    def revoke_token(self, token: PresentedToken, request: Any) -> None:
        session, clock = self.server.session, self.server.runtime.clock
        if isinstance(token, PresentedAccessToken):
            token_store.revoke_access_token(
                session=session, jti=token.view.jti, expires_at=token.view.expires_at
            )
        else:
            token_store.revoke_refresh_token(session=session, clock=clock, token=token.row)
        audit.record(
            session,
            clock=clock,
            actor=f"client:{request.client.client_id}",
            action="token.revoke",
            target=token.kind,
        )


def revoke(scope: RequestScope) -> Response:
    return respond(scope, Revocation)


async def revocation_endpoint(request: Request) -> Response:
    return await run_in_request_scope(request, revoke)
