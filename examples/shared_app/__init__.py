"""A demo shared app (relying party) of commune-sso: see README.md, the integration guide."""
