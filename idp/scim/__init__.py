"""SCIM 2.0 server (RFC 7643 schemas, RFC 7644 protocol) for provisioning clients at /scim/v2.

This slice is read-only: discovery, search and retrieval of Users. Writes come later.
"""
