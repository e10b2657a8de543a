"""``/saml/metadata``: our IdP metadata, signed (SAML Metadata §2.4.3; the well-known location
of §4.1 is our entity ID itself)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.request_scope import runtime_of
from idp.saml import idp_metadata

MEDIA_TYPE = "application/samlmetadata+xml"  # Metadata §4.1.1


async def metadata_endpoint(request: Request) -> Response:
    runtime = runtime_of(request)
    body = idp_metadata.document(
        issuer=runtime.settings.issuer, keyring=runtime.keyring, now=runtime.clock.now()
    )
    return Response(body, media_type=MEDIA_TYPE)
