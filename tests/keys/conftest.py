"""Fixtures of the key tests: the session's throwaway SoftHSM2 token (tests/softhsm.py)."""

from tests.softhsm import softhsm_token

__all__ = ["softhsm_token"]
