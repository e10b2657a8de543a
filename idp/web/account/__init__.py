"""The official's own pages on the identity provider (issue 5): profile, password, two-step
sign-in (TOTP), sessions, and the activation page of imported accounts.

Like Keycloak's account console they are authenticated by the SSO session cookie itself; no
session sends the official to a login that comes back here (``/login?next=/account...``).
"""
