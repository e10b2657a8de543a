"""Passkeys: WebAuthn Level 2/3 registration and authentication ceremonies (``webauthn``, the
duo-labs library), several credentials per official.

* The Relying Party is this provider: its RP ID is the issuer's host name and the only origin
  accepted is the issuer's (scheme, host, port). A browser refuses an IP address as RP ID, so
  passkeys are offered only when the issuer has a host name (not on the embedded default
  ``http://127.0.0.1:8000``).
* Every ceremony's challenge is stored in the database (any worker can finish it), expires
  after :data:`CHALLENGE_TTL`, and is consumed by a conditional UPDATE before the response is
  checked, so it is used once even by two concurrent submissions, and also when the check
  fails.
* Registration asks for a discoverable credential (``residentKey: required``: a passkey signs
  in without a username), user verification preferred, no attestation (we trust no vendor
  list; the authenticator's flags are what it claims).
* Sign-in: a passkey alone must have verified the user (UV: PIN or biometrics, two factors in
  one); as the second factor after the password, presence is enough. The credential must
  belong to the account: alone, the returned user handle must be that account's (§7.2 step 6);
  second factor, the credential must be one of the account's.
* Signature counter (§6.1.1, §7.2 step 21): a counter that does not grow (when either value is
  non-zero) suggests a cloned authenticator; the sign-in is refused and the credential marked.

Service functions never commit and audit in the caller's transaction (CONVENTIONS §6).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from core import audit
from core.clock import Clock
from core.settings import Settings
from idp.models import Account, Interaction, Passkey, WebAuthnChallenge

CHALLENGE_TTL = timedelta(minutes=5)
# What the browser is told (a hint): shorter than the challenge's life.
CEREMONY_TIMEOUT_MS = 180_000
MAX_NAME = 100
MAX_PASSKEYS = 20
REGISTER, AUTHENTICATE = "register", "authenticate"
# Expired challenges are deleted when a new one is made, this long after they expired.
PRUNE_AFTER = timedelta(hours=1)


class CeremonyFailed(Exception):
    """A WebAuthn response we do not accept; ``reason`` is for the audit log, never shown.
    ``account``: the account the presented credential belongs to, once that is known (the
    failure counts against its sign-in throttle)."""

    def __init__(self, reason: str, account: Account | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.account = account


@dataclass(frozen=True)
class RelyingParty:
    rp_id: str
    origin: str
    name: str


def relying_party(settings: Settings) -> RelyingParty | None:
    """This provider as a WebAuthn Relying Party, or None when the issuer's host is an IP
    address (WebAuthn §5.1.3: the RP ID must be a registrable domain suffix of the origin)."""
    parts = urlsplit(settings.issuer)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if not host:
        return None
    return RelyingParty(rp_id=host, origin=f"{parts.scheme}://{parts.netloc}", name=host)


def available(settings: Settings) -> bool:
    return relying_party(settings) is not None


def _rp(settings: Settings) -> RelyingParty:
    rp = relying_party(settings)
    if rp is None:
        raise CeremonyFailed("passkeys_unavailable")
    return rp


def user_handle(account: Account) -> bytes:
    """WebAuthn user.id: the account's public, random subject (never the username: §14.6.1)."""
    return account.subject.encode("ascii")


def list_for(session: Session, account: Account) -> list[Passkey]:
    return list(
        session.scalars(
            select(Passkey).where(Passkey.account_id == account.id).order_by(Passkey.id)
        )
    )


def has_passkey(session: Session, account: Account) -> bool:
    return (
        session.scalar(select(Passkey.id).where(Passkey.account_id == account.id).limit(1))
        is not None
    )


def _new_challenge(
    session: Session,
    clock: Clock,
    *,
    challenge: bytes,
    purpose: str,
    user_verification: str,
    account: Account | None,
    interaction: Interaction | None,
) -> None:
    now = clock.now()
    session.execute(
        delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at < now - PRUNE_AFTER)
    )
    session.add(
        WebAuthnChallenge(
            challenge=bytes_to_base64url(challenge),
            purpose=purpose,
            account_id=account.id if account else None,
            interaction_id=interaction.id if interaction else None,
            user_verification=user_verification,
            created_at=now,
            expires_at=now + CHALLENGE_TTL,
        )
    )
    session.flush()


def _consume_challenge(
    session: Session, clock: Clock, client_data_json: bytes, *, purpose: str
) -> WebAuthnChallenge:
    """The challenge the response answers, marked used (once only) — or CeremonyFailed."""
    try:
        client_data = parse_client_data_json(client_data_json)
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise CeremonyFailed("malformed_client_data") from error
    encoded = bytes_to_base64url(client_data.challenge)
    if len(encoded) > 128:
        raise CeremonyFailed("unknown_challenge")
    row = session.scalar(select(WebAuthnChallenge).where(WebAuthnChallenge.challenge == encoded))
    now = clock.now()
    if row is None or row.purpose != purpose:
        raise CeremonyFailed("unknown_challenge")
    if row.expires_at <= now:
        raise CeremonyFailed("expired_challenge")
    consumed = session.execute(
        update(WebAuthnChallenge)
        .where(WebAuthnChallenge.id == row.id, WebAuthnChallenge.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(consumed, "rowcount", 0) or 0) != 1:
        raise CeremonyFailed("replayed_challenge")
    return row


def _parse_json(credential_json: str) -> dict[str, Any]:
    # The form field is bounded (8 KiB); a credential is a flat object of a few strings.
    try:
        data = json.loads(credential_json)
    except (ValueError, RecursionError) as error:
        raise CeremonyFailed("malformed_credential") from error
    if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
        raise CeremonyFailed("malformed_credential")
    return data


def _client_data_of(data: dict[str, Any]) -> bytes:
    raw = data["response"].get("clientDataJSON")
    if not isinstance(raw, str):
        raise CeremonyFailed("malformed_credential")
    try:
        return base64url_to_bytes(raw)
    except (ValueError, TypeError) as error:
        raise CeremonyFailed("malformed_credential") from error


# --- Registration (WebAuthn §7.1) ------------------------------------------------------------


def registration_options(
    *, session: Session, clock: Clock, settings: Settings, account: Account
) -> str:
    """The PublicKeyCredentialCreationOptions (JSON) for a new passkey of ``account``; its
    existing credentials are excluded, so one authenticator is not registered twice."""
    rp = _rp(settings)
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=user_handle(account),
        user_name=account.username,
        user_display_name=account.full_name or account.username,
        timeout=CEREMONY_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=[_descriptor(passkey) for passkey in list_for(session, account)],
    )
    _new_challenge(
        session,
        clock,
        challenge=options.challenge,
        purpose=REGISTER,
        user_verification=UserVerificationRequirement.PREFERRED.value,
        account=account,
        interaction=None,
    )
    return options_to_json(options)


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


def register(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    account: Account,
    credential_json: str,
    name: str,
    client_address: str | None = None,
) -> Passkey:
    """Check the attestation response against the stored challenge and keep the credential."""
    rp = _rp(settings)
    data = _parse_json(credential_json)
    challenge = _consume_challenge(session, clock, _client_data_of(data), purpose=REGISTER)
    if challenge.account_id != account.id:
        raise CeremonyFailed("challenge_of_another_account")
    if len(list_for(session, account)) >= MAX_PASSKEYS:
        raise CeremonyFailed("too_many_passkeys")
    try:
        verified = verify_registration_response(
            credential=data,
            expected_challenge=_challenge_bytes(challenge),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise CeremonyFailed(f"registration_refused: {error}"[:200]) from error
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)):
        raise CeremonyFailed("credential_already_registered")
    transports = data["response"].get("transports")
    passkey = Passkey(
        account_id=account.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name.strip()[:MAX_NAME],
        aaguid=verified.aaguid,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        transports=[t for t in transports if isinstance(t, str)][:8]
        if isinstance(transports, list)
        else [],
        created_at=clock.now(),
    )
    session.add(passkey)
    session.flush()
    audit.record(
        session,
        clock=clock,
        actor=f"user:{account.username}",
        action="account.passkey_added",
        target=f"account:{account.username}",
        details={
            "passkey_id": passkey.id,
            "name": passkey.name,
            "aaguid": passkey.aaguid,
            "key_kind": key_method(passkey),
            "user_verified": verified.user_verified,
        },
        client_address=client_address,
    )
    return passkey


def _challenge_bytes(row: WebAuthnChallenge) -> bytes:
    return base64url_to_bytes(row.challenge)


def remove(
    *,
    session: Session,
    clock: Clock,
    account: Account,
    passkey_id: int,
    actor: str,
    client_address: str | None = None,
) -> Passkey | None:
    passkey = session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.account_id == account.id)
    )
    if passkey is None:
        return None
    session.delete(passkey)
    audit.record(
        session,
        clock=clock,
        actor=actor,
        action="account.passkey_removed",
        target=f"account:{account.username}",
        details={"passkey_id": passkey.id, "name": passkey.name},
        client_address=client_address,
    )
    return passkey


def remove_all(
    *,
    session: Session,
    clock: Clock,
    account: Account,
    actor: str,
    client_address: str | None = None,
) -> int:
    """Remove every passkey of ``account`` (an administrator's MFA reset), each audited as
    ``account.passkey_removed``; how many there were."""
    existing = list_for(session, account)
    for passkey in existing:
        remove(
            session=session,
            clock=clock,
            account=account,
            passkey_id=passkey.id,
            actor=actor,
            client_address=client_address,
        )
    return len(existing)


def summary(passkey: Passkey) -> dict[str, Any]:
    """What an administrator or the operator sees of a passkey (never its key or id bytes)."""
    return {
        "id": passkey.id,
        "name": passkey.name,
        "created_at": passkey.created_at,
        "last_used_at": passkey.last_used_at,
        "synced": passkey.backup_eligible,
        "clone_suspected": passkey.clone_suspected_at is not None,
    }


def find_for(session: Session, account: Account, passkey_id: int) -> Passkey | None:
    return session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.account_id == account.id)
    )


# --- Authentication (WebAuthn §7.2) ----------------------------------------------------------


def authentication_options(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    interaction: Interaction,
    account: Account | None,
) -> str:
    """PublicKeyCredentialRequestOptions (JSON) for a sign-in of ``interaction``: with no
    account, any discoverable credential (username-less; user verification required); with the
    account whose password was right, one of its credentials (verification preferred)."""
    rp = _rp(settings)
    alone = account is None
    requirement = (
        UserVerificationRequirement.REQUIRED if alone else UserVerificationRequirement.PREFERRED
    )
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=[]
        if account is None
        else [_descriptor(p) for p in list_for(session, account)],
        user_verification=requirement,
    )
    _new_challenge(
        session,
        clock,
        challenge=options.challenge,
        purpose=AUTHENTICATE,
        user_verification=requirement.value,
        account=account,
        interaction=interaction,
    )
    return options_to_json(options)


@dataclass(frozen=True)
class Assertion:
    account: Account
    passkey: Passkey
    user_verified: bool


def key_method(passkey: Passkey) -> str:
    """RFC 8176: "swk" for a credential that may be synced off the device (backup eligible),
    "hwk" for one that stays on its authenticator."""
    return "swk" if passkey.backup_eligible else "hwk"


def amr_of(assertion: Assertion) -> list[str]:
    """RFC 8176 methods of a passkey sign-in: the key, "user" (a presence test, always done),
    and "mfa" when the authenticator also verified the user (PIN or biometrics: which one it
    does not say, so neither "pin" nor "fpt" is claimed)."""
    methods = [key_method(assertion.passkey), "user"]
    if assertion.user_verified:
        methods.append("mfa")
    return methods


def authenticate(
    *,
    session: Session,
    clock: Clock,
    settings: Settings,
    interaction: Interaction,
    account: Account | None,
    credential_json: str,
) -> Assertion:
    """Check an assertion for ``interaction``: the passkey alone (``account`` None) or the
    second factor of ``account``. Raises CeremonyFailed."""
    rp = _rp(settings)
    data = _parse_json(credential_json)
    challenge = _consume_challenge(session, clock, _client_data_of(data), purpose=AUTHENTICATE)
    if challenge.interaction_id != interaction.id:
        raise CeremonyFailed("challenge_of_another_sign_in")
    if (account.id if account else None) != challenge.account_id:
        raise CeremonyFailed("challenge_of_another_account")
    try:
        parsed = parse_authentication_credential_json(data)
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise CeremonyFailed("malformed_credential") from error
    passkey = session.scalar(select(Passkey).where(Passkey.credential_id == parsed.id))
    if passkey is None:
        raise CeremonyFailed("unknown_credential")
    owner = session.get(Account, passkey.account_id)
    if owner is None:
        raise CeremonyFailed("unknown_credential")
    try:
        return _verify_assertion(
            session=session,
            clock=clock,
            rp=rp,
            challenge=challenge,
            parsed=parsed,
            passkey=passkey,
            owner=owner,
            account=account,
        )
    except CeremonyFailed as failed:
        failed.account = owner
        raise


def _verify_assertion(
    *,
    session: Session,
    clock: Clock,
    rp: RelyingParty,
    challenge: WebAuthnChallenge,
    parsed: AuthenticationCredential,
    passkey: Passkey,
    owner: Account,
    account: Account | None,
) -> Assertion:
    """The checks once the credential is known to be ``owner``'s (§7.2 steps 6 to 21)."""
    if account is not None and owner.id != account.id:
        raise CeremonyFailed("credential_of_another_account")
    if account is None and parsed.response.user_handle != user_handle(owner):
        # §7.2 step 6: the user handle names the account the credential was made for.
        raise CeremonyFailed("user_handle_mismatch")
    require_uv = challenge.user_verification == UserVerificationRequirement.REQUIRED.value
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=_challenge_bytes(challenge),
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            # The counter is compared below, after the signature: only a signed counter may
            # mark a credential as cloned.
            credential_current_sign_count=0,
            require_user_verification=require_uv,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise CeremonyFailed(f"assertion_refused: {error}"[:200]) from error
    new_count = verified.new_sign_count
    if (new_count > 0 or passkey.sign_count > 0) and new_count <= passkey.sign_count:
        passkey.clone_suspected_at = clock.now()
        audit.record(
            session,
            clock=clock,
            actor=f"user:{owner.username}",
            action="account.passkey_clone_suspected",
            target=f"account:{owner.username}",
            details={
                "passkey_id": passkey.id,
                "stored_count": passkey.sign_count,
                "presented_count": new_count,
            },
        )
        raise CeremonyFailed("sign_count_not_increasing")
    if not owner.is_active:
        raise CeremonyFailed("account_not_active")
    passkey.sign_count = new_count
    passkey.last_used_at = clock.now()
    return Assertion(account=owner, passkey=passkey, user_verified=verified.user_verified)
