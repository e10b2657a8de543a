"""Hierarchy, requests, approvals and issuance, on real keys and both databases."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

from ca_admin import certificate_requests
from ca_admin.certificate_requests import Submission
from ca_admin.errors import (
    ApprovalRefused,
    BadCertificateRequest,
    PolicyViolation,
    ProfileIncomplete,
    RequestAlreadyDecided,
)
from ca_admin.hierarchy import chain_of
from ca_admin.models import Authority, CertificateRequest, IssuedCertificate
from ca_admin.profiles import ID_KP_DOCUMENT_SIGNING
from ca_admin.runtime import CaRuntime
from core import audit
from core.db import transaction
from core.errors import Conflict
from idp.models import Account, AccountProfile
from tests.ca_admin.conftest import ORGANISATION, People, make_csr


def submit(ca_runtime: CaRuntime, people: People, **options: object) -> str:
    fields: dict[str, object] = {
        "subject_ref": people.official.subject,
        "profile": "official-document-signing",
    }
    fields.update(options)
    if "csr" not in fields and not fields.get("server_keygen"):
        fields["csr"] = make_csr()[0]
    with transaction(ca_runtime.session_factory) as session:
        request = certificate_requests.submit(
            session=session,
            runtime=ca_runtime,
            actor=people.official.subject,
            submission=Submission(**fields),  # type: ignore[arg-type]
        )
        return request.request_id


def approve(ca_runtime: CaRuntime, approver: object, request_id: str) -> IssuedCertificate | None:
    with transaction(ca_runtime.session_factory) as session:
        request = certificate_requests.approve(
            session=session,
            runtime=ca_runtime,
            actor=approver.subject,
            request_id=request_id,  # type: ignore[attr-defined]
        )
        return (
            session.get(IssuedCertificate, request.certificate_id)
            if request.certificate_id
            else None
        )


def test_init_builds_root_issuing_ca_and_ocsp_signer(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority]
) -> None:
    root_row, issuing_row = hierarchy
    root = x509.load_der_x509_certificate(root_row.certificate_der)
    issuing = x509.load_der_x509_certificate(issuing_row.certificate_der)
    root.verify_directly_issued_by(root)
    issuing.verify_directly_issued_by(root)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    constraints = issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True and constraints.path_length == 0
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ORGANISATION
    assert issuing_row.ocsp_certificate_der is not None
    responder = x509.load_der_x509_certificate(issuing_row.ocsp_certificate_der)
    responder.verify_directly_issued_by(issuing)
    assert responder.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    ).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    with transaction(ca_runtime.session_factory) as session:
        actions = [e.action for e in audit.tail(session, limit=20, action_prefix="ca.")]
        assert {
            "ca.root.created",
            "ca.issuing.created",
            "ca.ocsp_signer.issued",
            "ca.crl.published",
        } <= set(actions)
        assert [c.subject for c in chain_of(session, ca_runtime, issuing_row.id)] == [
            issuing.subject,
            root.subject,
        ]


def test_second_init_is_refused(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority]
) -> None:
    from ca_admin.hierarchy import CaSetup, init_hierarchy

    with pytest.raises(Conflict), transaction(ca_runtime.session_factory) as session:
        init_hierarchy(
            session=session,
            runtime=ca_runtime,
            actor="test",
            setup=CaSetup(organisation="x", root_algorithm="ec-p256"),
        )


def test_approved_csr_gives_a_certificate_built_from_verified_data(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    csr, key = make_csr(common_name="Somebody Else")
    request_id = submit(ca_runtime, people, csr=csr)
    issued = approve(ca_runtime, people.unit_admin, request_id)
    assert issued is not None
    certificate = x509.load_der_x509_certificate(issued.der)
    certificate.verify_directly_issued_by(
        x509.load_der_x509_certificate(hierarchy[1].certificate_der)
    )
    assert certificate.public_key() == key.public_key()  # type: ignore[attr-defined]
    subject = {attribute.oid: attribute.value for attribute in certificate.subject}
    assert subject == {
        NameOID.COUNTRY_NAME: "VN",
        NameOID.STATE_OR_PROVINCE_NAME: "Thành phố Hà Nội",
        NameOID.LOCALITY_NAME: "Phường Hoàn Kiếm",
        NameOID.ORGANIZATION_NAME: "Ủy ban nhân dân phường Hoàn Kiếm",
        NameOID.TITLE: "Chuyên viên",
        NameOID.COMMON_NAME: "Nguyễn Văn An",
        NameOID.USER_ID: "CCCD:001090012345",
    }
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert not usage.value.key_encipherment
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION, ID_KP_DOCUMENT_SIGNING]
    cdp = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    # The CRL of the certificate's partition (ca_admin.crl_partitions), the first one.
    assert cdp[0].full_name[0].value == "http://127.0.0.1:8000/ca/crl/issuing-ca-1/1.crl"
    aia = {
        d.access_method: d.access_location.value
        for d in certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess
        ).value
    }
    assert aia == {
        x509.AuthorityInformationAccessOID.OCSP: "http://127.0.0.1:8000/ca/ocsp",
        x509.AuthorityInformationAccessOID.CA_ISSUERS: "http://127.0.0.1:8000/ca/certs/issuing-ca-1.cer",
    }
    assert certificate.serial_number.bit_length() > 128  # 16 random bytes behind a marker octet
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc <= timedelta(
        days=5 * 365 + 2
    )
    with transaction(ca_runtime.session_factory) as session:
        entry = audit.tail(session, limit=1, action_prefix="ca.certificate.issued")[0]
        assert entry.target == f"cert:{issued.serial}"


def test_validity_is_capped_by_profile_and_renewals_by_three_years(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    with pytest.raises(PolicyViolation):
        submit(ca_runtime, people, validity_days=5 * 365 + 2)
    request_id = submit(ca_runtime, people, validity_days=5 * 365)
    first = approve(ca_runtime, people.unit_admin, request_id)
    assert first is not None
    with pytest.raises(PolicyViolation):
        submit(ca_runtime, people, validity_days=4 * 365, renewal_of_serial=first.serial)
    renewal_id = submit(ca_runtime, people, validity_days=3 * 365, renewal_of_serial=first.serial)
    renewed = approve(ca_runtime, people.unit_admin, renewal_id)
    assert renewed is not None and renewed.renewal_of_id == first.id


@pytest.mark.parametrize(
    "key_factory, message",
    [
        (
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
            "at least 2048 bits",
        ),
        (lambda: ec.generate_private_key(ec.SECP192R1()), "P-256 or P-384"),
        (lambda: dsa.generate_private_key(key_size=2048), "DSA keys are not accepted"),
    ],
    ids=["rsa-1024", "p-192", "dsa"],
)
def test_weak_keys_are_refused_with_the_reason(
    ca_runtime: CaRuntime, hierarchy: object, people: People, key_factory: object, message: str
) -> None:
    from cryptography.hazmat.primitives import hashes

    key = key_factory()  # type: ignore[operator]
    try:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([]))
            .sign(key, hashes.SHA256())
        )
    except Exception:  # P-192 cannot sign with this OpenSSL: build the refusal from the key
        pytest.skip("this OpenSSL cannot sign with the weak key")
    with pytest.raises(BadCertificateRequest) as refused:
        submit(ca_runtime, people, csr=csr.public_bytes(Encoding.PEM))
    assert message in refused.value.text()


def test_an_ed25519_csr_is_refused_without_a_warning(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    """cryptography warns that DSA is deprecated whenever ``dsa.DSAPublicKey`` is touched: the
    refusal of another kind of key used to print that warning on the CLI (issue 18)."""
    key = ed25519.Ed25519PrivateKey.generate()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BadCertificateRequest) as refused:
            submit(ca_runtime, people, csr=csr.public_bytes(Encoding.PEM))
    assert "Ed25519/Ed448 keys are not accepted" in refused.value.text()


@pytest.mark.parametrize(
    "data, message",
    [(b"", "empty"), (b"garbage" * 10, "not a valid PKCS#10"), (b"x" * 20000, "too large")],
    ids=["empty", "garbage", "oversize"],
)
def test_bad_csrs_are_refused(
    ca_runtime: CaRuntime, hierarchy: object, people: People, data: bytes, message: str
) -> None:
    with pytest.raises(BadCertificateRequest) as refused:
        submit(ca_runtime, people, csr=data)
    assert message in refused.value.text()


def test_truncated_and_wrongly_signed_csrs_are_refused(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    csr_pem, _ = make_csr()
    der = x509.load_pem_x509_csr(csr_pem).public_bytes(Encoding.DER)
    with pytest.raises(BadCertificateRequest):
        submit(ca_runtime, people, csr=der[: len(der) // 2])
    tampered = bytearray(der)
    tampered[-5] ^= 0xFF  # inside the signature
    with pytest.raises(BadCertificateRequest) as refused:
        submit(ca_runtime, people, csr=bytes(tampered))
    assert "signature" in refused.value.text()


def test_a_key_already_certified_is_refused(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    csr, key = make_csr()
    approve(ca_runtime, people.unit_admin, submit(ca_runtime, people, csr=csr))
    again, _ = make_csr(key)  # type: ignore[arg-type]
    with pytest.raises(BadCertificateRequest) as refused:
        submit(ca_runtime, people, csr=again, subject_ref=people.colleague.subject)
    assert "already used" in refused.value.text()


def test_a_key_certified_after_the_request_was_made_is_refused_at_issuance(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    """Two requests for one key pass the early check; the insert refuses the second, and the
    refused approval leaves no certificate, no audit entry and the request still waiting."""
    csr, key = make_csr()
    first = submit(ca_runtime, people, csr=csr)
    again, _ = make_csr(key)  # type: ignore[arg-type]
    second = submit(ca_runtime, people, csr=again, subject_ref=people.colleague.subject)
    issued = approve(ca_runtime, people.unit_admin, first)
    assert issued is not None

    with pytest.raises(BadCertificateRequest) as refused:
        approve(ca_runtime, people.unit_admin, second)

    assert "already used" in refused.value.text()
    with ca_runtime.session_factory() as session:
        holders = session.scalars(
            select(IssuedCertificate.serial).where(
                IssuedCertificate.spki_sha256 == issued.spki_sha256
            )
        ).all()
        issued_entries = audit.tail(session, limit=10, action_prefix="ca.certificate.issued")
        request = certificate_requests.find_request(session, second)
    assert holders == [issued.serial]
    assert [entry.target for entry in issued_entries] == [f"cert:{issued.serial}"]
    assert (request.status, request.certificate_id) == ("pending", None)


def test_approval_is_scoped_and_never_by_the_requester(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    request_id = submit(ca_runtime, people)
    for outsider in (
        people.other_unit_admin,
        people.other_province_admin,
        people.colleague,
        people.official,
    ):
        with pytest.raises(ApprovalRefused):
            approve(ca_runtime, outsider, request_id)
    with transaction(ca_runtime.session_factory) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(IssuedCertificate)
                .where(IssuedCertificate.subject_ref == people.official.subject)
            )
            == 0
        )
    issued = approve(ca_runtime, people.province_admin, request_id)
    assert issued is not None
    with pytest.raises(RequestAlreadyDecided):
        approve(ca_runtime, people.unit_admin, request_id)


def test_organisation_profile_needs_two_different_approvers(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    request_id = submit(ca_runtime, people, profile="organisation-signing")
    assert approve(ca_runtime, people.unit_admin, request_id) is None
    with pytest.raises(Conflict):
        approve(ca_runtime, people.unit_admin, request_id)
    issued = approve(ca_runtime, people.second_unit_admin, request_id)
    assert issued is not None
    certificate = x509.load_der_x509_certificate(issued.der)
    assert (
        certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        == "Ủy ban nhân dân phường Hoàn Kiếm"
    )


def test_an_incomplete_profile_is_refused_at_request_and_at_issuance(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    # Provisioning accepts partial records: the request names what the certificate lacks.
    with pytest.raises(ProfileIncomplete) as refused:
        submit(ca_runtime, people, subject_ref=people.no_citizen_id.subject)
    assert refused.value.missing == ("citizen ID (CCCD)",)
    assert "missing: citizen ID (CCCD)." in refused.value.text()
    with transaction(ca_runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(CertificateRequest)) == 0
    # A record emptied after the request: refused again when issuing, naming every gap, and
    # no certificate with an empty subject.
    request_id = submit(ca_runtime, people)
    with transaction(ca_runtime.session_factory) as session:
        session.get(Account, people.official.id).full_name = " "  # type: ignore[union-attr]
        session.get(AccountProfile, people.official.id).citizen_id = None  # type: ignore[union-attr]
    with pytest.raises(ProfileIncomplete) as at_issuance:
        approve(ca_runtime, people.unit_admin, request_id)
    assert at_issuance.value.missing == ("full name", "citizen ID (CCCD)")
    with transaction(ca_runtime.session_factory) as session:
        issued = select(func.count()).where(
            IssuedCertificate.subject_ref == people.official.subject
        )
        assert session.scalar(issued) == 0


def test_double_submit_with_the_same_key_gives_one_request(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    first = submit(ca_runtime, people, idempotency_key="form-7f3a")
    second = submit(ca_runtime, people, idempotency_key="form-7f3a")
    assert first == second


def test_server_generated_key_is_delivered_once_as_aes_pkcs12(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    request_id = submit(ca_runtime, people, server_keygen=True)
    assert approve(ca_runtime, people.unit_admin, request_id) is None  # issued at collection
    with pytest.raises(ApprovalRefused), transaction(ca_runtime.session_factory) as session:
        certificate_requests.collect_pkcs12(
            session=session,
            runtime=ca_runtime,
            actor=people.unit_admin.subject,
            request_id=request_id,
            password="mật-khẩu-tệp-2026",
        )
    with transaction(ca_runtime.session_factory) as session:
        issued, data = certificate_requests.collect_pkcs12(
            session=session,
            runtime=ca_runtime,
            actor=people.official.subject,
            request_id=request_id,
            password="mật-khẩu-tệp-2026",
        )
    key, certificate, extra = pkcs12.load_key_and_certificates(data, "mật-khẩu-tệp-2026".encode())
    assert certificate is not None and key is not None
    assert certificate.serial_number == int(issued.serial, 16)
    assert len(extra) == 2  # issuing CA and root
    with pytest.raises(RequestAlreadyDecided), transaction(ca_runtime.session_factory) as session:
        certificate_requests.collect_pkcs12(
            session=session,
            runtime=ca_runtime,
            actor=people.official.subject,
            request_id=request_id,
            password="mật-khẩu-tệp-2026",
        )


def test_device_profile_refuses_server_keygen_and_needs_a_name(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    with pytest.raises(PolicyViolation):
        submit(ca_runtime, people, profile="device", server_keygen=True)
    request_id = submit(ca_runtime, people, profile="device", device_name="May In 01")
    with pytest.raises(PolicyViolation):
        approve(ca_runtime, people.unit_admin, request_id)
    issued = approve(
        ca_runtime,
        people.unit_admin,
        submit(ca_runtime, people, profile="device", device_name="scanner-01.hoankiem"),
    )
    assert issued is not None and issued.common_name == "scanner-01.hoankiem"


def test_issuance_refuses_an_issuer_key_as_subject_key(
    ca_runtime: CaRuntime, hierarchy: tuple[Authority, Authority], people: People
) -> None:
    """The issuing CA's own key is already 'used by another certificate'."""
    issuing_key = ca_runtime.key_store.get(hierarchy[1].key_uri)
    csr, _ = make_csr(issuing_key)  # type: ignore[arg-type]
    with pytest.raises(BadCertificateRequest):
        submit(ca_runtime, people, csr=csr)


def test_a_request_key_used_by_someone_else_is_refused(
    ca_runtime: CaRuntime, hierarchy: object, people: People
) -> None:
    submit(ca_runtime, people, idempotency_key="form-shared")
    with pytest.raises(Conflict), transaction(ca_runtime.session_factory) as session:
        certificate_requests.submit(
            session=session,
            runtime=ca_runtime,
            actor=people.colleague.subject,
            submission=Submission(
                subject_ref=people.colleague.subject,
                profile="official-document-signing",
                csr=make_csr()[0],
                idempotency_key="form-shared",
            ),
        )


def test_long_organisation_names_fit_and_bad_ca_names_are_refused(
    ca_runtime: CaRuntime,
) -> None:
    from ca_admin.hierarchy import CaSetup, init_hierarchy

    with pytest.raises(PolicyViolation), transaction(ca_runtime.session_factory) as session:
        init_hierarchy(
            session=session,
            runtime=ca_runtime,
            actor="test",
            setup=CaSetup(organisation=ORGANISATION, issuing_name="Issuing CA/1"),
        )
    with pytest.raises(PolicyViolation), transaction(ca_runtime.session_factory) as session:
        init_hierarchy(
            session=session, runtime=ca_runtime, actor="test", setup=CaSetup(organisation="x" * 65)
        )
    long_name = "Sở Khoa học, Công nghệ và Chuyển đổi số tỉnh Lào Cai mới"  # 56 characters
    with transaction(ca_runtime.session_factory) as session:
        root, issuing = init_hierarchy(
            session=session,
            runtime=ca_runtime,
            actor="test",
            setup=CaSetup(
                organisation=long_name,
                issuing_name="issuing-rsa2048-2026",
                root_algorithm="ec-p256",
                issuing_algorithm="ec-p256",
                ocsp_algorithm="ec-p256",
            ),
        )
    for row, role in ((root, " Root CA"), (issuing, " Issuing CA 2026")):
        name = x509.load_der_x509_certificate(row.certificate_der).subject
        common_name = name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        # The organisation is shortened; what tells the CAs apart is kept whole ("Issui…" was not).
        assert len(common_name.encode()) <= 64 and common_name.endswith("…" + role)
        assert long_name.startswith(common_name.removesuffix("…" + role).rstrip())
        assert name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == long_name


def test_ca_names_are_chosen_and_always_distinct(ca_runtime: CaRuntime) -> None:
    from ca_admin.hierarchy import CaSetup, add_issuing_ca, init_hierarchy

    long_name = "Sở Khoa học, Công nghệ và Chuyển đổi số tỉnh Lào Cai mới"
    fast = {"root_algorithm": "ec-p256", "issuing_algorithm": "ec-p256"}
    with pytest.raises(PolicyViolation), transaction(ca_runtime.session_factory) as session:
        init_hierarchy(
            session=session,
            runtime=ca_runtime,
            actor="test",
            setup=CaSetup(organisation=long_name, root_common_name="Ư" * 40, **fast),
        )
    with transaction(ca_runtime.session_factory) as session:
        root, first = init_hierarchy(
            session=session,
            runtime=ca_runtime,
            actor="test",
            setup=CaSetup(
                organisation=long_name,
                root_common_name="CA gốc Lào Cai",
                issuing_common_name="CA cấp phát Lào Cai",
                ocsp_algorithm="ec-p256",
                **fast,
            ),
        )

    def rollover(slug: str, common_name: str | None = None) -> Authority:
        with transaction(ca_runtime.session_factory) as session:
            root_row = session.get(Authority, root.id)
            assert root_row is not None
            return add_issuing_ca(
                session=session,
                runtime=ca_runtime,
                actor="test",
                root=root_row,
                name=slug,
                organisation=long_name,
                algorithm="ec-p256",
                ocsp_algorithm="ec-p256",
                common_name=common_name,
            )

    with pytest.raises(Conflict, match="CA cấp phát Lào Cai already exists"):
        rollover("issuing-ca-2", "CA cấp phát Lào Cai")
    second, third = rollover("issuing-ca-2"), rollover("issuing-ca-2b")
    fourth = rollover("issuing-ca-3")
    subjects = [root.subject, first.subject, second.subject, third.subject, fourth.subject]
    assert len(set(subjects)) == 5, subjects  # and so are the CRLs' issuer names
    assert "CN=CA gốc Lào Cai" in root.subject and "CN=CA cấp phát Lào Cai" in first.subject
    assert second.subject.startswith("CN=Sở Khoa học") and "… Issuing CA 2," in second.subject
    assert "… Issuing CA 3," in third.subject  # no number in the slug: the next one
    assert "… Issuing CA 4," in fourth.subject  # 3 is taken: the next free number


def test_batch_lookup_of_officials_gives_the_same_facts(
    ca_runtime: CaRuntime, people: People
) -> None:
    refs = {people.official.subject, people.system_admin.subject, "no-such-subject"}
    with transaction(ca_runtime.session_factory) as session:
        many = ca_runtime.directory.find_many(session, subject_refs=refs)
        assert set(many) == refs - {"no-such-subject"}
        for ref, identity in many.items():
            assert identity == ca_runtime.directory.find(session, subject_ref=ref)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Nguyễn Văn An", "Nguyễn Văn An"),
        ("x" * 64, "x" * 64),
        ("Ủy ban nhân dân phường Hoàn Kiếm, thành phố Hà Nội", None),
    ],
)
def test_common_names_fit_64_utf8_bytes(text: str, expected: str | None) -> None:
    from ca_admin.profiles import fit_common_name

    fitted = fit_common_name(text)
    assert len(fitted.encode()) <= 64
    if expected is not None:
        assert fitted == expected
    else:
        assert fitted.endswith("…") and text.startswith(fitted[:-1].rstrip())
        x509.NameAttribute(NameOID.COMMON_NAME, fitted)  # accepted by the encoder
