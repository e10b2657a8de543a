"""Certificate authority for officials' document-signing certificates (issue 4).

Layers, as in the rest of the service: ``web`` -> services (``certificate_requests``,
``issuance``, ``revocation``, ``crl``, ``ocsp``) -> ``models`` -> ``core.db``. Keys come from
``keys.signing_keys`` by URI, so a PKCS#11 key signs exactly like a file key. ``ca_admin`` never
imports ``idp``: what it knows about an official arrives through :mod:`ca_admin.officials`
(an interface the composition root implements) and account lifecycle events.
"""
