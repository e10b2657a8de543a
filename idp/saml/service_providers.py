"""Service providers registered for SAML 2.0 from their metadata: who may ask us for
assertions, where they are sent, which certificates sign their requests, which attributes they
get. Every change is audited in its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import Clock
from core.errors import Conflict, DomainError, NotFound
from core.web.i18n import N_
from idp import authentication_levels as levels
from idp.models import SamlServiceProvider
from idp.registry import SoftRemovedRegistry
from idp.released_attributes import RELEASABLE
from idp.saml import sp_metadata, xml_signatures
from idp.saml.vocabulary import NAME_ID_FORMATS


def register(
    *,
    session: Session,
    clock: Clock,
    actor: str,
    metadata_xml: bytes,
    name: str | None = None,
    attributes: Sequence[str] = (),
    name_id_format: str | None = None,
    encrypt_assertions: bool = False,
    minimum_acr: str | None = None,
) -> SamlServiceProvider:
    """Register the SP that ``metadata_xml`` describes (SAML Metadata §2.4.4)."""
    metadata = sp_metadata.parse(metadata_xml)
    shown_name = (name or metadata.name or metadata.entity_id).strip()[:200]
    unknown = [group for group in attributes if group not in RELEASABLE]
    if unknown:
        raise DomainError(
            N_("Unknown attribute %(name)s; released attributes are %(known)s."),
            field="attributes",
            name=unknown[0],
            known=", ".join(RELEASABLE),
        )
    chosen_format = name_id_format or metadata.name_id_format
    if chosen_format not in NAME_ID_FORMATS:
        raise DomainError(
            N_("Unknown NameID format; supported are %(known)s."),
            field="name_id_format",
            known=", ".join(NAME_ID_FORMATS),
        )
    if encrypt_assertions and not any(
        isinstance(sp_metadata.load_certificate(der).public_key(), rsa.RSAPublicKey)
        for der in metadata.encryption_certificates[:1]
    ):
        raise DomainError(
            N_(
                "Assertions can be encrypted only to an SP whose metadata has an RSA encryption "
                "certificate."
            ),
            field="encrypt_assertions",
        )
    sp = session.scalar(
        select(SamlServiceProvider).where(SamlServiceProvider.entity_id == metadata.entity_id)
    )
    if sp is not None and sp.removed_at is None:
        raise Conflict(
            N_("A service provider with this entity ID is already registered."), field="metadata"
        )
    if sp is None:
        sp = SamlServiceProvider(entity_id=metadata.entity_id, created_at=clock.now())
        session.add(sp)
    # A removed SP registered again is the same row: its officials keep their persistent IDs.
    sp.removed_at = None
    sp.name = shown_name
    sp.metadata_xml = metadata_xml.decode("utf-8", "replace")
    sp.assertion_consumer_services = metadata.assertion_consumer_services
    sp.single_logout_services = metadata.single_logout_services
    sp.signing_certificates = metadata.signing_certificates
    sp.encryption_certificates = metadata.encryption_certificates
    sp.authn_requests_signed = metadata.authn_requests_signed
    sp.want_assertions_signed = metadata.want_assertions_signed
    sp.name_id_format = chosen_format
    sp.attributes = list(dict.fromkeys(attributes))
    sp.encrypt_assertions = encrypt_assertions
    sp.minimum_acr = levels.checked_minimum(minimum_acr)
    sp.signing_methods = metadata.signing_methods
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="saml.sp_registered",
        target=REGISTRY.audit_target(sp),
        details=as_dict(sp),
    )
    return sp


def as_dict(sp: SamlServiceProvider) -> dict[str, Any]:
    return {
        "entity_id": sp.entity_id,
        "name": sp.name,
        "assertion_consumer_services": [dict(acs) for acs in sp.assertion_consumer_services],
        "single_logout_services": [dict(slo) for slo in sp.single_logout_services],
        "authn_requests_signed": sp.authn_requests_signed,
        "want_assertions_signed": sp.want_assertions_signed,
        "signing_certificates": len(sp.signing_certificates),
        "encryption_certificates": len(sp.encryption_certificates),
        "name_id_format": sp.name_id_format,
        "attributes": list(sp.attributes),
        "encrypt_assertions": sp.encrypt_assertions,
        "signing_methods": list(sp.signing_methods or []),
        "signs_with": xml_signatures.key_alg_for(sp.signing_methods),
        "minimum_acr": sp.minimum_acr,
    }


# Removed, it gets no more assertions; its history stays, and registering it again revives it.
REGISTRY = SoftRemovedRegistry(
    SamlServiceProvider,
    key="entity_id",
    target_prefix="saml_sp",
    removed_action="saml.sp_removed",
    minimum_acr_action="saml.sp_minimum_acr",
    not_found=lambda: NotFound(
        N_("No SAML service provider with this entity ID."), field="entity_id"
    ),
)


def signing_certificates(sp: SamlServiceProvider) -> list[x509.Certificate]:
    return [sp_metadata.load_certificate(der) for der in sp.signing_certificates]
