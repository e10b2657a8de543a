"""Sign-in through an upstream OpenID provider (identity brokering, issue 17).

An administrator registers an upstream provider by its issuer (``providers``: the discovery
document is fetched and checked then, ``discovery``); the login page offers it. One module per
step under ``endpoints/``: ``/login/upstream/<id>`` starts an authorization code flow with
PKCE S256, ``state`` and ``nonce`` parked in the login interaction and bound to the browser by
a cookie (``start``); ``/login/upstream/<id>/callback`` exchanges the code (``token_request``),
verifies the ID token against the upstream's JWKS (``id_tokens``), links it to an official
only by the claim the administrator chose (``linking``: never by e-mail) and finishes our own
login as a password would; ``/login/upstream/logged-out`` is where the upstream's
RP-initiated logout returns to (``upstream_logout``), for sessions that began upstream.

This package sits on the shared layer (the browser session, the login interaction, single
logout) and imports no other protocol package.
"""
