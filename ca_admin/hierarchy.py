"""The CA hierarchy: an offline-style root, online issuing CAs, and each issuing CA's
OCSP-signing certificate (RFC 6960 §4.2.2.2: id-kp-OCSPSigning, id-pkix-ocsp-nocheck).

The root signs only issuing-CA certificates and its own CRL, so its key can be exported and kept
offline after ``ca init`` (it is needed again only for a rollover or to revoke an issuing CA).
Several issuing CAs may coexist; new certificates come from the newest active one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ca_admin import crl
from ca_admin.errors import PolicyViolation, UnknownAuthority
from ca_admin.key_policy import spki_sha256
from ca_admin.models import Authority, IssuedCertificate
from ca_admin.profiles import (
    COMMON_NAME_MAX_BYTES,
    crl_distribution_point,
    dn_text,
    end_entity_key_usage,
    fit_common_name,
)
from ca_admin.runtime import CaRuntime, LoadedAuthority
from ca_admin.serials import new_serial, serial_hex
from ca_admin.signing import signature_parameters
from core import audit
from core.errors import Conflict
from core.web.i18n import N_
from keys.signing_keys import SigningKey, describe_key_uri

ROOT_YEARS = 20
ISSUING_YEARS = 10
OCSP_SIGNER_DAYS = 365
# A freshly made certificate is valid from a minute ago: relying parties whose clock runs a
# little behind ours would otherwise reject it as not yet valid.
BACKDATE = timedelta(minutes=1)
ROOT_CRL_LIFETIME = timedelta(days=365)  # the root is offline: its CRL is re-signed yearly


@dataclass(frozen=True)
class CaSetup:
    organisation: str  # e.g. "Sở Khoa học và Công nghệ tỉnh Lào Cai"
    root_name: str = "root-ca"  # slugs: in the CRL and caIssuers URLs
    issuing_name: str = "issuing-ca-1"
    # The CAs' common names (CN=). None: "<organisation> Root CA" and
    # "<organisation> Issuing CA <n>", the organisation shortened if it must be.
    root_common_name: str | None = None
    issuing_common_name: str | None = None
    root_algorithm: str = "rsa-3072"
    issuing_algorithm: str = "rsa-2048"
    ocsp_algorithm: str = "rsa-2048"
    signature_scheme: str = "pkcs1v15"  # or "pss" for RSASSA-PSS signatures
    root_key_uri: str | None = None
    issuing_key_uri: str | None = None
    ocsp_key_uri: str | None = None


def new_key_uri(runtime: CaRuntime, name: str) -> str:
    """A fresh key file under the CA key directory. Dated, so a key left behind by a failed
    attempt never blocks the next one (keys are never overwritten)."""
    runtime.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = f"{runtime.clock.now():%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    return f"file:{runtime.key_dir / f'{name}-{stamp}.key.pem'}"


MAX_NAME_LENGTH = 64  # RFC 5280 Appendix A: ub-organization-name, ub-common-name


_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")


def check_slug(name: str) -> None:
    """CA names appear in the CRL and caIssuers URLs of every certificate they issue."""
    if not _SLUG.fullmatch(name):
        raise PolicyViolation(
            N_("A CA name is 1 to 64 lowercase letters, digits and inner hyphens."), field="name"
        )


def _ca_name(organisation: str, common_name: str) -> x509.Name:
    if not 1 <= len(organisation) <= MAX_NAME_LENGTH:
        raise PolicyViolation(
            N_("The organisation name must have 1 to %(limit)s characters."),
            field="organisation",
            limit=MAX_NAME_LENGTH,
        )
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _chosen_common_name(common_name: str) -> str:
    """A CA name an operator chose is used as it is, or refused: never cut."""
    common_name = common_name.strip()
    if not common_name or len(common_name.encode()) > COMMON_NAME_MAX_BYTES:
        raise PolicyViolation(
            N_("A CA's name must have 1 to %(limit)s bytes in UTF-8 (%(name)s)."),
            field="name",
            limit=COMMON_NAME_MAX_BYTES,
            name=common_name[:80],
        )
    return common_name


def _subject_taken(session: Session, subject: x509.Name) -> bool:
    return (
        session.scalar(select(Authority.id).where(Authority.subject == dn_text(subject)).limit(1))
        is not None
    )


def _issuing_subject(
    session: Session, *, organisation: str, common_name: str | None, slug: str
) -> x509.Name:
    """A subject no other CA of ours has: two issuing CAs with one DN would publish CRLs
    with one issuer name, and relying parties could not tell them apart (RFC 5280 §4.1.2.4).

    A chosen name that is taken is refused; the default "<organisation> Issuing CA <n>" takes
    the next free number (a rollover after ``issuing-ca-1`` is "... Issuing CA 2"), and keeps
    " Issuing CA <n>" whole when a long organisation name must be shortened.
    """
    if common_name is not None:
        subject = _ca_name(organisation, _chosen_common_name(common_name))
        if _subject_taken(session, subject):
            raise Conflict(
                N_("A CA named %(name)s already exists: choose another name."),
                field="name",
                name=common_name.strip(),
            )
        return subject
    tail = slug.rsplit("-", 1)[-1]
    issuing_count = session.scalar(
        select(func.count()).select_from(Authority).where(Authority.role == "issuing")
    )
    number = int(tail) if tail.isdigit() and len(tail) <= 6 else (issuing_count or 0) + 1
    while True:
        subject = _ca_name(
            organisation, fit_common_name(organisation, keep=f" Issuing CA {number}")
        )
        if not _subject_taken(session, subject):
            return subject
        number += 1


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def sign_certificate(
    builder: x509.CertificateBuilder, key: SigningKey, scheme: str
) -> x509.Certificate:
    params = signature_parameters(key, scheme)
    return builder.sign(key, params.algorithm, rsa_padding=params.rsa_padding)


def is_initialised(session: Session, *, for_update: bool = False) -> bool:
    """Whether ``ca init`` has run: a root exists (it makes the first issuing CA with it).

    ``for_update``: hold the answer until the transaction ends (on SQLite, core.db takes the
    write lock before reading), for a caller that initialises when the answer is no.
    """
    statement = select(Authority.id).where(Authority.role == "root").limit(1)
    if for_update:
        statement = statement.with_for_update()
    return session.scalar(statement) is not None


def init_hierarchy(
    *, session: Session, runtime: CaRuntime, actor: str, setup: CaSetup
) -> tuple[Authority, Authority]:
    """``commune-sso ca init``: root, first issuing CA, its OCSP signer, and both CRLs."""
    check_slug(setup.root_name)
    check_slug(setup.issuing_name)
    _ca_name(setup.organisation, "check")  # refuse a bad organisation before any key exists
    for chosen in (setup.root_common_name, setup.issuing_common_name):
        if chosen is not None:
            _chosen_common_name(chosen)
    if setup.root_common_name is not None and (
        setup.root_common_name.strip() == (setup.issuing_common_name or "").strip()
    ):
        raise Conflict(
            N_("A CA named %(name)s already exists: choose another name."),
            field="name",
            name=setup.root_common_name.strip(),
        )
    if is_initialised(session):
        raise Conflict(N_("The CA hierarchy already exists; use a rollover to add an issuing CA."))
    now = runtime.clock.now()
    root_uri = setup.root_key_uri or new_key_uri(runtime, setup.root_name)
    root_key = runtime.key_store.generate(root_uri, algorithm=setup.root_algorithm)
    root_subject = _ca_name(
        setup.organisation,
        _chosen_common_name(setup.root_common_name)
        if setup.root_common_name is not None
        else fit_common_name(setup.organisation, keep=" Root CA"),
    )
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root_certificate = sign_certificate(
        x509.CertificateBuilder()
        .subject_name(root_subject)
        .issuer_name(root_subject)
        .public_key(root_key.public_key())
        .serial_number(new_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=365 * ROOT_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(root_ski, critical=False),
        root_key,
        setup.signature_scheme,
    )
    root = Authority(
        name=setup.root_name,
        role="root",
        parent_id=None,
        key_uri=root_uri,
        key_algorithm=setup.root_algorithm,
        signature_scheme=setup.signature_scheme,
        certificate_der=root_certificate.public_bytes(Encoding.DER),
        subject=dn_text(root_subject),
        not_before=root_certificate.not_valid_before_utc,
        not_after=root_certificate.not_valid_after_utc,
        active=True,
        crl_number=0,
        created_at=now,
    )
    session.add(root)
    session.flush()
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.root.created",
        target=f"ca:{root.name}",
        details={
            "subject": root.subject,
            "serial": serial_hex(root_certificate.serial_number),
            "key": describe_key_uri(root_uri),
            "algorithm": setup.root_algorithm,
        },
    )
    issuing = add_issuing_ca(
        session=session,
        runtime=runtime,
        actor=actor,
        root=root,
        name=setup.issuing_name,
        organisation=setup.organisation,
        algorithm=setup.issuing_algorithm,
        key_uri=setup.issuing_key_uri,
        ocsp_algorithm=setup.ocsp_algorithm,
        ocsp_key_uri=setup.ocsp_key_uri,
        signature_scheme=setup.signature_scheme,
        common_name=setup.issuing_common_name,
    )
    crl.publish(
        session=session, runtime=runtime, authority=root, actor=actor, lifetime=ROOT_CRL_LIFETIME
    )
    return root, issuing


def add_issuing_ca(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    root: Authority,
    name: str,
    organisation: str,
    algorithm: str,
    key_uri: str | None = None,
    ocsp_algorithm: str = "rsa-2048",
    ocsp_key_uri: str | None = None,
    signature_scheme: str = "pkcs1v15",
    common_name: str | None = None,
) -> Authority:
    """A new issuing CA under the root (also the rollover step), with its OCSP signer and CRL.

    ``common_name``: its CN; None gives "<organisation> Issuing CA <n>" (:func:`_issuing_subject`).
    """
    check_slug(name)
    if session.scalar(select(Authority.id).where(Authority.name == name)) is not None:
        raise Conflict(N_("A CA named %(name)s already exists."), name=name)
    # Before any key is made: a refused name leaves no key file behind.
    subject = _issuing_subject(
        session, organisation=organisation, common_name=common_name, slug=name
    )
    now = runtime.clock.now()
    root_key = runtime.key_store.get(root.key_uri)
    root_certificate = x509.load_der_x509_certificate(root.certificate_der)
    uri = key_uri or new_key_uri(runtime, name)
    key = runtime.key_store.generate(uri, algorithm=algorithm)
    root_urls = runtime.status_urls(root.name)
    not_after = min(now + timedelta(days=365 * ISSUING_YEARS), root.not_after)
    certificate = sign_certificate(
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_certificate.subject)
        .public_key(key.public_key())
        .serial_number(new_serial())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(root_certificate), critical=False)
        .add_extension(crl_distribution_point(root_urls.crl), critical=False)
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(root_urls.ca_issuers),
                    )
                ]
            ),
            critical=False,
        ),
        root_key,
        root.signature_scheme,
    )
    authority = Authority(
        name=name,
        role="issuing",
        parent_id=root.id,
        key_uri=uri,
        key_algorithm=algorithm,
        signature_scheme=signature_scheme,
        certificate_der=certificate.public_bytes(Encoding.DER),
        subject=dn_text(subject),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        active=True,
        crl_number=0,
        created_at=now,
    )
    session.add(authority)
    session.flush()
    # The root's own CRL covers issuing CAs: record the certificate in the revocation table.
    record_ca_certificate(
        session, certificate, authority_id=root.id, profile="issuing-ca", search_name=name, now=now
    )
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.issuing.created",
        target=f"ca:{name}",
        details={
            "subject": authority.subject,
            "serial": serial_hex(certificate.serial_number),
            "issuer": root.name,
            "key": describe_key_uri(uri),
            "algorithm": algorithm,
            "key_used": root.name,
        },
    )
    issue_ocsp_signer(
        session=session,
        runtime=runtime,
        actor=actor,
        authority=authority,
        algorithm=ocsp_algorithm,
        key_uri=ocsp_key_uri,
    )
    crl.publish(session=session, runtime=runtime, authority=authority, actor=actor)
    runtime.forget_authorities()
    return authority


def issue_ocsp_signer(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    authority: Authority,
    algorithm: str = "rsa-2048",
    key_uri: str | None = None,
    reuse_key: bool = False,
) -> x509.Certificate:
    """A delegated OCSP responder certificate for ``authority`` (RFC 6960 §4.2.2.2).

    ocsp-nocheck (§4.2.2.2.1) because its own status cannot be asked of itself; in exchange it
    lives only a year and is re-issued before it expires (ca_admin.maintenance). With
    ``reuse_key`` the key already at ``key_uri`` is certified again (an HSM key whose label
    is fixed); otherwise a new key is generated there.
    """
    now = runtime.clock.now()
    issuer_key = runtime.key_store.get(authority.key_uri)
    issuer_certificate = x509.load_der_x509_certificate(authority.certificate_der)
    uri = key_uri or new_key_uri(runtime, f"{authority.name}-ocsp")
    key = delegated_signer_key(runtime, uri, algorithm=algorithm, reuse_key=reuse_key)
    certificate = sign_certificate(
        delegated_signer_builder(
            issuer_certificate=issuer_certificate,
            key=key,
            common_name=f"OCSP responder ({authority.name})",
            not_before=now - BACKDATE,
            not_after=min(now + timedelta(days=OCSP_SIGNER_DAYS), authority.not_after),
            key_usage=end_entity_key_usage(
                digital_signature=True, content_commitment=False, key_encipherment=False
            ),
            purpose=ExtendedKeyUsageOID.OCSP_SIGNING,
            purpose_critical=False,
        ).add_extension(x509.OCSPNoCheck(), critical=False),
        issuer_key,
        authority.signature_scheme,
    )
    authority.ocsp_key_uri = uri
    authority.ocsp_certificate_der = certificate.public_bytes(Encoding.DER)
    record_ca_certificate(
        session,
        certificate,
        authority_id=authority.id,
        profile="ocsp-signing",
        search_name=f"ocsp {authority.name}",
        now=now,
    )
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.ocsp_signer.issued",
        target=f"ca:{authority.name}",
        details={
            "serial": serial_hex(certificate.serial_number),
            "key": describe_key_uri(uri),
            "key_used": authority.name,
            "not_after": certificate.not_valid_after_utc.isoformat(),
        },
    )
    runtime.forget_authorities()
    return certificate


def delegated_signer_key(
    runtime: CaRuntime, uri: str, *, algorithm: str, reuse_key: bool
) -> SigningKey:
    """The key of a signer acting for a CA (OCSP responder, TSA): a new one made at ``uri``,
    or with ``reuse_key`` the one already there (an HSM key whose label is fixed)."""
    if reuse_key:
        return runtime.key_store.get(uri)
    return runtime.key_store.generate(uri, algorithm=algorithm)


def delegated_signer_builder(
    *,
    issuer_certificate: x509.Certificate,
    key: SigningKey,
    common_name: str,
    not_before: datetime,
    not_after: datetime,
    key_usage: x509.KeyUsage,
    purpose: x509.ObjectIdentifier,
    purpose_critical: bool,
) -> x509.CertificateBuilder:
    """An end-entity certificate for a signer acting for its issuing CA: the issuer's subject
    with its own CN, one extended key usage, key identifiers (RFC 5280 §4.2.1.1-2)."""
    subject = x509.Name(
        [
            *list(issuer_certificate.subject)[:-1],
            x509.NameAttribute(NameOID.COMMON_NAME, fit_common_name(common_name)),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_certificate.subject)
        .public_key(key.public_key())
        .serial_number(new_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=purpose_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_identifier(issuer_certificate), critical=False)
    )


def record_ca_certificate(
    session: Session,
    certificate: x509.Certificate,
    *,
    authority_id: int,
    profile: str,
    search_name: str,
    now: datetime,
) -> None:
    """A certificate of the hierarchy itself (issuing CA, OCSP signer) in the one revocation
    table, so the issuer's CRL and OCSP can answer for it like for any other."""
    session.add(
        IssuedCertificate(
            serial=serial_hex(certificate.serial_number),
            authority_id=authority_id,
            profile=profile,
            subject_ref=None,
            subject=dn_text(certificate.subject),
            common_name=str(
                certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            ),
            search_name=search_name,
            citizen_id=None,
            unit_code=None,
            spki_sha256=spki_sha256(certificate.public_key()),  # type: ignore[arg-type]
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            der=certificate.public_bytes(Encoding.DER),
            status="good",
            issued_at=now,
        )
    )


def current_issuer(session: Session, runtime: CaRuntime) -> LoadedAuthority:
    """The newest active issuing CA: where new certificates come from."""
    issuing = [a for a in runtime.authorities(session).values() if a.role == "issuing" and a.active]
    if not issuing:
        raise UnknownAuthority(N_("No issuing CA is set up yet: run `commune-sso ca init`."))
    return max(issuing, key=lambda a: a.id)


def find_authority(session: Session, runtime: CaRuntime, name: str) -> LoadedAuthority:
    for authority in runtime.authorities(session).values():
        if authority.name == name:
            return authority
    raise UnknownAuthority(N_("There is no CA named %(name)s."), name=name)


def chain_of(session: Session, runtime: CaRuntime, authority_id: int) -> list[x509.Certificate]:
    """The authority's certificate followed by its parents', up to the root."""
    authorities = runtime.authorities(session)
    rows = {row.id: row for row in session.scalars(select(Authority))}
    chain: list[x509.Certificate] = []
    current: int | None = authority_id
    while current is not None:
        chain.append(authorities[current].certificate)
        current = rows[current].parent_id
    return chain


def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
