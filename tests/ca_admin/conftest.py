"""CA fixtures: a real hierarchy (file keys, P-256 to keep key generation quick), officials with
units, agencies and citizen IDs in the real IdP tables, and admins with delegated roles."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session
from starlette.applications import Starlette

from ca_admin import certificate_requests
from ca_admin.certificate_requests import Submission
from ca_admin.hierarchy import CaSetup, init_hierarchy
from ca_admin.models import Authority, IssuedCertificate
from ca_admin.runtime import CaRuntime
from commune_sso.ca_bridge import build_ca_runtime
from core.db import transaction
from core.settings import Settings
from core.text_search import fold_for_search
from idp import accounts, admin_scope
from idp.models import Account, AccountProfile, Agency, Unit
from idp.runtime import IdpRuntime

ORGANISATION = "Sở Khoa học và Công nghệ tỉnh Lào Cai"
HANOI, HOAN_KIEM, BA_DINH = "01", "00070", "00004"
HCMC, BEN_THANH = "79", "26743"


@pytest.fixture
def ca_runtime(settings: Settings, runtime: IdpRuntime) -> CaRuntime:
    return build_ca_runtime(settings, runtime)


@pytest.fixture
def app_ca(app: Starlette) -> CaRuntime:
    """The app's own CA runtime: issued state and served state share one authority cache."""
    runtime: CaRuntime = app.state.ca
    return runtime


def make_hierarchy(
    ca_runtime: CaRuntime, *, ocsp_algorithm: str = "ec-p256"
) -> tuple[Authority, Authority]:
    """Root and issuing CA on P-256 (fast keys), the OCSP signer as asked."""
    with transaction(ca_runtime.session_factory) as session:
        return init_hierarchy(
            session=session,
            runtime=ca_runtime,
            actor="test",
            setup=CaSetup(
                organisation=ORGANISATION,
                root_algorithm="ec-p256",
                issuing_algorithm="ec-p256",
                ocsp_algorithm=ocsp_algorithm,
            ),
        )


@pytest.fixture
def hierarchy(ca_runtime: CaRuntime) -> tuple[Authority, Authority]:
    return make_hierarchy(ca_runtime)


@dataclass(frozen=True)
class People:
    official: Account  # Hoàn Kiếm ward, People's Committee, with a citizen ID
    colleague: Account  # same ward
    unit_admin: Account  # admin of Hoàn Kiếm
    second_unit_admin: Account  # another admin of Hoàn Kiếm
    other_unit_admin: Account  # admin of Ba Đình (same province)
    province_admin: Account  # admin of Hà Nội
    other_province_admin: Account  # admin of Hồ Chí Minh City
    system_admin: Account
    no_citizen_id: Account


def _unit(
    session: Session, runtime: IdpRuntime, code: str, name: str, level: str, province: str
) -> Unit:
    now = runtime.clock.now()
    unit = Unit(
        code=code,
        level=level,
        name=name,
        division_type="Phường" if level == "ward" else "Thành phố Trung ương",
        province_code=province,
        status="active",
        created_at=now,
        updated_at=now,
    )
    session.add(unit)
    session.flush()
    return unit


def _account(
    session: Session,
    runtime: IdpRuntime,
    username: str,
    full_name: str,
    *,
    unit: Unit,
    agency: Agency | None = None,
    citizen_id: str | None = None,
    position: str | None = None,
    system_admin: bool = False,
) -> Account:
    account = accounts.create(
        session=session,
        clock=runtime.clock,
        passwords=runtime.passwords,
        actor="test",
        username=username,
        full_name=full_name,
        email=f"{username}@hanoi.gov.vn",
        is_system_admin=system_admin,
    )
    session.add(
        AccountProfile(
            account_id=account.id,
            unit_id=unit.id,
            agency_id=agency.id if agency else None,
            citizen_id=citizen_id,
            position=position,
            search_name=fold_for_search(full_name),
        )
    )
    session.flush()
    return account


@pytest.fixture
def people(runtime: IdpRuntime) -> People:
    with transaction(runtime.session_factory) as session:
        hanoi = _unit(session, runtime, HANOI, "Thành phố Hà Nội", "province", HANOI)
        hoan_kiem = _unit(session, runtime, HOAN_KIEM, "Phường Hoàn Kiếm", "ward", HANOI)
        ba_dinh = _unit(session, runtime, BA_DINH, "Phường Ba Đình", "ward", HANOI)
        hcmc = _unit(session, runtime, HCMC, "Thành phố Hồ Chí Minh", "province", HCMC)
        _unit(session, runtime, BEN_THANH, "Phường Bến Thành", "ward", HCMC)
        committee = Agency(
            unit_id=hoan_kiem.id, kind="people_committee", name="Ủy ban nhân dân phường Hoàn Kiếm"
        )
        session.add(committee)
        session.flush()

        def admin(username: str, role: str, unit: Unit) -> Account:
            account = _account(
                session, runtime, username, username.replace(".", " ").title(), unit=unit
            )
            admin_scope.grant(
                session=session,
                clock=runtime.clock,
                actor_scope=admin_scope.AdminScope(
                    system=True, province_codes=frozenset(), unit_ids=frozenset()
                ),
                actor="test",
                account=account,
                role=role,
                unit=unit,
            )
            return account

        return People(
            official=_account(
                session,
                runtime,
                "nguyen.van.an",
                "Nguyễn Văn An",
                unit=hoan_kiem,
                agency=committee,
                citizen_id="001090012345",
                position="Chuyên viên",
            ),
            colleague=_account(
                session,
                runtime,
                "tran.thi.binh",
                "Trần Thị Bình",
                unit=hoan_kiem,
                agency=committee,
                citizen_id="001190054321",
                position="Phó Chủ tịch",
            ),
            unit_admin=admin("admin.hoankiem", admin_scope.UNIT_ADMIN, hoan_kiem),
            second_unit_admin=admin("admin2.hoankiem", admin_scope.UNIT_ADMIN, hoan_kiem),
            other_unit_admin=admin("admin.badinh", admin_scope.UNIT_ADMIN, ba_dinh),
            province_admin=admin("admin.hanoi", admin_scope.PROVINCE_ADMIN, hanoi),
            other_province_admin=admin("admin.hcm", admin_scope.PROVINCE_ADMIN, hcmc),
            system_admin=_account(
                session, runtime, "root.admin", "Quản trị hệ thống", unit=hanoi, system_admin=True
            ),
            no_citizen_id=_account(
                session, runtime, "le.van.cuong", "Lê Văn Cường", unit=hoan_kiem
            ),
        )


def make_csr(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    *,
    common_name: str = "ignored",
) -> tuple[bytes, object]:
    """A PEM CSR; its subject is deliberately bogus: the CA must not copy it."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(Encoding.PEM), key


def submit_for(
    ca_runtime: CaRuntime,
    account: Account,
    *,
    server_keygen: bool = False,
    csr: bytes | None = None,
) -> str:
    """The official asks for a signing certificate (``csr``, else a fresh CSR, or a key made
    by the server); returns the request id."""
    with transaction(ca_runtime.session_factory) as session:
        return certificate_requests.submit(
            session=session,
            runtime=ca_runtime,
            actor=account.subject,
            submission=Submission(
                subject_ref=account.subject,
                profile="official-document-signing",
                csr=None if server_keygen else csr or make_csr()[0],
                server_keygen=server_keygen,
            ),
        ).request_id


def issue_one(
    ca_runtime: CaRuntime,
    people: People,
    account: Account | None = None,
    *,
    csr: bytes | None = None,
) -> IssuedCertificate:
    """A certificate for ``account`` (the official by default), requested and approved."""
    request_id = submit_for(ca_runtime, account or people.official, csr=csr)
    with transaction(ca_runtime.session_factory) as session:
        approved = certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            request_id=request_id,
        )
        issued = session.get(IssuedCertificate, approved.certificate_id)
        assert issued is not None
        return issued
