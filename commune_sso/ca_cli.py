"""``commune-sso ca``: the certificate authority from the command line (DESIGN: CLI contract).

Who acts: commands that take part in the RA step (``issue``, ``approve``, ``reject``,
``renew``, ``merger plan``, ``merger approve``) need ``--as ADMIN_USERNAME``: the two-person
rule compares admins, and each admin must administer the official's unit. ``revoke``, ``hold``
and ``release`` take ``--as`` too, and without it act as the operator ("cli"), who holds the
server's keys and so has full reach, as for ``user disable``: a key compromise at night must
not wait for an admin account. The audit log records who acted either way.

The group does not import ``commune_sso.cli`` (which imports this module to register it), so
it has its own small ``fail``/``emit`` like the ones there.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ca_admin import (
    certificate_requests,
    crl,
    crl_partitions,
    hierarchy,
    revocation,
    tsa_certificate,
    unit_merger,
)
from ca_admin.certificate_requests import Submission
from ca_admin.errors import ApprovalRefused
from ca_admin.models import (
    Approval,
    Authority,
    CertificateRequest,
    IssuedCertificate,
    PartitionCrl,
    PublishedCrl,
    TimeStampingUnit,
)
from ca_admin.officials import OfficialIdentity, usernames_of
from ca_admin.profiles import dn_text
from ca_admin.revocation import END_ENTITY_REASONS
from ca_admin.runtime import CaRuntime, LoadedAuthority
from ca_admin.serials import openssl_serial
from ca_admin.signing import CA_KEY_ALGORITHMS
from commune_sso import ca_lifecycle_feed, secrets_setup
from commune_sso.ca_bridge import build_ca_runtime
from commune_sso.cli_output import (
    CLI_ACTOR,
    JsonOption,
    clean_errors,
    console,
    emit,
    fail,
)
from core import audit
from core.clock import Clock, SystemClock
from core.db import make_engine, make_session_factory, transaction
from core.errors import NotFound, PermissionDenied
from core.settings import Settings
from core.text_search import fold_for_search
from core.web.i18n import N_
from keys.signing_keys import describe_key_uri, export_private_key_pem

ca_app = typer.Typer(
    help="Signing-certificate authority: hierarchy, requests, approvals, revocation, CRLs.",
    no_args_is_help=True,
)
merger_app = typer.Typer(
    help="Revoke and re-issue the certificates of a unit merged into another.",
    no_args_is_help=True,
)
ca_app.add_typer(merger_app, name="merger")
tsa_app = typer.Typer(
    help="RFC 3161 time-stamping authority (POST /tsa): its key and certificate.",
    no_args_is_help=True,
)
ca_app.add_typer(tsa_app, name="tsa")

AdminOption = Annotated[
    str, typer.Option("--as", help="Act as this administrator (username); required.")
]
OptionalAdminOption = Annotated[
    str | None,
    typer.Option("--as", help="Act as this administrator (username). Default: the operator."),
]
CA_PROFILES = ("issuing-ca", "ocsp-signing")
SIGNATURE_SCHEMES = ("pkcs1v15", "pss")


@dataclass
class _SharedBasics:
    """What build_ca_runtime needs of the IdP runtime; the CLI builds no web app."""

    clock: Clock
    session_factory: sessionmaker[Session]


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as error:
        fail(f"invalid settings: {error}")


def ca_runtime(current: Settings | None = None) -> CaRuntime:
    current = current or load_settings()
    factory = make_session_factory(make_engine(current.resolved_database_url))
    audit.install(factory)
    with clean_errors():
        return build_ca_runtime(current, _SharedBasics(SystemClock(), factory))
    raise AssertionError("unreachable")  # clean_errors() exits on every error


def resolve_admin(session: Session, runtime: CaRuntime, username: str) -> OfficialIdentity:
    identity = runtime.directory.find_by_username(session, username=username)
    if identity is None or not identity.active:
        raise PermissionDenied(N_("%(user)s is not an active administrator."), user=username)
    return identity


def acting(session: Session, runtime: CaRuntime, username: str | None, unit: str | None) -> str:
    """The audit actor: the operator, or an admin who must administer ``unit``."""
    if username is None:
        return CLI_ACTOR
    admin = resolve_admin(session, runtime, username)
    if not runtime.approvers.may_administer(session, actor_ref=admin.subject_ref, unit_code=unit):
        raise ApprovalRefused(N_("You do not administer this official's unit."))
    return admin.subject_ref


def read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}")


def write_new_file(path: str, data: bytes, *, private: bool = False) -> None:
    target = Path(path)
    try:
        if private:
            # O_EXCL: never overwrite, never follow a planted symlink; 0600 from the start.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        else:
            target.write_bytes(data)
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror}")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def certificate_as_dict(row: IssuedCertificate, authorities: dict[int, str]) -> dict[str, Any]:
    return {
        "serial": openssl_serial(row.serial),
        "common_name": row.common_name,
        "profile": row.profile,
        "unit_code": row.unit_code,
        "status": row.status,
        "revocation_reason": row.revocation_reason,
        "revoked_at": iso(row.revoked_at),
        "not_before": iso(row.not_before),
        "not_after": iso(row.not_after),
        "authority": authorities.get(row.authority_id),
        "subject_ref": row.subject_ref,
    }


def authority_names(session: Session) -> dict[int, str]:
    return {row.id: row.name for row in session.execute(select(Authority.id, Authority.name))}


def request_as_dict(
    session: Session, runtime: CaRuntime, request: CertificateRequest, serial: str | None = None
) -> dict[str, Any]:
    """A request as the CLI prints it: ``id`` as in the REST API, people by username."""
    approvers = list(
        session.scalars(
            select(Approval.approver).where(Approval.request_id == request.id).order_by(Approval.id)
        )
    )
    names = usernames_of(runtime.directory, session, [request.requested_by, *approvers])
    return {
        "id": request.request_id,
        "status": request.status,
        "profile": request.profile,
        "official": request.identity.get("username"),
        "full_name": request.identity.get("full_name"),
        "unit_code": request.unit_code,
        "requested_by": names[request.requested_by],
        "requested_at": iso(request.requested_at),
        "approvals_required": request.approvals_required,
        "approved_by": [names[approver] for approver in approvers],
        "server_keygen": request.server_keygen,
        "decision_reason": request.decision_reason,
        "serial": serial,
    }


def _serial_of(session: Session, request: CertificateRequest) -> str | None:
    if request.certificate_id is None:
        return None
    issued = session.get(IssuedCertificate, request.certificate_id)
    return openssl_serial(issued.serial) if issued else None


def print_request(data: dict[str, Any]) -> None:
    console.print(
        f"request {data['id']}: {data['status']} "
        f"({escape(str(data['full_name']))}, {data['profile']})"
    )
    if data["serial"]:
        console.print(f"certificate issued: serial {data['serial']}")
    elif data["status"] == "pending":
        console.print(
            "waiting for approval: `commune-sso ca approve "
            f"{data['id']} --as OTHER_ADMIN` (a different admin)"
        )


# --------------------------------------------------------------------------------------------
# hierarchy


@ca_app.command("init")
def ca_init(
    organisation: Annotated[
        str | None,
        typer.Option(
            "--organisation",
            help='e.g. "Sở KH&CN tỉnh Lào Cai". Default: COMMUNE_SSO_ORGANISATION_NAME.',
        ),
    ] = None,
    root_name: Annotated[
        str | None,
        typer.Option(
            "--root-name",
            help='The root CA\'s name (CN), at most 64 bytes. Default: "<organisation> Root CA".',
        ),
    ] = None,
    issuing_name: Annotated[
        str | None,
        typer.Option(
            "--issuing-name",
            help="The first issuing CA's name (CN), at most 64 bytes. Default: "
            '"<organisation> Issuing CA 1" (the organisation shortened, never the number).',
        ),
    ] = None,
    root_algorithm: Annotated[str, typer.Option(help="Root CA key.")] = "rsa-3072",
    issuing_algorithm: Annotated[str, typer.Option(help="Issuing CA key.")] = "rsa-2048",
    ocsp_algorithm: Annotated[str, typer.Option(help="OCSP responder key.")] = "rsa-2048",
    signature_scheme: Annotated[
        str, typer.Option(help="RSA signatures: pkcs1v15 or pss (RSASSA-PSS).")
    ] = "pkcs1v15",
    root_key_uri: Annotated[
        str | None, typer.Option(help="file: or pkcs11: URI. Default: a file in the CA key dir.")
    ] = None,
    issuing_key_uri: Annotated[str | None, typer.Option(help="file: or pkcs11: URI.")] = None,
    ocsp_key_uri: Annotated[str | None, typer.Option(help="file: or pkcs11: URI.")] = None,
    export_root_key: Annotated[
        str | None,
        typer.Option(help="Write the root key here as encrypted PKCS#8 PEM, to keep offline."),
    ] = None,
    export_passphrase_file: Annotated[
        str | None, typer.Option(help="File whose first line encrypts the exported root key.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create the root CA, the first issuing CA, its OCSP responder certificate and CRLs."""
    for label, algorithm in (
        ("root", root_algorithm),
        ("issuing", issuing_algorithm),
        ("ocsp", ocsp_algorithm),
    ):
        if algorithm not in CA_KEY_ALGORITHMS:
            fail(f"--{label}-algorithm must be one of {', '.join(CA_KEY_ALGORITHMS)}")
    if signature_scheme not in SIGNATURE_SCHEMES:
        fail("--signature-scheme must be pkcs1v15 or pss")
    export_passphrase = None
    if export_root_key is not None:
        # Checked before anything is created: a failed export after init would leave a
        # hierarchy whose root key nobody has put away.
        if export_passphrase_file is None:
            fail("--export-root-key needs --export-passphrase-file")
        lines = read_file(export_passphrase_file).decode("utf-8", "replace").splitlines()
        export_passphrase = lines[0].strip() if lines else ""
        if len(export_passphrase) < 12:
            fail("the export passphrase must be at least 12 characters long")
        if Path(export_root_key).exists():
            fail(f"{export_root_key} already exists; choose a new file")
    current = load_settings()
    organisation = organisation or current.organisation_name
    if not organisation:
        fail("give --organisation, or set COMMUNE_SSO_ORGANISATION_NAME")
    runtime = ca_runtime(current)
    setup = hierarchy.CaSetup(
        organisation=organisation,
        root_algorithm=root_algorithm,
        issuing_algorithm=issuing_algorithm,
        ocsp_algorithm=ocsp_algorithm,
        signature_scheme=signature_scheme,
        root_key_uri=root_key_uri,
        issuing_key_uri=issuing_key_uri,
        ocsp_key_uri=ocsp_key_uri,
        root_common_name=root_name,
        issuing_common_name=issuing_name,
    )
    with clean_errors(), transaction(runtime.session_factory) as session:
        root, issuing = hierarchy.init_hierarchy(
            session=session, runtime=runtime, actor=CLI_ACTOR, setup=setup
        )
        data: dict[str, Any] = {
            "root": {"name": root.name, "subject": root.subject, "key": root.key_uri},
            "issuing": {"name": issuing.name, "subject": issuing.subject, "key": issuing.key_uri},
            "root_key_exported_to": None,
        }
    if export_root_key is not None and export_passphrase is not None:
        with clean_errors():
            pem = export_private_key_pem(
                root.key_uri,
                passphrase=secrets_setup.key_passphrase(current).decode("utf-8"),
                export_passphrase=export_passphrase,
            )
        write_new_file(export_root_key, pem, private=True)
        data["root_key_exported_to"] = export_root_key
    if as_json:
        emit(data)
        return
    console.print(f"root CA:    {escape(root.subject)}")
    console.print(f"issuing CA: {escape(issuing.subject)} ({issuing.name})")
    console.print(f"root key:   {escape(describe_key_uri(root.key_uri))}")
    if export_root_key:
        console.print(f"root key exported (encrypted PEM) to {escape(export_root_key)}")
    console.print(
        "[yellow]The root key file can now be moved offline:[/yellow] it is needed again only "
        "for `commune-sso ca add-issuing` and to re-sign the root CRL once a year."
    )


@ca_app.command("add-issuing")
def ca_add_issuing(
    name: Annotated[
        str, typer.Argument(help="Slug of the new issuing CA (in its URLs), e.g. issuing-ca-2.")
    ],
    common_name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Its name (CN), at most 64 bytes, unlike every other CA's. Default: "
            '"<organisation> Issuing CA <n>" with the next free number.',
        ),
    ] = None,
    algorithm: Annotated[str, typer.Option(help="Issuing CA key.")] = "rsa-2048",
    key_uri: Annotated[str | None, typer.Option(help="file: or pkcs11: URI.")] = None,
    ocsp_algorithm: Annotated[str, typer.Option(help="OCSP responder key.")] = "rsa-2048",
    ocsp_key_uri: Annotated[str | None, typer.Option(help="file: or pkcs11: URI.")] = None,
    signature_scheme: Annotated[str, typer.Option(help="pkcs1v15 or pss.")] = "pkcs1v15",
    as_json: JsonOption = False,
) -> None:
    """Rollover: a new issuing CA under the root (needs the root key back online).

    New certificates come from the newest issuing CA; older ones keep serving CRL and OCSP."""
    if algorithm not in CA_KEY_ALGORITHMS or ocsp_algorithm not in CA_KEY_ALGORITHMS:
        fail(f"algorithms must be among {', '.join(CA_KEY_ALGORITHMS)}")
    if signature_scheme not in SIGNATURE_SCHEMES:
        fail("--signature-scheme must be pkcs1v15 or pss")
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        root = session.scalar(select(Authority).where(Authority.role == "root"))
        if root is None:
            raise NotFound(N_("No CA hierarchy yet: run `commune-sso ca init` first."))
        root_certificate = x509.load_der_x509_certificate(root.certificate_der)
        organisation = str(
            root_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
        )
        issuing = hierarchy.add_issuing_ca(
            session=session,
            runtime=runtime,
            actor=CLI_ACTOR,
            root=root,
            name=name,
            organisation=organisation,
            algorithm=algorithm,
            key_uri=key_uri,
            ocsp_algorithm=ocsp_algorithm,
            ocsp_key_uri=ocsp_key_uri,
            signature_scheme=signature_scheme,
            common_name=common_name,
        )
        data = {"name": issuing.name, "subject": issuing.subject, "key": issuing.key_uri}
    if as_json:
        emit(data)
        return
    console.print(f"issuing CA {data['name']} created: {escape(data['subject'])}")


# --------------------------------------------------------------------------------------------
# requests and approvals


ProfileOption = Annotated[
    str,
    typer.Option(
        help="official-document-signing, organisation-signing, device or official-authentication."
    ),
]


@ca_app.command("issue")
def ca_issue(
    username: Annotated[str, typer.Argument(help="The official who will hold the certificate.")],
    csr: Annotated[str, typer.Option("--csr", help="PKCS#10 request file (PEM or DER).")],
    as_admin: AdminOption,
    profile: ProfileOption = "official-document-signing",
    validity_days: Annotated[int | None, typer.Option(help="Default: the profile's.")] = None,
    device_name: Annotated[str | None, typer.Option(help="For the device profile.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a request on an official's behalf; a different admin then approves it."""
    csr_bytes = read_file(csr)
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        official = runtime.directory.find_by_username(session, username=username)
        if official is None:
            raise NotFound(N_("There is no official with this account."))
        actor = acting(session, runtime, as_admin, official.unit_code)
        request = certificate_requests.submit(
            session=session,
            runtime=runtime,
            actor=actor,
            submission=Submission(
                subject_ref=official.subject_ref,
                profile=profile,
                csr=csr_bytes,
                validity_days=validity_days,
                device_name=device_name,
            ),
        )
        data = request_as_dict(session, runtime, request, _serial_of(session, request))
    emit(data) if as_json else print_request(data)


@ca_app.command("renew")
def ca_renew(
    serial: Annotated[str, typer.Argument(help="The certificate to renew.")],
    as_admin: AdminOption,
    csr: Annotated[
        str | None,
        typer.Option(
            "--csr",
            help="New PKCS#10 request (a new key, or the same key for a renewal). Without it: "
            "a server-generated key the official collects as PKCS#12 (if the profile allows).",
        ),
    ] = None,
    validity_days: Annotated[int | None, typer.Option(help="At most 3 years.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Request the renewal of a valid certificate; a different admin then approves it."""
    csr_bytes = read_file(csr) if csr else None
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        certificate = revocation.find_certificate(session, serial)
        if certificate.subject_ref is None:
            raise NotFound(
                N_("Certificate %(serial)s has no holder to renew it for."), serial=serial
            )
        actor = acting(session, runtime, as_admin, certificate.unit_code)
        request = certificate_requests.submit(
            session=session,
            runtime=runtime,
            actor=actor,
            submission=Submission(
                subject_ref=certificate.subject_ref,
                profile=certificate.profile,
                csr=csr_bytes,
                server_keygen=csr_bytes is None,
                validity_days=validity_days,
                renewal_of_serial=certificate.serial,
                device_name=certificate.common_name if certificate.profile == "device" else None,
            ),
        )
        data = request_as_dict(session, runtime, request, _serial_of(session, request))
    emit(data) if as_json else print_request(data)


@ca_app.command("approve")
def ca_approve(
    request_id: Annotated[str, typer.Argument(help="From `ca requests`.")],
    as_admin: AdminOption,
    as_json: JsonOption = False,
) -> None:
    """Approve a request; the certificate is issued at the last approval the profile needs."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        admin = resolve_admin(session, runtime, as_admin)
        request = certificate_requests.approve(
            session=session, runtime=runtime, actor=admin.subject_ref, request_id=request_id
        )
        data = request_as_dict(session, runtime, request, _serial_of(session, request))
    emit(data) if as_json else print_request(data)


@ca_app.command("reject")
def ca_reject(
    request_id: Annotated[str, typer.Argument(help="From `ca requests`.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; shown to the official.")],
    as_admin: AdminOption,
    as_json: JsonOption = False,
) -> None:
    """Reject a pending request."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        admin = resolve_admin(session, runtime, as_admin)
        request = certificate_requests.reject(
            session=session,
            runtime=runtime,
            actor=admin.subject_ref,
            request_id=request_id,
            reason=reason,
        )
        data = request_as_dict(session, runtime, request)
    emit(data) if as_json else print_request(data)


@ca_app.command("requests")
def ca_requests(
    status: Annotated[
        str | None, typer.Option(help="pending, approved, rejected or issued.")
    ] = "pending",
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Certificate requests (default: those waiting for approval)."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        query = select(CertificateRequest).order_by(CertificateRequest.id.desc()).limit(limit)
        if status:
            query = query.where(CertificateRequest.status == status)
        rows = [
            request_as_dict(session, runtime, r, _serial_of(session, r))
            for r in session.scalars(query)
        ]
    if as_json:
        emit(rows)
        return
    table = Table("request", "status", "official", "unit", "profile", "requested", "by")
    for row in rows:
        table.add_row(
            row["id"],
            row["status"],
            escape(str(row["full_name"])),
            str(row["unit_code"] or ""),
            row["profile"],
            str(row["requested_at"])[:19],
            escape(str(row["requested_by"])),
        )
    console.print(table)


# --------------------------------------------------------------------------------------------
# revocation


def _parse_instant(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} must be an ISO 8601 date or time, e.g. 2026-11-20T08:00:00+07:00")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _status_change(
    serial: str, as_admin: str | None, change: str, **options: Any
) -> dict[str, Any]:
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        certificate = revocation.find_certificate(session, serial)
        actor = acting(session, runtime, as_admin, certificate.unit_code)
        if change == "release":
            changed = revocation.release_hold(
                session=session, runtime=runtime, actor=actor, serial=serial
            )
        else:
            changed = revocation.revoke(
                session=session, runtime=runtime, actor=actor, serial=serial, **options
            )
        issuer = session.get(Authority, changed.authority_id)
        assert issuer is not None
        # The CRL the certificate's CRLDP names: its partition's, or the full one.
        if changed.crl_partition is None:
            owed = issuer.crl_pending_since
        else:
            named = session.get(PartitionCrl, (issuer.id, changed.crl_partition))
            owed = named.pending_since if named is not None else None
        return {
            **certificate_as_dict(changed, authority_names(session)),
            "crl_url": runtime.crl_url(issuer.name, changed.crl_partition),
            "crl_owed_since": iso(owed),
            **_full_crl_lag(runtime, issuer),
        }


def _full_crl_lag(runtime: CaRuntime, authority: Authority) -> dict[str, str | None]:
    """Since when the full CRL lacks partitioned certificates' changes, and by when the
    maintenance pass signs it (ca_admin.crl.refresh_due); None twice when it is current."""
    since = authority.full_crl_stale_since
    return {
        "full_crl_stale_since": iso(since),
        "full_crl_due_by": iso(since + runtime.full_crl_max_delay) if since else None,
    }


def _crl_outcome(data: dict[str, Any]) -> str:
    if data["crl_owed_since"]:
        return (
            "the CA key is unavailable: the CRL is signed as soon as it is back "
            "(see `ca authorities`); OCSP answers tryLater meanwhile"
        )
    outcome = f"a new CRL is published at {data['crl_url']}"
    if data["full_crl_due_by"]:
        outcome += f"; the full CRL follows by {data['full_crl_due_by'][:19]}"
    return outcome


@ca_app.command("revoke")
def ca_revoke(
    serial: Annotated[str, typer.Argument(help="Hex, as openssl prints it (colons allowed).")],
    reason: Annotated[
        str, typer.Option("--reason", help=f"RFC 5280: {', '.join(END_ENTITY_REASONS)}.")
    ],
    invalidity_date: Annotated[
        str | None,
        typer.Option(help="When the key was (suspected) compromised, ISO 8601."),
    ] = None,
    as_admin: OptionalAdminOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a certificate for good and publish a new CRL at once."""
    when = _parse_instant(invalidity_date, "--invalidity-date") if invalidity_date else None
    data = _status_change(serial, as_admin, "revoke", reason=reason, invalidity_date=when)
    if as_json:
        emit(data)
        return
    console.print(f"revoked {data['serial']} ({reason}); {_crl_outcome(data)}")


@ca_app.command("hold")
def ca_hold(
    serial: Annotated[str, typer.Argument(help="Hex, as openssl prints it (colons allowed).")],
    as_admin: OptionalAdminOption = None,
    as_json: JsonOption = False,
) -> None:
    """Suspend a certificate (certificateHold); `ca release` undoes it."""
    data = _status_change(serial, as_admin, "revoke", reason="certificateHold")
    emit(data) if as_json else console.print(f"{data['serial']} is on hold; {_crl_outcome(data)}")


@ca_app.command("release")
def ca_release(
    serial: Annotated[str, typer.Argument(help="Hex, as openssl prints it (colons allowed).")],
    as_admin: OptionalAdminOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a certificate off hold."""
    data = _status_change(serial, as_admin, "release")
    emit(data) if as_json else console.print(
        f"{data['serial']} is valid again; {_crl_outcome(data)}"
    )


# --------------------------------------------------------------------------------------------
# reading


@ca_app.command("authorities")
def ca_authorities(as_json: JsonOption = False) -> None:
    """The CAs, their CRLs, any CRL owed since the CA key became unavailable, and since when
    a partitioned CA's full CRL lags behind revocations (signed by the maintenance pass)."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        rows: list[dict[str, Any]] = []
        for authority in session.scalars(select(Authority).order_by(Authority.id)):
            published = session.get(PublishedCrl, authority.id)
            rows.append(
                {
                    "name": authority.name,
                    "role": authority.role,
                    "active": authority.active,
                    "subject": authority.subject,
                    "not_after": iso(authority.not_after),
                    "crl_number": authority.crl_number,
                    "crl_next_update": iso(published.next_update) if published else None,
                    "crl_owed_since": iso(authority.crl_pending_since),
                    **_full_crl_lag(runtime, authority),
                }
            )
    if as_json:
        emit(rows)
        return
    table = Table(
        "name",
        "role",
        "active",
        "CRL number",
        "CRL next update",
        "CRL owed since",
        "full CRL behind since",
    )
    for row in rows:
        table.add_row(
            row["name"],
            row["role"],
            "yes" if row["active"] else "no",
            str(row["crl_number"]),
            str(row["crl_next_update"] or "")[:19],
            str(row["crl_owed_since"] or "")[:19] or "—",
            _behind(row),
        )
    console.print(table)


def _behind(row: dict[str, Any]) -> str:
    if not row["full_crl_stale_since"]:
        return "—"
    return f"{row['full_crl_stale_since'][:19]} (signed by {row['full_crl_due_by'][:19]})"


AuthorityOption = Annotated[
    str | None, typer.Option(help="CA name. Default: the current issuing CA.")
]


def _named_or_current_issuer(
    session: Session, runtime: CaRuntime, name: str | None
) -> LoadedAuthority:
    """The CA an --authority option names, or the current issuing CA without one."""
    if name:
        return hierarchy.find_authority(session, runtime, name)
    return hierarchy.current_issuer(session, runtime)


@ca_app.command("crl-partitions")
def ca_crl_partitions(
    authority: AuthorityOption = None,
    as_json: JsonOption = False,
) -> None:
    """The CRL partitions of an issuing CA: URL, certificates, entries, any CRL owed; and
    whether the full CRL lags behind their revocations."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        loaded = _named_or_current_issuer(session, runtime, authority)
        issuer = session.get(Authority, loaded.id)
        assert issuer is not None
        full = {"url": runtime.crl_url(loaded.name), **_full_crl_lag(runtime, issuer)}
        rows = [
            {
                "partition": row.partition,
                "url": runtime.crl_url(loaded.name, row.partition),
                "certificates": certificates,
                "crl_number": row.crl_number,
                "entries": row.entries,
                "next_update": iso(row.next_update),
                "crl_owed_since": iso(row.pending_since),
            }
            for row, certificates in crl_partitions.summary(session, loaded.id)
        ]
    if as_json:
        emit(rows)
        return
    table = Table(
        "partition", "URL", "certificates", "CRL number", "entries", "next update", "owed since"
    )
    for item in rows:
        table.add_row(
            str(item["partition"]),
            str(item["url"]),
            str(item["certificates"]),
            str(item["crl_number"]),
            str(item["entries"]),
            str(item["next_update"] or "")[:19],
            str(item["crl_owed_since"] or "")[:19] or "—",
        )
    console.print(table)
    console.print(f"full CRL {full['url']}: {_full_crl_state(full)}")


def _full_crl_state(lag: dict[str, Any]) -> str:
    if not lag["full_crl_stale_since"]:
        return "current"
    return (
        f"behind since {lag['full_crl_stale_since'][:19]}; the maintenance pass signs it by "
        f"{lag['full_crl_due_by'][:19]} (`ca crl` signs it now)"
    )


@ca_app.command("list")
def ca_list(
    unit: Annotated[str | None, typer.Option("--unit", help="Unit code.")] = None,
    status: Annotated[str | None, typer.Option(help="good, revoked or hold.")] = None,
    expiring_within: Annotated[
        int | None, typer.Option(help="Valid certificates expiring within DAYS.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Holder's name contains (diacritics and case ignored).")
    ] = None,
    include_ca: Annotated[
        bool, typer.Option(help="Also the CA's own certificates (issuing CAs, OCSP).")
    ] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Issued certificates, newest first."""
    if status is not None and status not in ("good", "revoked", "hold"):
        fail("--status must be good, revoked or hold")
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        query = select(IssuedCertificate).order_by(IssuedCertificate.id.desc()).limit(limit)
        if not include_ca:
            query = query.where(IssuedCertificate.profile.not_in(CA_PROFILES))
        if unit:
            query = query.where(IssuedCertificate.unit_code == unit)
        if status:
            query = query.where(IssuedCertificate.status == status)
        if expiring_within is not None:
            now = runtime.clock.now()
            query = query.where(
                IssuedCertificate.status == "good",
                IssuedCertificate.not_after > now,
                IssuedCertificate.not_after <= now + timedelta(days=expiring_within),
            )
        if name:
            folded = fold_for_search(name)
            query = query.where(IssuedCertificate.search_name.contains(folded, autoescape=True))
        names = authority_names(session)
        rows = [certificate_as_dict(c, names) for c in session.scalars(query)]
    if as_json:
        emit(rows)
        return
    table = Table("serial", "name", "unit", "profile", "status", "not after")
    for row in rows:
        status_text = row["status"] + (
            f" ({row['revocation_reason']})" if row["revocation_reason"] else ""
        )
        table.add_row(
            row["serial"],
            escape(row["common_name"]),
            str(row["unit_code"] or ""),
            row["profile"],
            status_text,
            str(row["not_after"])[:10],
        )
    console.print(table)


def _key_description(certificate: x509.Certificate) -> str:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}"
    return type(key).__name__


def _extension(certificate: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


@ca_app.command("show")
def ca_show(
    serial: Annotated[str, typer.Argument(help="Hex, as openssl prints it (colons allowed).")],
    out: Annotated[str | None, typer.Option(help="Also write the certificate (PEM) here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """One certificate: decoded fields and revocation status."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        row = revocation.find_certificate(session, serial)
        certificate = x509.load_der_x509_certificate(row.der)
        renewal_of = (
            session.get(IssuedCertificate, row.renewal_of_id) if row.renewal_of_id else None
        )
        key_usage = _extension(certificate, x509.KeyUsage)
        eku = _extension(certificate, x509.ExtendedKeyUsage)
        san = _extension(certificate, x509.SubjectAlternativeName)
        data = {
            **certificate_as_dict(row, authority_names(session)),
            "subject": dn_text(certificate.subject),
            "issuer": dn_text(certificate.issuer),
            "invalidity_date": iso(row.invalidity_date),
            "key": _key_description(certificate),
            "spki_sha256": row.spki_sha256,
            "signature_hash": getattr(certificate.signature_hash_algorithm, "name", None),
            "key_usage": [
                name
                for name in ("digital_signature", "content_commitment", "key_encipherment")
                if key_usage is not None and getattr(key_usage, name)
            ],
            "extended_key_usage": [oid.dotted_string for oid in eku] if eku else [],
            "subject_alt_names": [str(n.value) for n in san] if san else [],
            "renewal_of": openssl_serial(renewal_of.serial) if renewal_of else None,
            "pem": certificate.public_bytes(Encoding.PEM).decode("ascii"),
        }
    if out:
        write_new_file(out, data["pem"].encode("ascii"))
    if as_json:
        emit(data)
        return
    table = Table("field", "value", show_header=False)
    for field in (
        "serial",
        "subject",
        "issuer",
        "status",
        "revocation_reason",
        "revoked_at",
        "invalidity_date",
        "not_before",
        "not_after",
        "profile",
        "key",
        "key_usage",
        "extended_key_usage",
        "subject_alt_names",
        "renewal_of",
    ):
        value = data[field]
        if isinstance(value, list):
            value = ", ".join(value)
        table.add_row(field, escape(str(value if value is not None else "")))
    console.print(table)


@ca_app.command("crl")
def ca_crl(
    authority: AuthorityOption = None,
    out: Annotated[
        str | None, typer.Option(help="Write the CRL here (DER; PEM with --pem).")
    ] = None,
    pem: Annotated[bool, typer.Option("--pem", help="Write PEM instead of DER.")] = False,
    partition: Annotated[
        int | None,
        typer.Option(help="The CRL of this partition (see `ca crl-partitions`), not the full one."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Sign and publish a fresh CRL now (the root's needs the root key online); for the full
    CRL, without waiting for the maintenance pass to catch it up with revocations."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        loaded = _named_or_current_issuer(session, runtime, authority)
        row = session.get(Authority, loaded.id)
        assert row is not None
        if partition is not None and session.get(PartitionCrl, (row.id, partition)) is None:
            fail(f"{row.name} has no CRL partition {partition}")
        published = crl.publish(
            session=session,
            runtime=runtime,
            authority=row,
            actor=CLI_ACTOR,
            cause="manual",
            partition=partition,
        )
        der = published.der
        data = {
            "authority": row.name,
            "partition": partition,
            "crl_number": published.crl_number,
            "entries": published.entries,
            "this_update": iso(published.this_update),
            "next_update": iso(published.next_update),
            "url": runtime.crl_url(row.name, partition),
            "written_to": out,
            **_full_crl_lag(runtime, row),
        }
    if out:
        body = x509.load_der_x509_crl(der).public_bytes(Encoding.PEM) if pem else der
        write_new_file(out, body)
    if as_json:
        emit(data)
        return
    scope = "" if partition is None else f", partition {partition}"
    console.print(
        f"CRL #{data['crl_number']} of {data['authority']}{scope}: {data['entries']} entries, "
        f"next update {data['next_update']}"
    )
    if partition is not None:
        console.print(f"full CRL: {_full_crl_state(data)}")
    if out:
        console.print(f"written to {escape(out)}")


@ca_app.command("export-chain")
def ca_export_chain(
    out: Annotated[str | None, typer.Option(help="Write the PEM chain here.")] = None,
    authority: AuthorityOption = None,
    as_json: JsonOption = False,
) -> None:
    """The PEM chain issuing CA -> root, for relying parties and signing software."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        loaded = _named_or_current_issuer(session, runtime, authority)
        chain = hierarchy.chain_of(session, runtime, loaded.id)
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
    if out:
        write_new_file(out, pem)
    if as_json:
        emit(
            {
                "written_to": out,
                "certificates": [
                    {
                        "subject": dn_text(c.subject),
                        "serial": openssl_serial(c.serial_number),
                        "not_after": c.not_valid_after_utc.isoformat(),
                        "pem": c.public_bytes(Encoding.PEM).decode("ascii"),
                    }
                    for c in chain
                ],
            }
        )
    elif out:
        console.print(f"{len(chain)} certificates written to {escape(out)}")
    else:
        sys.stdout.write(pem.decode("ascii"))


@ca_app.command("sync-lifecycle")
def ca_sync_lifecycle(as_json: JsonOption = False) -> None:
    """Apply account lifecycle events now (the server does it every few seconds).

    disabled -> hold, enabled -> release, deleted -> cessationOfOperation, moved ->
    affiliationChanged (unit mergers go through `ca merger`)."""
    runtime = ca_runtime()
    with clean_errors():
        result = ca_lifecycle_feed.run_once(runtime=runtime)
    if as_json:
        emit(result.as_dict())
        return
    console.print(
        f"{result.events} event(s) handled, {result.certificates_changed} certificate(s) "
        f"changed; cursor at event {result.cursor}"
    )


# --------------------------------------------------------------------------------------------
# merger


def _print_progress(data: dict[str, Any]) -> None:
    console.print(
        f"merger job {data['job_id']}: {data['status']}; {data['done']}/{data['total']} done "
        f"({data['reissued']} re-issued, {data['revoked']} revoked, {data['skipped']} skipped)"
    )


@merger_app.command("preview")
def merger_preview(
    old_unit: Annotated[str, typer.Argument(help="Code of the unit merged away.")],
    new_unit: Annotated[str, typer.Argument(help="Code of the unit it joined.")],
    as_json: JsonOption = False,
) -> None:
    """The valid certificates that still name OLD_UNIT (nothing is changed)."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        rows = [a.as_dict() for a in unit_merger.preview(session, runtime, old_unit, new_unit)]
    if as_json:
        emit(rows)
        return
    table = Table("serial", "name", "profile", "status", "not after")
    for row in rows:
        table.add_row(
            str(row["serial"]),
            escape(str(row["name"])),
            str(row["profile"]),
            str(row["status"]),
            str(row["not_after"])[:10],
        )
    console.print(table)
    console.print(f"{len(rows)} certificate(s) to re-issue or revoke")


@merger_app.command("plan")
def merger_plan(
    old_unit: Annotated[str, typer.Argument(help="Code of the unit merged away.")],
    new_unit: Annotated[str, typer.Argument(help="Code of the unit it joined.")],
    as_admin: AdminOption,
    as_json: JsonOption = False,
) -> None:
    """Record a merger job for today's affected certificates; another admin approves it."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        admin = resolve_admin(session, runtime, as_admin)
        job = unit_merger.plan(
            session=session,
            runtime=runtime,
            actor=admin.subject_ref,
            old_unit_code=old_unit,
            new_unit_code=new_unit,
        )
        data = unit_merger.progress(session, job).as_dict()
    if as_json:
        emit(data)
        return
    _print_progress(data)
    console.print(f"approve with `commune-sso ca merger approve {data['job_id']} --as OTHER_ADMIN`")


@merger_app.command("approve")
def merger_approve(
    job_id: Annotated[str, typer.Argument(help="From `ca merger plan`.")],
    as_admin: AdminOption,
    as_json: JsonOption = False,
) -> None:
    """Approve a merger job (an admin of both units, not the one who planned it)."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        admin = resolve_admin(session, runtime, as_admin)
        job = unit_merger.approve(
            session=session, runtime=runtime, actor=admin.subject_ref, job_id=job_id
        )
        data = unit_merger.progress(session, job).as_dict()
    emit(data) if as_json else _print_progress(data)


@merger_app.command("apply")
def merger_apply(
    job_id: Annotated[str, typer.Argument(help="An approved merger job.")],
    batch_size: Annotated[int, typer.Option(help="Certificates per transaction.")] = 500,
    as_admin: OptionalAdminOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-issue and revoke, batch by batch; run again after an interruption to finish."""
    runtime = ca_runtime()
    with clean_errors():
        with transaction(runtime.session_factory) as session:
            actor = CLI_ACTOR
            if as_admin is not None:
                actor = resolve_admin(session, runtime, as_admin).subject_ref
        data = unit_merger.apply(
            runtime=runtime, actor=actor, job_id=job_id, batch_size=batch_size
        ).as_dict()
    emit(data) if as_json else _print_progress(data)


@merger_app.command("show")
def merger_show(
    job_id: Annotated[str, typer.Argument(help="A merger job.")], as_json: JsonOption = False
) -> None:
    """A merger job's progress."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        data = unit_merger.progress(session, unit_merger.find_job(session, job_id)).as_dict()
    emit(data) if as_json else _print_progress(data)


# --------------------------------------------------------------------------------------------
# time-stamping authority


def _tsa_unit_as_dict(unit: TimeStampingUnit, runtime: CaRuntime) -> dict[str, Any]:
    certificate = x509.load_der_x509_certificate(unit.certificate_der)
    return {
        "name": unit.name,
        "active": unit.active,
        "subject": dn_text(certificate.subject),
        "issuer": dn_text(certificate.issuer),
        "serial": openssl_serial(certificate.serial_number),
        "not_after": iso(unit.not_after),
        "key": describe_key_uri(unit.key_uri),
        "algorithm": unit.key_algorithm,
        "policy": runtime.tsa_policy,
        "url": f"{runtime.base_url}/tsa",
        "pem": certificate.public_bytes(Encoding.PEM).decode("ascii"),
    }


@tsa_app.command("init")
def tsa_init(
    name: Annotated[
        str, typer.Option(help="Slug of the TSA unit (in its certificate's name).")
    ] = tsa_certificate.DEFAULT_TSA_NAME,
    algorithm: Annotated[
        str, typer.Option(help="TSA key: ec-p256 (fastest), ec-p384, rsa-2048...")
    ] = tsa_certificate.DEFAULT_TSA_ALGORITHM,
    key_uri: Annotated[
        str | None,
        typer.Option(help="file: or pkcs11: URI. Default: a new file in the CA key dir."),
    ] = None,
    reuse_key: Annotated[
        bool,
        typer.Option(
            help="Certify the key already at --key-uri (an HSM key made beforehand) "
            "instead of generating one there."
        ),
    ] = False,
    issuer: Annotated[
        str | None, typer.Option(help="Issuing CA name. Default: the current issuing CA.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A TSA key and its certificate (critical EKU timeStamping) from an issuing CA.

    The new unit signs every time-stamp from now on (each worker within seconds); tokens of an
    earlier unit still verify with its certificate."""
    if algorithm not in CA_KEY_ALGORITHMS:
        fail(f"--algorithm must be one of {', '.join(CA_KEY_ALGORITHMS)}")
    if reuse_key and key_uri is None:
        fail("--reuse-key needs --key-uri")
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        unit = tsa_certificate.issue_tsa_unit(
            session=session,
            runtime=runtime,
            actor=CLI_ACTOR,
            name=name,
            algorithm=algorithm,
            key_uri=key_uri,
            reuse_key=reuse_key,
            issuer_name=issuer,
        )
        data = _tsa_unit_as_dict(unit, runtime)
    if as_json:
        emit(data)
        return
    console.print(f"TSA unit {data['name']} created: {escape(data['subject'])}")
    console.print(f"serial {data['serial']}, valid until {data['not_after'][:10]}")
    console.print(f"policy {data['policy']}; time-stamps at POST {escape(data['url'])}")


@tsa_app.command("show")
def tsa_show(
    pem: Annotated[
        bool, typer.Option("--pem", help="Print only the signing unit's certificate (PEM).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The TSA units, the signing one first, with the policy and URL clients use."""
    runtime = ca_runtime()
    with clean_errors(), transaction(runtime.session_factory) as session:
        units = [
            _tsa_unit_as_dict(unit, runtime)
            for unit in session.scalars(
                select(TimeStampingUnit).order_by(
                    TimeStampingUnit.active.desc(), TimeStampingUnit.id.desc()
                )
            )
        ]
    if not units:
        fail("no TSA unit yet: run `commune-sso ca tsa init`")
    if as_json:
        emit(units)
        return
    if pem:
        sys.stdout.write(units[0]["pem"])
        return
    table = Table("name", "signing", "subject", "serial", "valid until", "key")
    for unit in units:
        table.add_row(
            unit["name"],
            "yes" if unit["active"] else "no",
            escape(unit["subject"]),
            unit["serial"],
            unit["not_after"][:10],
            escape(unit["key"]),
        )
    console.print(table)
    console.print(f"policy {units[0]['policy']}; time-stamps at POST {escape(units[0]['url'])}")
