"""Our real CA hierarchy as a fixture for tests that sign in or authenticate apps with its
certificates (certificate sign-in, RFC 8705). A test module imports ``our_ca_fixture`` (the
``ca`` fixture) and the tests/ca_admin/conftest.py fixtures it needs::

    from tests.commune_sso.our_ca import ca_runtime, hierarchy, our_ca_fixture, people  # noqa: F401
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ca_admin import revocation
from ca_admin.profiles import OFFICIAL_AUTHENTICATION
from ca_admin.runtime import CaRuntime
from core.db import transaction
from tests.ca_admin.conftest import (  # noqa: F401 (fixtures)
    People,
    ca_runtime,
    hierarchy,
    make_csr,
    people,
)
from tests.ca_admin.test_issuance import approve, submit


@dataclass(frozen=True)
class OurCa:
    """Our CA hierarchy and the officials of tests/ca_admin/conftest.py."""

    runtime: CaRuntime
    people: People

    def issue(
        self,
        profile: str = OFFICIAL_AUTHENTICATION.name,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        **options: object,
    ) -> x509.Certificate:
        """A certificate for the official (on ``key`` when given), approved by the unit's
        admin."""
        if key is not None:
            options["csr"] = make_csr(key)[0]
        request_id = submit(self.runtime, self.people, profile=profile, **options)
        row = approve(self.runtime, self.people.unit_admin, request_id)
        assert row is not None
        return x509.load_der_x509_certificate(row.der)

    def revoke(self, certificate: x509.Certificate, reason: str) -> None:
        with transaction(self.runtime.session_factory) as session:
            revocation.revoke(
                session=session,
                runtime=self.runtime,
                actor="test",
                serial=format(certificate.serial_number, "x"),
                reason=reason,
            )


@pytest.fixture(name="ca")
def our_ca_fixture(ca_runtime: CaRuntime, people: People, hierarchy: object) -> OurCa:  # noqa: F811
    return OurCa(ca_runtime, people)
