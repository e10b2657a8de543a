"""CAS protocol 3.0 (Apereo CAS Protocol Specification 3.0.3), for the shared apps that speak
CAS rather than OpenID Connect.

One module per endpoint under ``endpoints/`` (``/cas/login``, ``/cas/serviceValidate`` and
``/cas/p3/serviceValidate``, ``/cas/validate``, ``/cas/logout``), over the shared layer: the
browser session and the login interaction (``idp.sessions``, ``idp.web.login``), the claims
OIDC releases (``idp.claims``) and single logout (``idp.logout``), which queues this
package's ``logoutRequest`` notices (``single_logout``) with every other protocol's.

Registered services (``services``) match the normalised ``service`` parameter
(``service_urls``) exactly or by an anchored regular expression. Service tickets
(``tickets``) are single-use, short-lived, bound to the service URL and stored as digests.
Proxy tickets are not supported.
"""
