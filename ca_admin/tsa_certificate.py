"""The time-stamping unit's certificate (RFC 3161 §2.3), issued by one of our issuing CAs.

§2.3: the TSA signs with a key reserved for that purpose, whose certificate carries the
extended key usage id-kp-timeStamping only, marked critical. Key usage digitalSignature and
nonRepudiation (contentCommitment), critical: a time-stamp is evidence kept for years. The
certificate sits in the issuing CA's revocation table like any other, so its CRL and OCSP
answer for it, and its CRL distribution point and AIA let a validator (pyHanko, Adobe) check it.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ca_admin.errors import PolicyViolation
from ca_admin.hierarchy import (
    BACKDATE,
    check_slug,
    current_issuer,
    delegated_signer_builder,
    delegated_signer_key,
    find_authority,
    new_key_uri,
    record_ca_certificate,
    sign_certificate,
)
from ca_admin.models import Authority, TimeStampingUnit
from ca_admin.profiles import add_status_locations, end_entity_key_usage
from ca_admin.runtime import CaRuntime
from ca_admin.serials import serial_hex
from ca_admin.signing import CA_KEY_ALGORITHMS
from core import audit
from core.errors import Conflict
from core.web.i18n import N_
from keys.signing_keys import describe_key_uri

TSA_CERTIFICATE_DAYS = 3 * 365 + 1  # its tokens outlive it; a new unit takes over before
DEFAULT_TSA_NAME = "tsa-1"
DEFAULT_TSA_ALGORITHM = "ec-p256"  # fast signatures: the TSA must reach ≥ 1,000 tokens/s


def issue_tsa_unit(
    *,
    session: Session,
    runtime: CaRuntime,
    actor: str,
    name: str = DEFAULT_TSA_NAME,
    algorithm: str = DEFAULT_TSA_ALGORITHM,
    key_uri: str | None = None,
    reuse_key: bool = False,
    issuer_name: str | None = None,
) -> TimeStampingUnit:
    """``commune-sso ca tsa init``: a TSA key (a new file, or at ``key_uri``: file or PKCS#11)
    and its certificate from the newest issuing CA (or ``issuer_name``). The new unit signs
    every token from now on; earlier units are retired (their certificates stay valid, so the
    tokens they signed still verify)."""
    check_slug(name)
    if algorithm not in CA_KEY_ALGORITHMS:
        raise PolicyViolation(
            N_("The key algorithm must be one of %(choices)s."),
            field="algorithm",
            choices=", ".join(CA_KEY_ALGORITHMS),
        )
    if session.scalar(select(TimeStampingUnit.id).where(TimeStampingUnit.name == name)):
        raise Conflict(N_("A time-stamping unit named %(name)s already exists."), name=name)
    loaded = (
        find_authority(session, runtime, issuer_name)
        if issuer_name is not None
        else current_issuer(session, runtime)
    )
    authority = session.get(Authority, loaded.id)
    assert authority is not None
    now = runtime.clock.now()
    issuer_key = runtime.key_store.get(authority.key_uri)
    issuer_certificate = loaded.certificate
    uri = key_uri or new_key_uri(runtime, name)
    key = delegated_signer_key(runtime, uri, algorithm=algorithm, reuse_key=reuse_key)
    certificate = sign_certificate(
        add_status_locations(
            delegated_signer_builder(
                issuer_certificate=issuer_certificate,
                key=key,
                common_name=f"Time-Stamping Authority ({name})",
                not_before=now - BACKDATE,
                not_after=min(now + timedelta(days=TSA_CERTIFICATE_DAYS), authority.not_after),
                # §2.3 digitalSignature and/or nonRepudiation: a token is long-term evidence.
                key_usage=end_entity_key_usage(
                    digital_signature=True, content_commitment=True, key_encipherment=False
                ),
                # RFC 3161 §2.3: "the only key purpose", critical.
                purpose=ExtendedKeyUsageOID.TIME_STAMPING,
                purpose_critical=True,
            ),
            runtime.status_urls(authority.name),
        ),
        issuer_key,
        authority.signature_scheme,
    )
    session.execute(
        update(TimeStampingUnit).where(TimeStampingUnit.active.is_(True)).values(active=False)
    )
    unit = TimeStampingUnit(
        name=name,
        authority_id=authority.id,
        key_uri=uri,
        key_algorithm=algorithm,
        certificate_der=certificate.public_bytes(Encoding.DER),
        serial=serial_hex(certificate.serial_number),
        not_after=certificate.not_valid_after_utc,
        active=True,
        created_at=now,
    )
    session.add(unit)
    record_ca_certificate(
        session,
        certificate,
        authority_id=authority.id,
        profile="time-stamping",
        search_name=f"tsa {name}",
        now=now,
    )
    session.flush()
    audit.record(
        session,
        clock=runtime.clock,
        actor=actor,
        action="ca.tsa.issued",
        target=f"tsa:{name}",
        details={
            "subject": certificate.subject.rfc4514_string(),
            "serial": serial_hex(certificate.serial_number),
            "issuer": authority.name,
            "key": describe_key_uri(uri),
            "algorithm": algorithm,
            "key_used": authority.name,
            "policy": runtime.tsa_policy,
            "not_after": certificate.not_valid_after_utc.isoformat(),
        },
    )
    runtime.tsa_signers.forget()
    return unit


def has_tsa_unit(session: Session) -> bool:
    return (
        session.scalar(
            select(TimeStampingUnit.id).where(TimeStampingUnit.active.is_(True)).limit(1)
        )
        is not None
    )
