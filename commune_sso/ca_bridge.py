"""What the CA learns from the IdP, implemented here because ca_admin never imports idp.

The CA sees an official only as :class:`ca_admin.officials.OfficialIdentity` (the same facts the
IdP vouches for in its ``unit`` claims) and asks the IdP's delegated-admin rules who may approve.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import ca_admin
import core
import idp
from ca_admin.officials import OfficialIdentity
from ca_admin.presented_certificates import check_presented
from ca_admin.runtime import CaRuntime
from ca_admin.signature_validation import load_trust_anchors
from ca_admin.signing import CaKeyStore
from ca_admin.web.bearer import DPOP, DpopRefused, InvalidToken, PresentedToken
from ca_admin.web.pages.oidc_client import PagesClient
from commune_sso import secrets_setup
from commune_sso.page_labels import page_labels
from commune_sso.site_areas import SITE_AREAS
from core import audit
from core.clock import Clock
from core.db import transaction
from core.errors import ConfigurationError
from core.mail import Mailer, mail_settings
from core.opaque_tokens import digest
from core.settings import Settings
from core.web.i18n import N_, load_translations
from core.web.templating import PageRenderer
from idp import accounts, admin_scope, clients, units
from idp.certificate_sign_in import CertificateVerdict
from idp.claims import CA_SCOPES, UNIT_SCOPE
from idp.models import Account, AccountProfile, Agency, Client, Unit
from idp.oauth import dpop
from idp.oauth.access_tokens import read_access_token, verified_access_claims
from idp.oauth.endpoints.discovery import PATHS
from idp.runtime import IdpRuntime
from keys.errors import InvalidToken as InvalidJwt

log = logging.getLogger(__name__)

CORE_WEB = Path(core.__file__).parent / "web"
CA_DIR = Path(ca_admin.__file__).parent
IDP_DIR = Path(idp.__file__).parent
# The CA pages' registration at the IdP (a first-party confidential client).
CA_PAGES_CLIENT_ID = "ca-pages"
CA_PAGES_CLIENT_NAME = "Chứng thư số (trang của CA)"
CA_PAGES_SCOPE = " ".join(("openid", "profile", "email", UNIT_SCOPE, *CA_SCOPES))


def _identity(session: Session, account: Account) -> OfficialIdentity:
    claims = units.unit_claims(session, account)
    profile = session.get(AccountProfile, account.id)
    return OfficialIdentity(
        subject_ref=account.subject,
        username=account.username,
        full_name=account.full_name,
        citizen_id=profile.citizen_id if profile else None,
        province_code=claims.get("province_code"),
        province_name=claims.get("province_name"),
        unit_code=claims.get("unit_code"),
        unit_name=claims.get("unit_name"),
        agency=claims.get("agency"),
        position=claims.get("position"),
        email=account.email,
        active=account.is_active,
    )


def _province_name(unit: Unit | None, province_names: dict[str, str]) -> str | None:
    if unit is None:
        return None
    return unit.name if unit.level == "province" else province_names.get(unit.province_code)


def presented_certificate_verdict(
    session: Session, certificate: x509.Certificate, now: datetime
) -> CertificateVerdict:
    """The CA's verdict on a certificate presented for sign-in, in the IdP's terms."""
    verdict = check_presented(session, certificate, now=now)
    return CertificateVerdict(
        refusal=verdict.refusal,
        serial=verdict.serial,
        citizen_id=verdict.citizen_id,
        issuer=verdict.issuer,
    )


class IdpOfficialDirectory:
    def find(self, session: Session, *, subject_ref: str) -> OfficialIdentity | None:
        account = accounts.find_by_subject(session, subject_ref)
        return _identity(session, account) if account is not None else None

    def find_many(
        self, session: Session, *, subject_refs: Collection[str]
    ) -> dict[str, OfficialIdentity]:
        """The same facts as :meth:`find` (``units.unit_claims``) for a batch, in two queries:
        the unit-merger job re-issues 500 certificates per transaction."""
        if not subject_refs:
            return {}
        rows = session.execute(
            select(Account, AccountProfile.citizen_id, AccountProfile.position, Unit, Agency.name)
            .outerjoin(AccountProfile, AccountProfile.account_id == Account.id)
            .outerjoin(Unit, Unit.id == AccountProfile.unit_id)
            .outerjoin(Agency, Agency.id == AccountProfile.agency_id)
            .where(Account.subject.in_(sorted(subject_refs)))
        ).all()
        province_codes = {row[3].province_code for row in rows if row[3] is not None}
        # .all(): dict() would take a Result for a mapping (it has keys()).
        province_names = dict(
            session.execute(
                select(Unit.code, Unit.name).where(
                    Unit.level == "province", Unit.code.in_(sorted(province_codes))
                )
            ).all()
        )
        found: dict[str, OfficialIdentity] = {}
        for account, citizen_id, position, unit, agency_name in rows:
            found[account.subject] = OfficialIdentity(
                subject_ref=account.subject,
                username=account.username,
                full_name=account.full_name,
                citizen_id=citizen_id,
                province_code=unit.province_code if unit else None,
                province_name=(
                    (
                        unit.name
                        if unit.level == "province"
                        else province_names.get(unit.province_code)
                    )
                    if unit
                    else None
                ),
                unit_code=unit.code if unit else None,
                unit_name=unit.name if unit else None,
                agency=agency_name,
                position=position or None,
                email=account.email,
                active=account.is_active,
            )
        return found

    def find_by_username(self, session: Session, *, username: str) -> OfficialIdentity | None:
        account = accounts.find_by_username(session, username)
        return _identity(session, account) if account is not None else None

    def unit_names(self, session: Session, *, codes: Collection[str]) -> dict[str, str]:
        return units.names_by_code(session, codes)


class IdpApproverScope:
    """System admins approve anywhere; province and unit admins within their units."""

    def may_administer(self, session: Session, *, actor_ref: str, unit_code: str | None) -> bool:
        account = accounts.find_by_subject(session, actor_ref)
        if account is None:
            return False
        scope = admin_scope.scope_of(session, account)
        if scope.system:
            return True
        unit = units.find_by_code(session, unit_code) if unit_code else None
        return unit is not None and scope.covers(unit)

    def administered_unit_codes(self, session: Session, *, actor_ref: str) -> frozenset[str] | None:
        account = accounts.find_by_subject(session, actor_ref)
        if account is None:
            return frozenset()
        scope = admin_scope.scope_of(session, account)
        if scope.system:
            return None
        if not scope.is_admin:
            return frozenset()
        return frozenset(session.scalars(select(Unit.code).where(scope.units_clause())))


class IdpAccessTokens:
    """The CA API's bearer tokens, checked exactly as userinfo checks them (RFC 9068: our
    signature, issuer, typ at+jwt, expiry, revoked jti, grant still standing)."""

    def __init__(self, runtime: IdpRuntime) -> None:
        self._runtime = runtime

    def verify(self, session: Session, presented: PresentedToken) -> dict[str, Any]:
        """A DPoP-bound token with its proof (RFC 9449 §7.1), a certificate-bound one with the
        certificate our proxy forwarded (RFC 8705 §3), as userinfo takes them."""
        runtime, token = self._runtime, presented.token
        dpop_scheme = presented.scheme == DPOP
        if dpop_scheme:
            claims = verified_access_claims(runtime, token)
            if claims is None:
                raise InvalidToken(N_("The access token is invalid, expired or revoked."))
            try:
                dpop.verify_bound_request(
                    runtime,
                    session,
                    token_claims=claims,
                    access_token=token,
                    proofs=list(presented.dpop_proofs),
                    method=presented.method,
                    url=presented.url,
                )
            except dpop.DpopError as error:
                nonce = dpop.new_nonce(runtime)
                if error.error == "use_dpop_nonce":
                    raise DpopRefused(
                        N_("Send the DPoP proof again with the nonce of the DPoP-Nonce header."),
                        code=error.error,
                        nonce=nonce,
                    ) from None
                raise DpopRefused(
                    N_("The DPoP proof does not hold for this request."),
                    code=error.error,
                    nonce=nonce,
                ) from None
        view = read_access_token(
            runtime,
            session,
            token,
            sender_verified=dpop_scheme,
            client_certificate=None if dpop_scheme else presented.client_certificate,
        )
        # A client_credentials token has no grant to revoke: the client must still exist.
        if view is None or (
            view.grant is None and clients.find_active(session, view.client_id) is None
        ):
            raise InvalidToken(N_("The access token is invalid, expired or revoked."))
        return dict(view.claims)


class SharedBasics(Protocol):
    """What the CA shares with the IdP: an ``IdpRuntime``, or the CLI's lighter stand-in
    (the CLI builds no web app, templates or key ring to run a CA command)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def session_factory(self) -> sessionmaker[Session]: ...


def build_ca_runtime(settings: Settings, runtime: SharedBasics) -> CaRuntime:
    """The CA's runtime, sharing the IdP's database, clock and key passphrase."""
    return CaRuntime(
        clock=runtime.clock,
        session_factory=runtime.session_factory,
        key_store=CaKeyStore(secrets_setup.key_passphrase(settings).decode("utf-8")),
        base_url=settings.issuer,
        key_dir=settings.resolved_ca_key_dir.absolute(),
        directory=IdpOfficialDirectory(),
        approvers=IdpApproverScope(),
        crl_lifetime=timedelta(seconds=settings.ca_crl_lifetime),
        crl_refresh_before=timedelta(seconds=settings.ca_crl_lifetime // 4),
        crl_partition_size=settings.ca_crl_partition_size,
        full_crl_max_delay=timedelta(seconds=settings.ca_full_crl_max_delay),
        ocsp_lifetime=timedelta(seconds=settings.ca_ocsp_lifetime),
        ocsp_refresh_before=timedelta(seconds=settings.ca_ocsp_lifetime // 2),
        supersede_after=timedelta(days=settings.ca_supersede_after_days),
        organisation_name=settings.organisation_name,
        tsa_policy=settings.tsa_policy_oid,
        tsa_accuracy=timedelta(milliseconds=settings.tsa_accuracy_ms),
        # The CLI's stand-in has no key ring: it serves no API, so it verifies no tokens.
        access_tokens=IdpAccessTokens(runtime) if isinstance(runtime, IdpRuntime) else None,
        pages=_ca_pages(runtime) if isinstance(runtime, IdpRuntime) else None,
        csrf=runtime.csrf if isinstance(runtime, IdpRuntime) else None,
        pages_client=_pages_client(settings, runtime) if isinstance(runtime, IdpRuntime) else None,
        mailer=Mailer(mail_settings(settings)),
        validation_anchors=_validation_anchors(settings),
        validation_max_bytes=settings.ca_validation_max_mb * 1024 * 1024,
        validation_fetch_revocation=settings.ca_validation_fetch_revocation,
    )


def _validation_anchors(settings: Settings) -> tuple[x509.Certificate, ...]:
    try:
        return load_trust_anchors(settings.ca_validation_trust_anchors)
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"COMMUNE_SSO_CA_VALIDATION_TRUST_ANCHORS: cannot read a certificate: {error}"
        ) from None


class IdpIdTokens:
    """The CA pages' ID-token signature check: the IdP's published keys, read in process
    (the same keys its JWKS serves), the algorithm taken from our key, never from the token."""

    def __init__(self, runtime: IdpRuntime) -> None:
        self._runtime = runtime

    def verify(self, token: str) -> tuple[str, dict[str, Any]]:
        try:
            verified = self._runtime.keyring.verify_jwt(token, now=self._runtime.clock.now())
        except InvalidJwt as error:
            raise ValueError(str(error)) from None
        header = verified.header
        if str(header.get("typ", "JWT")).lower() not in ("jwt", ""):
            raise ValueError("not an ID token")  # an access or logout token is refused
        return str(header["alg"]), dict(verified.claims)


def ca_pages_client_secret(server_secret: bytes) -> str:
    """Derived from the server secret: every worker knows it and nothing stores it in clear."""
    mac = hmac.new(server_secret, b"ca-pages-client-secret", hashlib.sha256).hexdigest()
    return f"ca-{mac}"


def ensure_ca_pages_client(
    session: Session, *, clock: Clock, settings: Settings, server_secret: bytes
) -> Client:
    """Register the CA pages at the IdP, or bring the registration up to date (idempotent).

    A removed registration (an operator's choice) is not brought back.
    """
    secret = ca_pages_client_secret(server_secret)
    redirect = f"{settings.issuer}/ca/pages/callback"
    home = f"{settings.issuer}/ca/pages/"
    existing = session.scalar(select(Client).where(Client.client_id == CA_PAGES_CLIENT_ID))
    if existing is None:
        client, _ = clients.create(
            session=session,
            clock=clock,
            actor="system",
            name=CA_PAGES_CLIENT_NAME,
            redirect_uris=[redirect],
            post_logout_redirect_uris=[home],
            grant_types=("authorization_code",),
            scope=CA_PAGES_SCOPE,
            first_party=True,
            client_id=CA_PAGES_CLIENT_ID,
        )
        client.secret_digest = digest(secret)
        return client
    changed = []
    if existing.secret_digest != digest(secret):  # the server secret was replaced
        existing.secret_digest = digest(secret)
        changed.append("secret")
    if list(existing.redirect_uris) != [redirect] or list(existing.post_logout_redirect_uris) != [
        home
    ]:  # the issuer changed
        existing.redirect_uris = [redirect]
        existing.post_logout_redirect_uris = [home]
        changed.append("uris")
    if existing.scope != CA_PAGES_SCOPE:
        existing.scope = CA_PAGES_SCOPE
        changed.append("scope")
    if changed:
        audit.record(
            session,
            clock=clock,
            actor="system",
            action="client.update",
            target=f"client:{CA_PAGES_CLIENT_ID}",
            details={"changed": changed},
        )
    return existing


class _Registration:
    """Registers the CA pages' client on first use in this process (then remembers it)."""

    def __init__(self, settings: Settings, runtime: IdpRuntime) -> None:
        self._settings = settings
        self._runtime = runtime
        self._done = False
        self._lock = threading.Lock()

    def __call__(self) -> None:
        if self._done:
            return
        with self._lock:
            if self._done:
                return
            try:
                with transaction(self._runtime.session_factory) as session:
                    ensure_ca_pages_client(
                        session,
                        clock=self._runtime.clock,
                        settings=self._settings,
                        server_secret=self._runtime.server_secret,
                    )
            except IntegrityError:
                log.info("another worker registered the CA pages' client at the same time")
            self._runtime.client_cache.forget(CA_PAGES_CLIENT_ID)
            self._done = True


def _pages_client(settings: Settings, runtime: IdpRuntime) -> PagesClient:
    return PagesClient(
        client_id=CA_PAGES_CLIENT_ID,
        client_secret=ca_pages_client_secret(runtime.server_secret),
        issuer=settings.issuer,
        authorization_path=PATHS["authorization_endpoint"],
        token_path=PATHS["token_endpoint"],
        end_session_path=PATHS["end_session_endpoint"],
        scope=CA_PAGES_SCOPE,
        cookie_key=hmac.new(runtime.server_secret, b"ca-pages-cookie", hashlib.sha256).digest(),
        secure_cookies=settings.issuer_is_https,
        session_lifetime=timedelta(seconds=min(settings.session_idle_ttl, settings.session_ttl)),
        id_tokens=IdpIdTokens(runtime),
        ensure_registered=_Registration(settings, runtime),
    )


def _ca_pages(runtime: IdpRuntime) -> PageRenderer:
    return PageRenderer(
        template_dirs=[CA_DIR / "templates", CORE_WEB / "templates"],
        translations=load_translations(
            [CORE_WEB / "locale", IDP_DIR / "locale", CA_DIR / "locale"]
        ),
        csrf=runtime.csrf,
        organisation_names=runtime.settings.organisation_names,
        areas=SITE_AREAS,
        code_labels=page_labels(),
    )
