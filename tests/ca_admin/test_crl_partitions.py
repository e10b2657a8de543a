"""Partitioned CRLs (RFC 5280 §5.2.5 issuingDistributionPoint, issue 18 "national scale").

With two certificates per partition, five certificates fill partitions 1, 1, 2, 2 and 3: each
one's CRLDP names its partition's URL, each partition CRL carries a critical IDP naming that same
URL, a revoked certificate is listed at once by its partition's CRL and by no other partition's,
and by the full CRL once the maintenance pass has signed it (within the full CRL's maximum
delay); a certificate whose CRLDP names the full CRL gets the full CRL signed at once. pkilint
judges the CRLs, ``openssl verify -crl_check`` accepts a partition's CRL for its own
certificates only, and pyhanko-certvalidator, requiring CRLs (no OCSP), fetches the partition
CRL a certificate names from the live service.
"""

from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from ca_admin import crl_partitions, issuance, maintenance
from ca_admin.models import Authority, IssuedCertificate, PartitionCrl
from ca_admin.profiles import get_profile
from ca_admin.runtime import CaRuntime
from commune_sso.ca_bridge import build_ca_runtime
from core.audit import AuditEntry
from core.clock import FixedClock
from core.db import transaction
from core.settings import Settings
from idp.runtime import IdpRuntime
from tests.ca_admin.interop_support import (
    Pki,
    build_pki,
    crl_named_by,
    crldp_url,
    errors_of,
    holder_key,
    issue_from_csr,
    lint_report,
    official,
    openssl,
    pkilint,
    revoke,
    sign_pdf,
    stored_crl,
    write_pem,
)
from tests.cli_runner import Cli
from tests.commune_sso.test_health_and_metrics import sample
from tests.idp.live_server import (  # noqa: F401 (fixtures)
    LiveServer,
    live_server_fixture,
    live_settings_fixture,
    loopback_socket_fixture,
)

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FILLED = [1, 1, 2, 2, 3]  # the partitions of five certificates, two per partition


def fill_partitions(
    runtime: CaRuntime, variant: str = "p256"
) -> tuple[Pki, list[x509.Certificate]]:
    runtime.crl_partition_size = 2
    pki = build_pki(runtime, variant)
    certificates = [
        issue_from_csr(pki, holder_key(), number=number) for number in range(1, len(FILLED) + 1)
    ]
    return pki, certificates


def partition_crl(pki: Pki, partition: int) -> x509.CertificateRevocationList:
    """The CRL of ``partition`` as last published (what /ca/crl/<ca>/<n>.crl serves)."""
    with transaction(pki.runtime.session_factory) as session:
        authority = session.scalars(select(Authority).where(Authority.name == pki.issuing_name))
        published = session.get(PartitionCrl, (authority.one().id, partition))
        assert published is not None
        return x509.load_der_x509_crl(published.der)


def partition_of(certificate: x509.Certificate) -> int:
    return int(crldp_url(certificate).rsplit("/", 1)[1].removesuffix(".crl"))


def issuing_id(pki: Pki) -> int:
    with transaction(pki.runtime.session_factory) as session:
        return session.scalars(select(Authority.id).where(Authority.name == pki.issuing_name)).one()


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def listed(crl: x509.CertificateRevocationList, certificate: x509.Certificate) -> bool:
    return crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None


@sqlite_only
def test_certificates_fill_partitions_in_order_and_name_their_partition_crl(
    ca_runtime: CaRuntime,
) -> None:
    pki, certificates = fill_partitions(ca_runtime)

    assert [crldp_url(c) for c in certificates] == [
        f"{ca_runtime.base_url}/ca/crl/{pki.issuing_name}/{n}.crl" for n in FILLED
    ]
    with transaction(ca_runtime.session_factory) as session:
        stored = session.scalars(
            select(IssuedCertificate.crl_partition).order_by(IssuedCertificate.id)
        )
        # The issuing CA's and the OCSP signer's certificates (the root's) stay on the full CRL.
        assert [p for p in stored if p is not None] == FILLED
    numbers = []
    for partition in sorted(set(FILLED)):
        crl = partition_crl(pki, partition)
        assert len(crl) == 0  # published, empty, when its first certificate was issued
        scope = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert scope.critical
        assert scope.value.full_name == [
            x509.UniformResourceIdentifier(ca_runtime.crl_url(pki.issuing_name, partition))
        ]
        assert scope.value.only_contains_user_certs and not scope.value.indirect_crl
        assert crl.is_signature_valid(pki.issuing.public_key())  # type: ignore[arg-type]
        numbers.append(crl_number(crl))
    full = stored_crl(pki, pki.issuing_name)
    with pytest.raises(x509.ExtensionNotFound):  # the full CRL covers every certificate
        full.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    # One CRL number sequence per issuer: no two CRLs of the CA share a number.
    assert len({*numbers, crl_number(full)}) == len(numbers) + 1


@sqlite_only
@pytest.mark.parametrize("variant", ["p256", "rsa-pss"])
def test_a_revocation_re_signs_its_partition_then_the_pass_the_full_crl_and_pkilint_passes_them(
    ca_runtime: CaRuntime, variant: str
) -> None:
    pki, certificates = fill_partitions(ca_runtime, variant)
    before = {partition: crl_number(partition_crl(pki, partition)) for partition in (1, 2, 3)}
    full_before = crl_number(stored_crl(pki, pki.issuing_name))
    revoked = certificates[2]  # partition 2

    revoke(pki, revoked, "keyCompromise")

    own, others = partition_crl(pki, 2), [partition_crl(pki, 1), partition_crl(pki, 3)]
    assert listed(own, revoked) and len(own) == 1
    assert not any(listed(crl, revoked) for crl in others)
    # Only the affected partition was signed again; its number grew within its scope.
    assert crl_number(own) > before[2]
    assert [crl_number(crl) for crl in others] == [before[1], before[3]]
    assert crl_number(stored_crl(pki, pki.issuing_name)) == full_before

    maintenance.run_due(ca_runtime)

    full = stored_crl(pki, pki.issuing_name)
    assert listed(full, revoked) and len(full) == 1
    assert crl_number(full) > crl_number(own)
    for document, crl in (("partition 2", own), ("partition 1", others[0]), ("full", full)):
        findings = pkilint("crl", crl.public_bytes(Encoding.DER))
        assert not errors_of(findings), f"pkilint on {variant} {document} CRL:\n" + lint_report(
            findings
        )


@sqlite_only
def test_openssl_verify_crl_check_accepts_a_partition_crl_for_its_own_certificates_only(
    ca_runtime: CaRuntime, tmp_path: Path
) -> None:
    pki, certificates = fill_partitions(ca_runtime)
    revoked, good_same_partition, other_partition = (
        certificates[2],
        certificates[3],
        certificates[0],
    )
    revoke(pki, revoked, "keyCompromise")
    root = write_pem(tmp_path, "root.pem", pki.root)
    issuing = write_pem(tmp_path, "issuing.pem", pki.issuing)

    def verify(certificate: x509.Certificate, crl: x509.CertificateRevocationList) -> str:
        result = openssl(
            "verify",
            "-CAfile",
            root,
            "-untrusted",
            issuing,
            "-crl_check",
            "-CRLfile",
            write_pem(tmp_path, "crl.pem", crl),
            write_pem(tmp_path, "certificate.pem", certificate),
        )
        output = result.stdout + result.stderr
        assert (result.returncode == 0) == ("certificate.pem: OK" in output), output
        return output

    partition_2 = partition_crl(pki, 2)
    assert "certificate.pem: OK" in verify(good_same_partition, partition_2)
    assert "certificate revoked" in verify(revoked, partition_2)
    # Partition 2's IDP does not name partition 1's URL: that CRL says nothing about it.
    assert "different CRL scope" in verify(other_partition, partition_2)
    assert "certificate.pem: OK" in verify(other_partition, partition_crl(pki, 1))
    # The full CRL (no IDP), once the maintenance pass signed it, decides for every certificate.
    maintenance.run_due(ca_runtime)
    full = stored_crl(pki, pki.issuing_name)
    assert "certificate.pem: OK" in verify(other_partition, full)
    assert "certificate revoked" in verify(revoked, full)


def test_certificates_issued_without_partitions_get_the_full_crl_signed_at_once(
    ca_runtime: CaRuntime,
) -> None:
    """As the migration leaves the certificates issued before partitions: crl_partition NULL,
    their CRLDP naming the full CRL, which their revocation therefore signs before it returns
    (and nothing is left for the maintenance pass)."""
    ca_runtime.crl_partition_size = 0
    pki = build_pki(ca_runtime, "p256")
    before = issue_from_csr(pki, holder_key())
    assert crldp_url(before) == ca_runtime.crl_url(pki.issuing_name)
    ca_runtime.crl_partition_size = 2
    after = issue_from_csr(pki, holder_key(), number=2)
    assert crldp_url(after) == ca_runtime.crl_url(pki.issuing_name, 1)

    revoke(pki, before, "affiliationChanged")

    assert listed(crl_named_by(ca_runtime, before), before)
    assert len(partition_crl(pki, 1)) == 0
    with transaction(ca_runtime.session_factory) as session:
        authority = session.scalars(select(Authority).where(Authority.name == pki.issuing_name))
        assert authority.one().full_crl_stale_since is None
    assert maintenance.run_due(ca_runtime) == ([], [])


def test_a_ca_without_partitions_signs_its_full_crl_at_every_revocation(
    ca_runtime: CaRuntime,
) -> None:
    ca_runtime.crl_partition_size = 0
    pki = build_pki(ca_runtime, "p256")
    certificate = issue_from_csr(pki, holder_key())
    number = crl_number(stored_crl(pki, pki.issuing_name))

    revoke(pki, certificate, "keyCompromise")

    full = stored_crl(pki, pki.issuing_name)
    assert listed(full, certificate) and crl_number(full) == number + 1
    assert maintenance.run_due(ca_runtime) == ([], [])


def full_crl_catch_ups(runtime: CaRuntime) -> list[dict[str, object]]:
    """The details of each full CRL signed because revocations had left it behind."""
    with transaction(runtime.session_factory) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "ca.crl.published"))
        details = [json.loads(entry.details) for entry in entries]
    return [d for d in details if d["cause"] == "catch_up"]


def full_crl_behind_seconds(web: TestClient, authority: str) -> float:
    """The gauge as /metrics shows it to a scraper on the same host."""
    local = TestClient(web.app, base_url=str(web.base_url), client=("127.0.0.1", 50000))
    metrics = local.get("/metrics")
    assert metrics.status_code == 200, metrics.text
    return sample(metrics.text, "commune_sso_full_crl_behind_seconds", authority=authority)


def test_the_full_crl_follows_a_partitioned_revocation_by_the_maintenance_pass(
    app_ca: CaRuntime, web: TestClient, cli: Cli
) -> None:
    """Served over HTTP: partition 2's CRL lists the revocation as soon as it returns, the full
    CRL only after a maintenance pass; the CLI shows the full CRL behind meanwhile."""
    pki, certificates = fill_partitions(app_ca)
    full_url = f"/ca/crl/{pki.issuing_name}.crl"
    full_before = web.get(full_url).content
    revoked = certificates[2]

    revoke(pki, revoked, "keyCompromise")

    assert listed(x509.load_der_x509_crl(web.get(crldp_url(revoked)).content), revoked)
    assert web.get(full_url).content == full_before  # not signed again by the revocation
    [row] = [r for r in cli.json("ca", "authorities") if r["name"] == pki.issuing_name]
    stale_since = datetime.fromisoformat(row["full_crl_stale_since"])
    assert stale_since == app_ca.clock.now()
    assert datetime.fromisoformat(row["full_crl_due_by"]) == stale_since + timedelta(minutes=5)
    assert "behind since" in cli.ok("ca", "crl-partitions").stdout
    clock = app_ca.clock
    assert isinstance(clock, FixedClock)
    clock.advance(seconds=42)
    assert full_crl_behind_seconds(web, pki.issuing_name) == 42

    numbers, _ = maintenance.run_due(app_ca)

    full = x509.load_der_x509_crl(web.get(full_url).content)
    assert listed(full, revoked) and numbers == [crl_number(full)]
    assert [d["partition"] for d in full_crl_catch_ups(app_ca)] == [None]
    [row] = [r for r in cli.json("ca", "authorities") if r["name"] == pki.issuing_name]
    assert row["full_crl_stale_since"] is None and row["full_crl_due_by"] is None
    assert full_crl_behind_seconds(web, pki.issuing_name) == 0
    assert maintenance.run_due(app_ca) == ([], [])  # nothing left behind


def test_the_full_crl_is_signed_by_the_last_pass_within_its_maximum_delay(
    ca_runtime: CaRuntime,
) -> None:
    """With COMMUNE_SSO_CA_FULL_CRL_MAX_DELAY of an hour, revocations within it share one full
    CRL: the passes (every 5 minutes) leave it until the next pass would come too late."""
    ca_runtime.full_crl_max_delay = timedelta(hours=1)
    assert maintenance.pass_interval(ca_runtime) == 300
    pki, certificates = fill_partitions(ca_runtime)
    clock = ca_runtime.clock
    assert isinstance(clock, FixedClock)
    revoke(pki, certificates[0], "superseded")
    clock.advance(minutes=20)
    revoke(pki, certificates[4], "keyCompromise")  # later: the first one's delay counts

    clock.advance(minutes=34, seconds=59)
    assert maintenance.run_due(ca_runtime) == ([], [])
    assert len(stored_crl(pki, pki.issuing_name)) == 0
    clock.advance(seconds=1)  # 55 minutes after the first revocation: the next pass is at 60
    numbers, _ = maintenance.run_due(ca_runtime)

    full = stored_crl(pki, pki.issuing_name)
    assert numbers == [crl_number(full)]
    assert listed(full, certificates[0]) and listed(full, certificates[4])


def test_parallel_maintenance_passes_sign_the_full_crl_once(ca_runtime: CaRuntime) -> None:
    """Every serving process runs the pass; the full CRL takes seconds to sign at national
    scale, under the lock revocations wait for. Passes that found it behind before another one
    signed it decide again once they hold the lock, and leave it."""
    pki, certificates = fill_partitions(ca_runtime)
    revoke(pki, certificates[3], "keyCompromise")
    with ThreadPoolExecutor(max_workers=2) as pool:
        with transaction(ca_runtime.session_factory) as session:
            # Hold the CA row, so both passes find the full CRL behind and wait for the lock.
            session.scalars(
                select(Authority).where(Authority.name == pki.issuing_name).with_for_update()
            ).one()
            passes = [pool.submit(maintenance.run_due, ca_runtime) for _ in range(2)]
            time.sleep(1.0)
        results = [p.result(timeout=60)[0] for p in passes]

    assert sorted(len(numbers) for numbers in results) == [0, 1]
    assert len(full_crl_catch_ups(ca_runtime)) == 1
    assert listed(stored_crl(pki, pki.issuing_name), certificates[3])


def test_a_short_maximum_delay_makes_the_maintenance_pass_run_more_often(
    ca_runtime: CaRuntime,
) -> None:
    ca_runtime.full_crl_max_delay = timedelta(seconds=60)
    assert maintenance.pass_interval(ca_runtime) == 60
    pki, certificates = fill_partitions(ca_runtime)
    revoke(pki, certificates[1], "superseded")
    numbers, _ = maintenance.run_due(ca_runtime)
    assert numbers == [crl_number(stored_crl(pki, pki.issuing_name))]


def test_partition_crls_are_served_over_http_and_refreshed_on_schedule(
    app_ca: CaRuntime, web: TestClient
) -> None:
    pki, certificates = fill_partitions(app_ca)
    revoke(pki, certificates[0], "superseded")
    url = crldp_url(certificates[0]).removeprefix(app_ca.base_url)

    response = web.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pkix-crl"
    assert response.content == partition_crl(pki, 1).public_bytes(Encoding.DER)
    assert web.get(url, headers={"If-None-Match": response.headers["etag"]}).status_code == 304
    assert web.get(f"/ca/crl/{pki.issuing_name}/9.crl").status_code == 404
    assert web.get(f"/ca/crl/{pki.issuing_name}/x.crl").status_code == 404

    # Near nextUpdate the maintenance pass re-signs the full CRL and every partition's.
    clock = app_ca.clock
    assert isinstance(clock, FixedClock)
    clock.advance(hours=19)
    numbers, _ = maintenance.run_due(app_ca)
    assert len(numbers) == 1 + len(set(FILLED))
    assert numbers == sorted(numbers)
    refreshed = web.get(url)
    assert refreshed.headers["etag"] != response.headers["etag"]
    crl = x509.load_der_x509_crl(refreshed.content)
    assert listed(crl, certificates[0])
    assert crl.last_update_utc == clock.now().replace(microsecond=0)


# --------------------------------------------------------------------------------------------
# pyHanko, CRLs only, hard-fail


def _validate_with_crls_only(pdf: bytes, pki: Pki) -> tuple[PdfSignatureStatus, ValidationContext]:
    (embedded,) = PdfFileReader(BytesIO(pdf)).embedded_signatures
    crl_required = RevocationCheckingPolicy(
        ee_certificate_rule=RevocationCheckingRule.CRL_REQUIRED,
        intermediate_ca_cert_rule=RevocationCheckingRule.CRL_REQUIRED,
    )
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(pki.root.public_bytes(Encoding.DER))],
        allow_fetching=True,
        revinfo_policy=CertRevTrustPolicy(crl_required),
    )
    return validate_pdf_signature(embedded, signer_validation_context=context), context


def test_pyhanko_hard_fail_uses_the_partition_crl_the_certificate_names(
    app_ca: CaRuntime, live_server: LiveServer
) -> None:
    app_ca.crl_partition_size = 1
    pki = build_pki(app_ca, "p256")
    first_key, second_key = holder_key(), holder_key()
    first = issue_from_csr(pki, first_key)
    second = issue_from_csr(pki, second_key, number=2)
    assert crldp_url(second) == live_server.issuer + f"/ca/crl/{pki.issuing_name}/2.crl"
    first_pdf, second_pdf = sign_pdf(first_key, first, pki), sign_pdf(second_key, second, pki)

    status, context = _validate_with_crls_only(second_pdf, pki)
    assert status.trusted, status.pretty_print_details()
    assert context.ocsps == []
    scopes = [
        crl["tbs_cert_list"]["crl_extensions"] for crl in context.crls
    ]  # the root's CRL (for the issuing CA) and partition 2's
    urls = [
        extension["extn_value"].parsed["distribution_point"].chosen[0].native
        for extensions in scopes
        for extension in extensions
        if extension["extn_id"].native == "issuing_distribution_point"
    ]
    assert urls == [crldp_url(second)]

    revoke(pki, second, "keyCompromise")
    status, _ = _validate_with_crls_only(second_pdf, pki)
    assert not status.trusted, status.pretty_print_details()
    assert status.revocation_details is not None
    assert status.revocation_details.revocation_reason.native == "key_compromise"
    # Partition 1's CRL does not list it: the first certificate still validates.
    assert _validate_with_crls_only(first_pdf, pki)[0].trusted


@sqlite_only
def test_a_partition_handed_out_without_its_crl_gets_one_from_the_maintenance_pass(
    ca_runtime: CaRuntime,
) -> None:
    """Its opening issuance rolled back after another certificate had claimed a number in it,
    or its rows were loaded in bulk (bench/ca_scale_data.py): the next pass publishes it."""
    pki, certificates = fill_partitions(ca_runtime)
    with transaction(ca_runtime.session_factory) as session:
        authority = session.scalars(select(Authority).where(Authority.name == pki.issuing_name))
        lost = session.get(PartitionCrl, (authority.one().id, 3))
        assert lost is not None
        session.delete(lost)

    numbers, _ = maintenance.run_due(ca_runtime)

    assert len(numbers) == 1
    crl = partition_crl(pki, 3)
    assert crl_number(crl) == numbers[0]
    scope = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    assert scope.full_name == [x509.UniformResourceIdentifier(crldp_url(certificates[4]))]


# --------------------------------------------------------------------------------------------
# Numbers claimed ahead (PostgreSQL) and partitions remembered as published


def test_two_processes_fill_partitions_without_overfilling_any(
    ca_runtime: CaRuntime, settings: Settings, runtime: IdpRuntime
) -> None:
    """On PostgreSQL each process claims its numbers in blocks (1, 2, 4, ... numbers, never past
    the end of a partition), so two processes may fill two partitions side by side; on SQLite
    numbers go one by one in the caller's transaction. Either way no partition gets more than
    its size, and each partition a certificate names has its CRL."""
    other = build_ca_runtime(settings, runtime)  # a second worker on the same database
    ca_runtime.crl_partition_size = other.crl_partition_size = 3
    pki = build_pki(ca_runtime, "p256")
    from_other = dataclasses.replace(pki, runtime=other)
    order = [pki, from_other, pki, pki, from_other, pki]

    partitions = [
        partition_of(issue_from_csr(by, holder_key(), number=number))
        for number, by in enumerate(order, start=1)
    ]

    authority_id = issuing_id(pki)
    with transaction(ca_runtime.session_factory) as session:
        upcoming = [
            crl_partitions.upcoming(session=session, runtime=by, authority_id=authority_id)
            for by in (ca_runtime, other)
        ]
    if ca_runtime.engine().dialect.name == "postgresql":
        # Blocks of 1, 1 and 1 (the rest of partition 1) numbers; then the first process
        # claims 3 numbers (all of partition 2) and the second 2 numbers of partition 3, and
        # each one's next certificate and preview come from its own block.
        assert partitions == [1, 1, 1, 2, 3, 2]
        assert upcoming == [2, 3]
    else:
        assert partitions == [1, 1, 1, 2, 2, 2]
        assert upcoming == [3, 3]
    assert max(partitions.count(partition) for partition in partitions) <= 3
    for partition in set(partitions):
        assert len(partition_crl(pki, partition)) == 0


def test_a_partition_crl_rolled_back_with_its_batch_is_published_by_the_next_issuance(
    ca_runtime: CaRuntime,
) -> None:
    """The second certificate of a batch finds the CRL the first one published, uncommitted:
    the process must not remember that partition as published, or after a rollback the next
    certificate would name a partition with no CRL."""
    ca_runtime.crl_partition_size = 5
    pki = build_pki(ca_runtime, "p256")

    def issue_in(session: Session, number: int) -> None:
        issuance.issue(
            session=session,
            runtime=ca_runtime,
            actor="test",
            order=issuance.IssueOrder(
                profile=get_profile("official-document-signing"),
                identity=official(number),
                public_key=holder_key().public_key(),
            ),
        )

    with pytest.raises(RuntimeError), transaction(ca_runtime.session_factory) as session:
        issue_in(session, 1)
        issue_in(session, 2)
        raise RuntimeError("the batch fails after its certificates were signed")
    with transaction(ca_runtime.session_factory) as session:
        assert session.scalars(select(PartitionCrl)).all() == []

    certificate = issue_from_csr(pki, holder_key(), number=3)

    assert partition_of(certificate) == 1
    assert len(partition_crl(pki, 1)) == 0
