"""Certificate profiles as data (CONVENTIONS §10): limits plus an ordered list of steps.

A step is a function ``(context, builder) -> builder``. Validators raise :class:`PolicyViolation`
and return the builder unchanged; modifiers add the subject or an extension. A profile is the
list of steps applied in order, so a new profile is a new list, not new code paths.

Ground rules (Decree 68/2024/ND-CP, Circular 15/2025/TT-BKHCN): new certificates ≤ 5 years,
renewals ≤ 3 years; validity is also capped by the issuer's own.

Extension values that do not depend on the certificate (key usages, EKUs, the issuer's key
identifier and status URLs) are built once and shared: ``cryptography``'s extension objects are
immutable, and building them again for every certificate was a visible part of issuance.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ca_admin.errors import PolicyViolation, ProfileIncomplete
from ca_admin.key_policy import SubjectPublicKey
from ca_admin.officials import OfficialIdentity
from core.web.i18n import N_

# RFC 9336: id-kp-documentSigning.
ID_KP_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
FIVE_YEARS_DAYS = 5 * 365 + 1
THREE_YEARS_DAYS = 3 * 365 + 1
COUNTRY = "VN"
_DEVICE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?")


COMMON_NAME_MAX_BYTES = 64  # ub-common-name; cryptography counts it in UTF-8 bytes


def fit_common_name(text: str, *, keep: str = "") -> str:
    """``text`` + ``keep`` cut at a character boundary of ``text`` so that its UTF-8 form fits
    a common name, with "…" marking the cut: "Nguyễn" costs 9 bytes for 6 letters, so long
    Vietnamese names and agency names would otherwise be refused by the encoder. The full
    text stays elsewhere (O=, the account). ``keep`` is never cut: the part that tells two CAs
    of one organisation apart (" Issuing CA 2") must survive a long organisation name."""
    if len((text + keep).encode()) <= COMMON_NAME_MAX_BYTES:
        return text + keep
    budget = COMMON_NAME_MAX_BYTES - len(("…" + keep).encode())
    if budget < 1:
        return fit_common_name(text + keep)
    cut = text
    while len(cut.encode()) > budget:
        cut = cut[:-1]
    return cut.rstrip() + "…" + keep


# RFC 4514 names only CN, L, ST, O, OU, C, STREET, DC and UID; title (RFC 4519 §2.38) is as
# standard in LDAP, and "2.5.4.12=" tells a reader nothing.
READABLE_ATTRIBUTE_NAMES = {NameOID.TITLE: "title", NameOID.SERIAL_NUMBER: "serialNumber"}


def dn_text(name: x509.Name) -> str:
    """A distinguished name as text (RFC 4514 order and escaping) with its attributes named."""
    return name.rfc4514_string(READABLE_ATTRIBUTE_NAMES)


@dataclass(frozen=True)
class StatusUrls:
    """Where relying parties fetch the issuer's certificate, CRL and OCSP answers."""

    crl: str
    ocsp: str
    ca_issuers: str


@dataclass(frozen=True)
class IssuanceContext:
    identity: OfficialIdentity
    public_key: SubjectPublicKey
    issuer: x509.Certificate
    urls: StatusUrls
    not_before: datetime
    not_after: datetime
    device_name: str | None = None
    # O= of a subject whose official has no agency: the province's organisation name
    # (COMMUNE_SSO_ORGANISATION_NAME); None: no O= then.
    default_organisation: str | None = None


Step = Callable[[IssuanceContext, x509.CertificateBuilder], x509.CertificateBuilder]


# What a subject is built from, by name: the label (a msgid, named in ProfileIncomplete) and
# whether an official's record has it.
IDENTITY_FACTS: dict[str, tuple[str, Callable[[OfficialIdentity], bool]]] = {
    "full_name": (N_("full name"), lambda identity: bool((identity.full_name or "").strip())),
    # A directory may have provisioned a value that is no CCCD (idp keeps it as sent): only
    # 12 ASCII digits go into a subject.
    "citizen_id": (
        N_("citizen ID (CCCD)"),
        lambda identity: bool(
            identity.citizen_id
            and len(identity.citizen_id) == 12
            and identity.citizen_id.isascii()
            and identity.citizen_id.isdigit()
        ),
    ),
    "unit": (
        N_("administrative unit"),
        lambda identity: bool(identity.unit_code and identity.province_name),
    ),
    "agency": (N_("agency"), lambda identity: bool(identity.agency)),
}


@dataclass(frozen=True)
class Profile:
    name: str
    title: str  # translatable msgid
    steps: tuple[Step, ...]
    needs: tuple[str, ...] = ()  # keys of IDENTITY_FACTS the subject is built from
    max_validity_days: int = FIVE_YEARS_DAYS
    max_renewal_validity_days: int = THREE_YEARS_DAYS
    default_validity_days: int = 2 * 365
    server_keygen_allowed: bool = False
    approvals_required: int = 1  # 0: issued at once; 2: two different approvers
    renewal_window_days: int = 30

    def check_complete(self, identity: OfficialIdentity) -> None:
        """Refuse, naming every missing fact, an official whose record cannot fill this
        profile's subject: checked when a certificate is requested and again when it is
        issued (the record may have changed in between)."""
        missing = tuple(
            IDENTITY_FACTS[fact][0] for fact in self.needs if not IDENTITY_FACTS[fact][1](identity)
        )
        if missing:
            raise ProfileIncomplete(missing)

    def apply(
        self, context: IssuanceContext, builder: x509.CertificateBuilder
    ) -> x509.CertificateBuilder:
        self.check_complete(context.identity)
        for step in self.steps:
            builder = step(context, builder)
        return builder


# --- validators -------------------------------------------------------------------------------


def require_active_official(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    if not context.identity.active:
        raise PolicyViolation(N_("The official's account is not active."))
    return builder


def require_device_name(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    if not context.device_name or not _DEVICE_NAME.fullmatch(context.device_name):
        raise PolicyViolation(
            N_(
                "A device certificate needs a device name: lowercase letters, digits, dots and "
                "hyphens."
            ),
            field="device_name",
        )
    return builder


# --- subjects ---------------------------------------------------------------------------------


def _place(context: IssuanceContext) -> list[x509.NameAttribute]:
    identity = context.identity
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY)]
    if identity.province_name:
        attributes.append(
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, identity.province_name)
        )
    if identity.unit_name:
        attributes.append(x509.NameAttribute(NameOID.LOCALITY_NAME, identity.unit_name))
    organisation = identity.agency or context.default_organisation
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return attributes


def official_subject(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    """C=VN, ST=<province>, L=<unit>, O=<agency>, title=<position>, CN=<full name>,
    UID=CCCD:<citizen id>."""
    identity = context.identity
    attributes = _place(context)
    if identity.position:
        attributes.append(x509.NameAttribute(NameOID.TITLE, identity.position))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, fit_common_name(identity.full_name)))
    attributes.append(x509.NameAttribute(NameOID.USER_ID, f"CCCD:{identity.citizen_id}"))
    return builder.subject_name(x509.Name(attributes))


def organisation_subject(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    identity = context.identity
    assert identity.agency is not None  # Profile.needs "agency"
    return builder.subject_name(
        x509.Name(
            [
                *_place(context),
                x509.NameAttribute(NameOID.COMMON_NAME, fit_common_name(identity.agency)),
            ]
        )
    )


def device_subject(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    assert context.device_name is not None  # require_device_name ran first
    return builder.subject_name(
        x509.Name(
            [
                *_place(context),
                x509.NameAttribute(NameOID.COMMON_NAME, context.device_name),
            ]
        )
    ).add_extension(
        x509.SubjectAlternativeName([x509.DNSName(context.device_name)]), critical=False
    )


def email_alternative_name(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    # emailProtection without an address is legal but useless to mail clients: add it when known.
    if context.identity.email:
        return builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(context.identity.email)]), critical=False
        )
    return builder


# --- extensions -------------------------------------------------------------------------------


_NOT_A_CA = x509.BasicConstraints(ca=False, path_length=None)


@functools.lru_cache(maxsize=64)
def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def end_entity(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    return (
        builder.add_extension(_NOT_A_CA, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(context.public_key), critical=False
        )
        .add_extension(_authority_key_identifier(context.issuer), critical=False)
    )


def end_entity_key_usage(
    *, digital_signature: bool, content_commitment: bool, key_encipherment: bool
) -> x509.KeyUsage:
    """keyUsage of a certificate that signs no certificate and no CRL."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=content_commitment,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


_SIGNING_KEY_USAGE = end_entity_key_usage(
    digital_signature=True, content_commitment=True, key_encipherment=False
)
_AUTHENTICATION_KEY_USAGE = end_entity_key_usage(
    digital_signature=True, content_commitment=False, key_encipherment=False
)
_RSA_DEVICE_KEY_USAGE = end_entity_key_usage(
    digital_signature=True, content_commitment=False, key_encipherment=True
)
_DOCUMENT_SIGNING_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.EMAIL_PROTECTION, ID_KP_DOCUMENT_SIGNING]
)
_CLIENT_AUTH_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])


def signing_key_usage(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    """digitalSignature + contentCommitment: PDF validators want non-repudiation (PITFALLS)."""
    return builder.add_extension(_SIGNING_KEY_USAGE, critical=True)


def device_key_usage(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    # keyEncipherment only makes sense for RSA (TLS RSA key transport); never for EC keys.
    rsa_key = isinstance(context.public_key, rsa.RSAPublicKey)
    return builder.add_extension(
        _RSA_DEVICE_KEY_USAGE if rsa_key else _AUTHENTICATION_KEY_USAGE, critical=True
    )


def document_signing_eku(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    return builder.add_extension(_DOCUMENT_SIGNING_EKU, critical=False)


def authentication_key_usage(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    """digitalSignature only: the key signs the TLS handshake (RFC 8446 CertificateVerify),
    never a document, so no contentCommitment."""
    return builder.add_extension(_AUTHENTICATION_KEY_USAGE, critical=True)


def client_auth_eku(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    return builder.add_extension(_CLIENT_AUTH_EKU, critical=False)


def crl_distribution_point(url: str) -> x509.CRLDistributionPoints:
    """One full-name distribution point (RFC 5280 §4.2.1.13), as every CA of ours publishes."""
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def status_locations(
    context: IssuanceContext, builder: x509.CertificateBuilder
) -> x509.CertificateBuilder:
    """CRL distribution point and AIA (OCSP + caIssuers), RFC 5280 §4.2.1.13 and §4.2.2.1."""
    return add_status_locations(builder, context.urls)


def add_status_locations(
    builder: x509.CertificateBuilder, urls: StatusUrls
) -> x509.CertificateBuilder:
    """The CRL distribution point and AIA (OCSP, caIssuers) of the issuing CA at ``urls``."""
    distribution_point, access = _status_extensions(urls)
    return builder.add_extension(distribution_point, critical=False).add_extension(
        access, critical=False
    )


# One entry per issuing CA and CRL partition in use: a handful at a time.
@functools.lru_cache(maxsize=256)
def _status_extensions(
    urls: StatusUrls,
) -> tuple[x509.CRLDistributionPoints, x509.AuthorityInformationAccess]:
    return crl_distribution_point(urls.crl), x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(urls.ocsp),
            ),
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(urls.ca_issuers),
            ),
        ]
    )


OFFICIAL_DOCUMENT_SIGNING = Profile(
    name="official-document-signing",
    title=N_("Official's document signing (personal)"),
    steps=(
        require_active_official,
        official_subject,
        email_alternative_name,
        end_entity,
        signing_key_usage,
        document_signing_eku,
        status_locations,
    ),
    needs=("full_name", "citizen_id", "unit"),
    server_keygen_allowed=True,
    approvals_required=1,
)

ORGANISATION_SIGNING = Profile(
    name="organisation-signing",
    title=N_("Organisation signing (agency seal)"),
    steps=(
        require_active_official,
        organisation_subject,
        end_entity,
        signing_key_usage,
        document_signing_eku,
        status_locations,
    ),
    needs=("unit", "agency"),
    # An agency's seal signs on behalf of the whole agency: two different admins must agree.
    approvals_required=2,
)

DEVICE = Profile(
    name="device",
    title=N_("Device (client authentication)"),
    steps=(
        require_active_official,
        require_device_name,
        device_subject,
        end_entity,
        device_key_usage,
        client_auth_eku,
        status_locations,
    ),
    needs=("unit",),
    default_validity_days=365,
    max_validity_days=2 * 365,
    max_renewal_validity_days=2 * 365,
    approvals_required=1,
)

# Sign-in at the IdP with a TLS client certificate (idp/web/certificate_login.py): the
# official's subject (UID=CCCD:<citizen id> names the account), clientAuth only.
OFFICIAL_AUTHENTICATION = Profile(
    name="official-authentication",
    title=N_("Official's authentication (certificate sign-in)"),
    steps=(
        require_active_official,
        official_subject,
        end_entity,
        authentication_key_usage,
        client_auth_eku,
        status_locations,
    ),
    needs=("full_name", "citizen_id", "unit"),
    server_keygen_allowed=True,
    approvals_required=1,
)

BUILT_IN_PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        OFFICIAL_DOCUMENT_SIGNING,
        ORGANISATION_SIGNING,
        DEVICE,
        OFFICIAL_AUTHENTICATION,
    )
}


def get_profile(name: str) -> Profile:
    try:
        return BUILT_IN_PROFILES[name]
    except KeyError:
        raise PolicyViolation(
            N_("Unknown certificate profile %(name)s."), field="profile", name=name
        ) from None
