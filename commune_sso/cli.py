"""The ``commune-sso`` command line (DESIGN: CLI contract). ``--json`` on every data command."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import core
import idp
from commune_sso import backup as backup_module
from commune_sso import bootstrap, database, listener, secrets_setup
from commune_sso import workers as workers_module
from commune_sso.app import audit_key_uri, check_audit_key, load_audit_key
from commune_sso.ca_cli import ca_app
from commune_sso.cli_output import (
    CLI_ACTOR,
    CommandLine,
    JsonOption,
    console,
    emit,
    err_console,
    fail,
)
from commune_sso.server_errors import database_cause
from commune_sso.startup_errors import STARTUP_FAILURE, settings_error_line, startup_errors
from core import audit, audit_checkpoints
from core.clock import SystemClock
from core.db import is_database_unavailable, make_engine, make_session_factory, transaction
from core.errors import ConfigurationError, DomainError
from core.settings import Settings
from idp import (
    accounts,
    admin_scope,
    authentication_levels,
    client_keys,
    clients,
    official_directory,
    passkeys,
    units,
)
from idp.cas import services as cas_services
from idp.federation import discovery as upstream_discovery
from idp.federation import providers as upstream_providers
from idp.federation.linking import LINK_CLAIMS
from idp.federation.upstream_logout import RETURN_PATH as UPSTREAM_LOGOUT_RETURN_PATH
from idp.labels import import_column
from idp.logout import backchannel, sign_out
from idp.models import Account
from idp.passwords import PasswordHasher
from idp.registry import SoftRemovedRegistry
from idp.released_attributes import RELEASABLE
from idp.saml import service_providers as saml_service_providers
from idp.saml import sp_metadata as saml_sp_metadata
from idp.saml.vocabulary import NAME_ID_FORMATS
from keys.errors import KeyRingError, SigningKeyError
from keys.keyring import KeyRing
from keys.signing_keys import load_signing_key

app = typer.Typer(
    cls=CommandLine,
    help="commune-sso: SSO and signing-certificate authority for commune officials.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="Officials' accounts.", no_args_is_help=True)
client_app = typer.Typer(help="Registered applications (OIDC clients).", no_args_is_help=True)
keys_app = typer.Typer(help="Token-signing keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
for name, group in [
    ("db", db_app),
    ("user", user_app),
    ("client", client_app),
    ("keys", keys_app),
    ("audit", audit_app),
]:
    app.add_typer(group, name=name)
unit_app = typer.Typer(
    help="Administrative units: provinces, communes, wards and special zones.",
    no_args_is_help=True,
)
app.add_typer(unit_app, name="unit")
app.add_typer(ca_app, name="ca")
cas_app = typer.Typer(
    help="Services that sign in through CAS 3.0 (/cas/login, /cas/serviceValidate).",
    no_args_is_help=True,
)
app.add_typer(cas_app, name="cas")
saml_app = typer.Typer(
    help="Service providers that sign in through SAML 2.0 (/saml/sso, /saml/metadata).",
    no_args_is_help=True,
)
app.add_typer(saml_app, name="saml")
upstream_app = typer.Typer(
    help="Upstream OpenID providers officials may sign in through (/login/upstream/<id>).",
    no_args_is_help=True,
)
app.add_typer(upstream_app, name="upstream")


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        fail(settings_error_line(error), STARTUP_FAILURE)
    except ValueError as error:  # a *_FILE secret that cannot be read (SettingsError)
        fail(f"invalid settings: {error}", STARTUP_FAILURE)


def session_factory(current: Settings) -> sessionmaker[Session]:
    factory = make_session_factory(make_engine(current.resolved_database_url))
    audit.install(factory)
    return factory


def keyring(current: Settings) -> KeyRing:
    try:
        return KeyRing.load_or_create(
            current.resolved_key_dir, secrets_setup.key_passphrase(current), now=SystemClock().now()
        )
    except (ConfigurationError, KeyRingError) as error:
        fail(str(error))
        raise


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
    upgrade: Annotated[bool, typer.Option(help="Upgrade the schema before starting.")] = True,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request, path without query string, in COMMUNE_SSO_LOG_FORMAT (off "
            "by default: the load balancer logs them, and per-request logging costs about a "
            "tenth of a token request's CPU)."
        ),
    ] = False,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="On the first start, register the demo client of examples/shared_app. "
            "Default: only for the embedded quick start (SQLite, development).",
            show_default=False,
        ),
    ] = None,
    admin_password_file: Annotated[
        Path | None,
        typer.Option(
            help="On the first start, the admin password is this file's first line. Without "
            "it the admin gets a one-time activation code (24 h) instead; no password is "
            "ever printed.",
        ),
    ] = None,
) -> None:
    """Upgrade the database, create first-start data if the database is empty, and serve.

    Without COMMUNE_SSO_ISSUER the issuer is this listener's URL (http://HOST:PORT).
    """
    current = settings()
    if not current.issuer_configured:
        issuer = listener.issuer_for_listener(host, port)
        if listener.is_wildcard(host):
            console.print(
                f"note: listening on all interfaces, issuer {issuer}; set COMMUNE_SSO_ISSUER "
                "to the public URL"
            )
        # The workers build Settings() from the environment (commune_sso.asgi), also when
        # spawned: the derived issuer must reach them the same way.
        os.environ["COMMUNE_SSO_ISSUER"] = issuer
        current = settings()
    # Before anything is written: a refused start leaves no trace.
    mismatch = listener.listener_mismatch(current, port=port)
    if mismatch is not None:
        fail(mismatch, code=STARTUP_FAILURE)
    admin_password = None
    if admin_password_file is not None:
        try:
            admin_password = admin_password_file.read_text(encoding="utf-8").removesuffix("\n")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            fail(
                f"--admin-password-file: cannot read {admin_password_file}: {reason}",
                code=STARTUP_FAILURE,
            )
    with startup_errors(current):
        # Both secrets are checked before the database is touched: the app factory in each
        # uvicorn worker needs them, and failing there would only show after start-up.
        secrets_setup.key_passphrase(current)
        secrets_setup.server_secret(current)
        current.var_dir.mkdir(parents=True, exist_ok=True)
        if upgrade:
            database.upgrade(current.resolved_database_url)
        KeyRing.load_or_create(
            current.resolved_key_dir,
            secrets_setup.key_passphrase(current),
            now=SystemClock().now(),
        )
        factory = session_factory(current)
        try:
            created = bootstrap.first_start(
                current,
                factory,
                clock=SystemClock(),
                demo=bootstrap.demo_by_default(current) if demo is None else demo,
                admin_password=admin_password,
            )
        except DomainError as error:
            # The password file's content broke the policy: name where it came from.
            if admin_password:
                fail(f"first administrator: {error.text()}", code=STARTUP_FAILURE)
            raise
        if current.audit_checkpoint_interval > 0:
            check_audit_key(current, factory)
    if created is not None:
        bootstrap.print_first_start(console, current, created)
    elif admin_password_file is not None:
        console.print("note: accounts exist already; --admin-password-file was not used")
    workers_module.serve(
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        graceful_shutdown=current.graceful_shutdown_seconds,
        log_format=current.log_format,
    )


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply Alembic migrations up to REVISION (default: head)."""
    current = settings()
    current.var_dir.mkdir(parents=True, exist_ok=True)
    database.upgrade(current.resolved_database_url, revision)
    console.print(f"database at revision {revision}")


@user_app.command("add")
def user_add(
    username: str,
    name: Annotated[str, typer.Option("--name", help="Full name (Vietnamese, with diacritics).")],
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    admin: Annotated[bool, typer.Option(help="Make a system administrator.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an account. Without --password-stdin the account has no password yet."""
    current = settings()
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        with transaction(session_factory(current)) as session:
            account = accounts.create(
                session=session,
                clock=SystemClock(),
                passwords=PasswordHasher(current),
                actor=CLI_ACTOR,
                username=username,
                full_name=name,
                email=email,
                password=password,
                is_system_admin=admin,
            )
            data = {"username": account.username, "subject": account.subject}
    except DomainError as error:
        fail(error.text())
    emit(data) if as_json else console.print(f"created {data['username']} (sub {data['subject']})")


@user_app.command("set-password")
def user_set_password(username: str) -> None:
    """Set a password, read from stdin (one line)."""
    current = settings()
    password = sys.stdin.readline().rstrip("\n")
    try:
        with transaction(session_factory(current)) as session:
            accounts.set_password(
                session=session,
                clock=SystemClock(),
                passwords=PasswordHasher(current),
                actor=CLI_ACTOR,
                account=accounts.get_by_username(session, username),
                password=password,
            )
    except DomainError as error:
        fail(error.text())
    console.print(f"password set for {username}")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable an account: ends its sessions and revokes its tokens at once."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            accounts.disable(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                account=accounts.get_by_username(session, username),
            )
    except DomainError as error:
        fail(error.text())
    console.print(f"disabled {username}")


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled account: the official can sign in again (sessions ended earlier stay
    ended)."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            account = accounts.get_by_username(session, username)
            status = official_directory.current_status(session, account)
            if status == "deleted":
                # Deleted by a directory (SCIM): it answers 404 there, so it stays off here too.
                fail(f"{account.username} is deleted; a deleted account cannot be enabled")
            accounts.enable(session=session, clock=SystemClock(), actor=CLI_ACTOR, account=account)
    except DomainError as error:
        fail(error.text())
    if status == "disabled":
        console.print(f"enabled {escape(account.username)}")
    else:
        console.print(f"{escape(account.username)} is not disabled ({status}); nothing changed")


class OfficialStatus(StrEnum):
    """``pending``: created (import, SCIM, ``user add``) but never given a password."""

    active = "active"
    disabled = "disabled"
    pending = "pending"
    deleted = "deleted"


@user_app.command("list")
def user_list(
    unit: Annotated[
        str | None, typer.Option("--unit", help="Only officials attached to this unit (code).")
    ] = None,
    status: Annotated[
        OfficialStatus | None,
        typer.Option(
            "--status",
            help="Only these: active, disabled, pending (never activated: no password yet) or "
            "deleted. Default: all but deleted.",
            show_default=False,
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            help="Name (case and diacritics ignored), username or citizen ID contains this.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List officials by username, with their unit and status."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            if unit is not None:
                units.get_by_code(session, unit)  # an unknown code is an error, not "none"
            statement = official_directory.officials_query(
                OPERATOR_SCOPE,
                text=search or "",
                unit_code=unit or "",
                status=status.value if status is not None else "",
            )
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = [
                official_directory.official_row(account, profile, placed)
                for account, profile, placed in session.execute(
                    statement.order_by(Account.username).limit(limit)
                )
            ]
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(rows)
        return
    table = Table("username", "name", "unit", "status")
    for row in rows:
        unit_text = f"{row['unit_code']} {row['unit_name']}" if row["unit_code"] else ""
        status_text = row["status"] + (" (system admin)" if row["system_admin"] else "")
        table.add_row(
            escape(row["username"]), escape(row["full_name"]), escape(unit_text), status_text
        )
    console.print(table)
    console.print(f"{len(rows)} of {total} official(s)")


def moment(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value is not None else "never"


@user_app.command("show")
def user_show(username: str, as_json: JsonOption = False) -> None:
    """One official: profile, unit, roles, status, two-step verification, last sign-in."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            data = official_directory.details_of(
                session, accounts.get_by_username(session, username)
            )
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(data)
        return
    roles = ", ".join(f"{each['role']} of {each['unit']}" for each in data["roles"])
    lines = [
        f"{data['username']}  {data['full_name']}",
        f"status: {data['status']}" + ("; system administrator" if data["system_admin"] else ""),
        f"unit: {data['unit_code']} {data['unit_name']}" if data["unit_code"] else "unit: none",
        f"agency: {data['agency'] or '-'}; position: {data['position'] or '-'}",
        f"e-mail: {data['email'] or '-'}; citizen ID: {data['citizen_id'] or '-'}",
        f"administrator roles: {roles or 'none'}",
        f"two-step verification: {'yes' if data['mfa_enrolled'] else 'no'}",
        f"last sign-in: {moment(data['last_sign_in'])}",
        f"created: {moment(data['created_at'])}; "
        f"password set: {moment(data['password_changed_at'])}",
        f"subject (sub): {data['subject']}",
    ]
    for line in lines:
        console.print(escape(line))


@user_app.command("sign-out-everywhere")
def user_sign_out_everywhere(username: str, as_json: JsonOption = False) -> None:
    """End every session of an account and revoke its tokens; shared apps get back-channel
    logout notices (sent by the server within seconds)."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            ended = sign_out.sign_out_everywhere(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                account=accounts.get_by_username(session, username),
            )
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit({"username": username, "sessions_ended": ended})
    else:
        console.print(f"signed out {username} everywhere: {ended} session(s) ended")


@user_app.command("passkeys")
def user_passkeys(username: str, as_json: JsonOption = False) -> None:
    """An official's passkeys: id, name, added, last used, synced or kept on one device."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            account = accounts.get_by_username(session, username)
            rows = [passkeys.summary(each) for each in passkeys.list_for(session, account)]
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(rows)
        return
    table = Table("id", "name", "added", "last used", "kind")
    for row in rows:
        kind = "synced" if row["synced"] else "device-bound"
        if row["clone_suspected"]:
            kind += " (may have been copied)"
        table.add_row(
            str(row["id"]),
            escape(row["name"]),
            moment(row["created_at"]),
            moment(row["last_used_at"]),
            kind,
        )
    console.print(table)
    console.print(f"{len(rows)} passkey(s) of {escape(account.username)}")


@user_app.command("remove-passkey")
def user_remove_passkey(username: str, passkey_id: int, as_json: JsonOption = False) -> None:
    """Remove one passkey of an official (the id from ``user passkeys``); audited."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            account = accounts.get_by_username(session, username)
            removed = passkeys.remove(
                session=session,
                clock=SystemClock(),
                account=account,
                passkey_id=passkey_id,
                actor=CLI_ACTOR,
            )
            if removed is None:
                fail(f"{account.username} has no passkey with id {passkey_id}")
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit({"username": account.username, "removed": passkey_id, "name": removed.name})
    else:
        console.print(
            f"removed passkey {passkey_id} ({escape(removed.name)}) of {escape(account.username)}"
        )


# The operator at the command line has the server's keys: full reach, like a system admin.
OPERATOR_SCOPE = admin_scope.AdminScope(
    system=True, province_codes=frozenset(), unit_ids=frozenset()
)
RoleOption = Annotated[
    str, typer.Option("--role", help="province_admin (on a province) or unit_admin (on a ward).")
]
UnitOption = Annotated[str, typer.Option("--unit", help="Unit code (2 or 5 digits).")]


def _role_change(username: str, role: str, unit_code: str, *, grant: bool) -> dict[str, Any]:
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            account = accounts.get_by_username(session, username)
            unit = units.get_by_code(session, unit_code)
            change = admin_scope.grant if grant else admin_scope.revoke
            change(
                session=session,
                clock=SystemClock(),
                actor_scope=OPERATOR_SCOPE,
                actor=CLI_ACTOR,
                account=account,
                role=role,
                unit=unit,
            )
    except DomainError as error:
        fail(error.text())
    return {"username": username.lower(), "role": role, "unit": unit_code, "granted": grant}


@user_app.command("grant-admin")
def user_grant_admin(
    username: str, role: RoleOption, unit: UnitOption, as_json: JsonOption = False
) -> None:
    """Make an official a province or unit administrator (delegated administration)."""
    data = _role_change(username, role, unit, grant=True)
    emit(data) if as_json else console.print(f"{username}: {role} of unit {unit}")


@user_app.command("revoke-admin")
def user_revoke_admin(
    username: str, role: RoleOption, unit: UnitOption, as_json: JsonOption = False
) -> None:
    """Take a province or unit administrator role away."""
    data = _role_change(username, role, unit, grant=False)
    emit(data) if as_json else console.print(f"{username}: no longer {role} of unit {unit}")


MinimumAcrOption = Annotated[
    str | None,
    typer.Option(
        help="Lowest sign-in level the app accepts: "
        + ", ".join(authentication_levels.LEVELS)
        + " (the last one: a passkey)."
    ),
]


def client_as_dict(client: clients.Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "scope": client.scope,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "access_token_signed_response_alg": client.access_token_signed_response_alg,
        "first_party": client.first_party,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "frontchannel_logout_uri": client.frontchannel_logout_uri,
        "frontchannel_logout_session_required": client.frontchannel_logout_session_required,
        "minimum_acr": client.minimum_acr,
        **{field: getattr(client, field) for field in clients.FAPI_FIELDS},
    }


def client_keys_settings(
    *,
    jwks_file: Path | None,
    jwks_uri: str | None,
    require_par: bool,
    require_signed_request_object: bool,
    dpop_bound_access_tokens: bool,
    fapi2: bool,
    certificate_bound_access_tokens: bool = False,
    certificate_names: clients.CertificateNames | None = None,
) -> clients.ClientSettings:
    """The FAPI 2.0 parts of a registration, from ``client add``'s options."""
    jwks = None
    if jwks_file is not None:
        try:
            text = jwks_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            fail(f"--jwks-file: {error}")
        jwks = client_keys.parse_jwks_text(text)
    return clients.ClientSettings(
        name="",
        jwks=jwks,
        jwks_uri=jwks_uri,
        require_pushed_authorization_requests=require_par,
        require_signed_request_object=require_signed_request_object,
        dpop_bound_access_tokens=dpop_bound_access_tokens,
        tls_client_certificate_bound_access_tokens=certificate_bound_access_tokens,
        fapi2_profile=fapi2,
        **(certificate_names or {}),
    )


@client_app.command("add")
def client_add(
    name: Annotated[str, typer.Option("--name", help="Name shown to officials.")],
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Exact redirect URI (repeat).")
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Exact post-logout redirect URI (repeat).")
    ] = None,
    grant_type: Annotated[
        list[str] | None,
        typer.Option(help="authorization_code, refresh_token, client_credentials (repeat)."),
    ] = None,
    scope: Annotated[
        str, typer.Option(help="Scopes the client may request.")
    ] = "openid profile email offline_access",
    public: Annotated[bool, typer.Option(help="Public client (PKCE, no secret).")] = False,
    auth_method: Annotated[
        str | None,
        typer.Option(
            help="client_secret_basic (default), client_secret_post, private_key_jwt "
            "(RFC 7523: give --jwks-file or --jwks-uri), tls_client_auth (RFC 8705 §2.1: a "
            "certificate of our CA, named by --tls-client-auth-subject-dn or one --tls-client-"
            "auth-san-*) or self_signed_tls_client_auth (§2.2: its key in --jwks-file/--jwks-uri)."
        ),
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="A JSON file holding the app's public JWK Set.")
    ] = None,
    jwks_uri: Annotated[
        str | None, typer.Option(help="The https URL where the app publishes its JWK Set.")
    ] = None,
    require_par: Annotated[
        bool, typer.Option(help="Authorization requests only through PAR (RFC 9126).")
    ] = False,
    require_signed_request_object: Annotated[
        bool,
        typer.Option(
            help="Authorization requests only as request objects signed with the app's key "
            "(JAR, RFC 9101: give --jwks-file or --jwks-uri)."
        ),
    ] = False,
    dpop_bound_access_tokens: Annotated[
        bool, typer.Option(help="Every access token bound to a DPoP key (RFC 9449).")
    ] = False,
    tls_client_auth_subject_dn: Annotated[
        str | None, typer.Option(help="tls_client_auth: the certificate's subject DN (RFC 4514).")
    ] = None,
    tls_client_auth_san_dns: Annotated[
        str | None, typer.Option(help="tls_client_auth: or a DNS name in the certificate.")
    ] = None,
    tls_client_auth_san_uri: Annotated[
        str | None, typer.Option(help="tls_client_auth: or a URI in the certificate.")
    ] = None,
    tls_client_auth_san_ip: Annotated[
        str | None, typer.Option(help="tls_client_auth: or an IP address in the certificate.")
    ] = None,
    tls_client_auth_san_email: Annotated[
        str | None, typer.Option(help="tls_client_auth: or an e-mail address in the certificate.")
    ] = None,
    tls_client_certificate_bound_access_tokens: Annotated[
        bool,
        typer.Option(
            help="Every access token bound to the app's TLS client certificate (RFC 8705 §3)."
        ),
    ] = False,
    fapi2: Annotated[
        bool,
        typer.Option(
            help="FAPI 2.0 Security Profile: PAR, PKCE S256, private_key_jwt or mTLS, DPoP- or "
            "certificate-bound tokens, no shared secret."
        ),
    ] = False,
    id_token_alg: Annotated[str, typer.Option(help="RS256, ES256 or EdDSA.")] = "RS256",
    access_token_alg: Annotated[str, typer.Option(help="RS256, ES256 or EdDSA.")] = "RS256",
    first_party: Annotated[bool, typer.Option(help="Skip the consent page.")] = False,
    client_id: Annotated[str | None, typer.Option(help="Choose the client_id.")] = None,
    unit: Annotated[
        list[str] | None,
        typer.Option(help="Unit code a provisioning (SCIM) client may manage (repeat)."),
    ] = None,
    backchannel_logout_uri: Annotated[
        str | None,
        typer.Option(help="OpenID Back-Channel Logout: where logout tokens are POSTed."),
    ] = None,
    backchannel_logout_session_required: Annotated[
        bool, typer.Option(help="Put the session id (sid) into logout tokens.")
    ] = True,
    frontchannel_logout_uri: Annotated[
        str | None,
        typer.Option(help="OpenID Front-Channel Logout: page loaded in an iframe at logout."),
    ] = None,
    frontchannel_logout_session_required: Annotated[
        bool, typer.Option(help="Add iss and sid to the front-channel logout URI.")
    ] = True,
    minimum_acr: MinimumAcrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a client. The secret is printed once and stored only as a digest."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            client, secret = clients.create(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                name=name,
                redirect_uris=redirect_uri or [],
                post_logout_redirect_uris=post_logout_redirect_uri or [],
                grant_types=grant_type or ["authorization_code", "refresh_token"],
                scope=scope,
                public=public,
                auth_method=auth_method,
                id_token_alg=id_token_alg,
                access_token_alg=access_token_alg,
                first_party=first_party,
                client_id=client_id,
                units=[units.get_by_code(session, code) for code in unit or []],
                backchannel_logout_uri=backchannel_logout_uri,
                backchannel_logout_session_required=backchannel_logout_session_required,
                frontchannel_logout_uri=frontchannel_logout_uri,
                frontchannel_logout_session_required=frontchannel_logout_session_required,
                minimum_acr=minimum_acr,
                keys=client_keys_settings(
                    jwks_file=jwks_file,
                    jwks_uri=jwks_uri,
                    require_par=require_par,
                    require_signed_request_object=require_signed_request_object,
                    dpop_bound_access_tokens=dpop_bound_access_tokens,
                    fapi2=fapi2,
                    certificate_bound_access_tokens=tls_client_certificate_bound_access_tokens,
                    certificate_names=clients.CertificateNames(
                        tls_client_auth_subject_dn=tls_client_auth_subject_dn,
                        tls_client_auth_san_dns=tls_client_auth_san_dns,
                        tls_client_auth_san_uri=tls_client_auth_san_uri,
                        tls_client_auth_san_ip=tls_client_auth_san_ip,
                        tls_client_auth_san_email=tls_client_auth_san_email,
                    ),
                ),
            )
            data = {**client_as_dict(client), "client_secret": secret}
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(data)
        return
    console.print(f"client_id:     {data['client_id']}")
    if secret:
        console.print(f"client_secret: {secret}   [yellow](shown once; store it now)[/yellow]")


@client_app.command("set-minimum-acr")
def client_set_minimum_acr(
    client_id: str,
    level: Annotated[
        str,
        typer.Argument(
            help="An ACR URI ("
            + ", ".join(authentication_levels.LEVELS)
            + "), or 'none' for any level."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Set the lowest sign-in level a client accepts (audited)."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            client = clients.get_active(session, client_id)
            chosen = dataclasses.replace(
                clients.ClientSettings.of(client),
                minimum_acr=None if level == "none" else level,
            )
            clients.update_settings(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                client=client,
                settings=chosen,
            )
            data = client_as_dict(client)
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(data)
        return
    console.print(f"{client_id}: minimum acr {data['minimum_acr'] or 'none'}")


@client_app.command("rotate-secret")
def client_rotate_secret(
    client_id: str,
    overlap: Annotated[
        str,
        typer.Option(
            help="How long the old secret keeps working: 0, or a number with m, h or d "
            "(minutes, hours, days), at most 30d; time to give the app's servers the new one."
        ),
    ] = clients.DEFAULT_SECRET_OVERLAP,
    as_json: JsonOption = False,
) -> None:
    """Give a confidential client a new secret (printed once, stored only as a digest)."""
    current = settings()
    clock = SystemClock()
    try:
        with transaction(session_factory(current)) as session:
            client = clients.get_active(session, client_id)
            secret = clients.rotate_secret(
                session=session,
                clock=clock,
                actor=CLI_ACTOR,
                client=client,
                overlap=clients.parse_overlap(overlap),
            )
            until = client.previous_secret_valid_until
    except DomainError as error:
        fail(error.text())
    data = {
        "client_id": client_id,
        "client_secret": secret,
        "old_secret_valid_until": until.isoformat() if until else None,
    }
    if as_json:
        emit(data)
        return
    console.print(f"client_secret: {secret}   [yellow](shown once; store it now)[/yellow]")
    console.print(f"old secret valid until: {data['old_secret_valid_until'] or 'no longer valid'}")


@client_app.command("list")
def client_list(as_json: JsonOption = False) -> None:
    """List registered clients."""
    current = settings()
    with transaction(session_factory(current)) as session:
        rows = [client_as_dict(c) for c in clients.list_active(session)]
    if as_json:
        emit(rows)
        return
    table = Table("client_id", "name", "auth", "grant types", "redirect URIs")
    for row in rows:
        table.add_row(
            row["client_id"],
            row["name"],
            row["token_endpoint_auth_method"],
            ", ".join(row["grant_types"]),
            "\n".join(row["redirect_uris"]),
        )
    console.print(table)


@client_app.command("logout-deliveries")
def client_logout_deliveries(
    client_id: Annotated[
        str | None, typer.Option("--client-id", help="Only this client's deliveries.")
    ] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The back-channel logout delivery log: each notice, its attempts and the next one."""
    if status is not None and status not in backchannel.STATUSES:
        fail(f"--status must be one of {', '.join(backchannel.STATUSES)}")
    current = settings()
    with transaction(session_factory(current)) as session:
        rows = [
            view.as_dict()
            for view in backchannel.list_deliveries(
                session, client_id=client_id, status=status, limit=limit
            )
        ]
    if as_json:
        emit(rows)
        return
    table = Table("id", "client_id", "reason", "status", "attempts", "last result", "next attempt")
    for row in rows:
        result = row["last_error"] or (
            str(row["last_status_code"]) if row["last_status_code"] else ""
        )
        table.add_row(
            str(row["id"]),
            row["client_id"],
            row["reason"],
            row["status"],
            str(row["attempts"]),
            escape(result),
            row["next_attempt_at"] or "",
        )
    console.print(table)


@client_app.command("remove")
def client_remove(client_id: str) -> None:
    """Remove a client and revoke every grant it holds (its history stays)."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            clients.remove(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                client=clients.get_active(session, client_id),
            )
    except DomainError as error:
        fail(error.text())
    console.print(f"removed {client_id}")


Result = TypeVar("Result")


def run_in_transaction(work: Callable[[Session], Result]) -> Result:
    """``work`` in one transaction on the configured database; a refusal becomes one line on
    stderr and exit code 1, and nothing is written."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            return work(session)
    except DomainError as error:
        fail(error.text())


def _list_registered(
    registry: SoftRemovedRegistry[Any],
    as_dict: Callable[[Any], dict[str, Any]],
    *,
    as_json: bool,
    columns: Sequence[str],
    cells: Callable[[dict[str, Any]], Sequence[str]],
) -> None:
    """A registry's active entries: as JSON (``as_dict``), or a table of ``columns``."""
    rows = run_in_transaction(
        lambda session: [as_dict(entry) for entry in registry.list_active(session)]
    )
    if as_json:
        emit(rows)
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*cells(row))
    console.print(table)


def _remove_registered(registry: SoftRemovedRegistry[Any], key: str) -> None:
    """Remove a registry's entry softly, audited as the CLI."""
    run_in_transaction(
        lambda session: registry.remove(
            session=session,
            clock=SystemClock(),
            actor=CLI_ACTOR,
            entry=registry.get_active(session, key),
        )
    )


@cas_app.command("add-service")
def cas_add_service(
    service_id: Annotated[
        str, typer.Argument(help="Short id: lower-case letters, digits, '.', '_', '-'.")
    ],
    name: Annotated[str, typer.Option("--name", help="Name shown to officials.")],
    url: Annotated[
        str | None, typer.Option(help="The exact service URL (compared after normalising).")
    ] = None,
    pattern: Annotated[
        str | None,
        typer.Option(
            help="Or an anchored regular expression for the normalised URL, e.g. "
            "'^https://app\\.example\\.vn/.*$' (must start with ^https:// and end with $)."
        ),
    ] = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(help=f"Attribute group released (repeat): {', '.join(RELEASABLE)}."),
    ] = None,
    single_logout: Annotated[
        bool, typer.Option(help="POST a logoutRequest to the service when the session ends.")
    ] = True,
    minimum_acr: MinimumAcrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a CAS service by its exact URL or an anchored pattern (audited)."""
    data = run_in_transaction(
        lambda session: cas_services.as_dict(
            cas_services.register(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                service_id=service_id,
                name=name,
                url=url,
                pattern=pattern,
                attributes=attribute or [],
                single_logout=single_logout,
                minimum_acr=minimum_acr,
            )
        )
    )
    if as_json:
        emit(data)
        return
    console.print(f"registered CAS service {service_id}: {escape(data['url_pattern'])}")


@cas_app.command("list-services")
def cas_list_services(as_json: JsonOption = False) -> None:
    """List the registered CAS services."""
    _list_registered(
        cas_services.REGISTRY,
        cas_services.as_dict,
        as_json=as_json,
        columns=("service_id", "name", "match", "URL or pattern", "attributes", "single logout"),
        cells=lambda row: (
            row["service_id"],
            row["name"],
            row["match"],
            escape(row["url_pattern"]),
            ", ".join(row["attributes"]),
            "yes" if row["single_logout"] else "no",
        ),
    )


@cas_app.command("remove-service")
def cas_remove_service(service_id: str) -> None:
    """Remove a CAS service: its tickets stop validating (its history stays)."""
    _remove_registered(cas_services.REGISTRY, service_id)
    console.print(f"removed CAS service {service_id}")


def _set_minimum_acr(registry: SoftRemovedRegistry[Any], key: str, level: str) -> dict[str, Any]:
    """Set a registry entry's lowest sign-in level ('none': any), audited as the CLI."""

    def change(session: Session) -> dict[str, Any]:
        entry = registry.get_active(session, key)
        registry.set_minimum_acr(
            session=session,
            clock=SystemClock(),
            actor=CLI_ACTOR,
            entry=entry,
            level=None if level == "none" else level,
        )
        return {registry.key: key, "minimum_acr": entry.minimum_acr}

    return run_in_transaction(change)


LevelArgument = Annotated[
    str,
    typer.Argument(
        help="An ACR URI (" + ", ".join(authentication_levels.LEVELS) + "), or 'none' for any."
    ),
]


@cas_app.command("set-minimum-acr")
def cas_set_minimum_acr(service_id: str, level: LevelArgument, as_json: JsonOption = False) -> None:
    """Set the lowest sign-in level a CAS service accepts, as for an OIDC client (audited)."""
    data = _set_minimum_acr(cas_services.REGISTRY, service_id, level)
    emit(data) if as_json else console.print(f"{service_id}: minimum acr {level}")


@upstream_app.command("add")
def upstream_add(
    issuer: Annotated[str, typer.Argument(help="The provider's issuer (https URL).")],
    client_id: Annotated[str, typer.Option("--client-id", help="Our client_id there.")],
    name: Annotated[str, typer.Option("--name", help="Name on the sign-in button (Vietnamese).")],
    link_claim: Annotated[
        str,
        typer.Option(
            "--link-claim",
            help=f"ID token claim that names the official: {', '.join(LINK_CLAIMS)} "
            "(never e-mail).",
        ),
    ],
    client_secret_stdin: Annotated[
        bool,
        typer.Option(
            "--client-secret-stdin", help="Read our client secret there from stdin (stored sealed)."
        ),
    ] = False,
    private_key_jwt: Annotated[
        bool,
        typer.Option(
            "--private-key-jwt",
            help="Authenticate with a JWT signed by our token-signing keys (our jwks_uri) "
            "instead of a secret.",
        ),
    ] = False,
    name_en: Annotated[
        str | None, typer.Option("--name-en", help="Name on the English sign-in page.")
    ] = None,
    scope: Annotated[
        str, typer.Option(help="Scopes asked for (openid is always added).")
    ] = upstream_providers.DEFAULT_SCOPE,
    upstream_id: Annotated[
        str | None,
        typer.Option("--id", help="Short id in our URLs (default: from the issuer's host)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an upstream provider: its discovery document is fetched and checked now (audited).

    Register at the provider, for our client, the redirect URI
    <issuer>/login/upstream/<id>/callback and the post-logout redirect URI
    <issuer>/login/upstream/logged-out (both printed)."""
    if client_secret_stdin == private_key_jwt:
        fail("give exactly one of --client-secret-stdin and --private-key-jwt")
    secret = sys.stdin.readline().rstrip("\r\n") if client_secret_stdin else None
    if client_secret_stdin and not secret:
        fail("no client secret on stdin")
    chosen_id = upstream_id or upstream_providers.default_upstream_id(issuer)
    current = settings()
    try:
        metadata = upstream_discovery.discover(issuer)
    except DomainError as error:
        fail(error.text())
    server_secret = secrets_setup.server_secret(current)
    data = run_in_transaction(
        lambda session: upstream_providers.as_dict(
            upstream_providers.register(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                upstream_id=chosen_id,
                metadata=metadata,
                client_id=client_id,
                client_secret=secret,
                server_secret=server_secret,
                link_claim=link_claim,
                name_vi=name,
                name_en=name_en,
                scope=scope,
            )
        )
    )
    data["redirect_uri"] = f"{current.issuer}/login/upstream/{chosen_id}/callback"
    data["post_logout_redirect_uri"] = f"{current.issuer}{UPSTREAM_LOGOUT_RETURN_PATH}"
    if as_json:
        emit(data)
        return
    console.print(f"added upstream provider {chosen_id}: {escape(data['issuer'])}")
    console.print(f"redirect URI to register there: {escape(data['redirect_uri'])}")
    console.print(
        f"post-logout redirect URI to register there: {escape(data['post_logout_redirect_uri'])}"
    )


@upstream_app.command("list")
def upstream_list(as_json: JsonOption = False) -> None:
    """List the upstream providers offered on the sign-in page."""
    _list_registered(
        upstream_providers.REGISTRY,
        upstream_providers.as_dict,
        as_json=as_json,
        columns=("id", "name", "issuer", "client_id", "auth", "link claim", "logout"),
        cells=lambda row: (
            row["upstream_id"],
            row["name"],
            escape(row["issuer"]),
            escape(row["client_id"]),
            row["token_endpoint_auth_method"],
            row["link_claim"],
            "yes" if row["end_session_endpoint"] else "no",
        ),
    )


@upstream_app.command("remove")
def upstream_remove(upstream_id: str) -> None:
    """Stop offering an upstream provider; sign-ins under way through it are refused."""
    _remove_registered(upstream_providers.REGISTRY, upstream_id)
    console.print(f"removed upstream provider {upstream_id}")


@saml_app.command("add-sp")
def saml_add_sp(
    metadata: Annotated[
        str,
        typer.Option(
            "--metadata",
            help="The SP's metadata: a file, or an https URL to fetch it from (once).",
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Name shown to officials (default: from the metadata)."),
    ] = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(help=f"Attribute group released (repeat): {', '.join(RELEASABLE)}."),
    ] = None,
    name_id_format: Annotated[
        str | None,
        typer.Option(
            help="NameID format when the request names none (default: the metadata's first "
            f"supported one, else persistent): {', '.join(NAME_ID_FORMATS)}."
        ),
    ] = None,
    encrypt_assertions: Annotated[
        bool, typer.Option(help="Encrypt assertions to the SP's encryption certificate.")
    ] = False,
    minimum_acr: MinimumAcrOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a SAML service provider from its metadata (audited)."""
    if metadata.startswith(("https://", "http://")):
        try:
            document = saml_sp_metadata.fetch(metadata)
        except DomainError as error:
            fail(error.text())
    else:
        try:
            document = Path(metadata).read_bytes()
        except OSError as error:
            fail(f"cannot read {metadata}: {error.strerror}")
    data = run_in_transaction(
        lambda session: saml_service_providers.as_dict(
            saml_service_providers.register(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                metadata_xml=document,
                name=name,
                attributes=attribute or [],
                name_id_format=name_id_format,
                encrypt_assertions=encrypt_assertions,
                minimum_acr=minimum_acr,
            )
        )
    )
    if as_json:
        emit(data)
        return
    console.print(f"registered SAML service provider {escape(data['entity_id'])}")


@saml_app.command("list-sps")
def saml_list_sps(as_json: JsonOption = False) -> None:
    """List the registered SAML service providers."""
    _list_registered(
        saml_service_providers.REGISTRY,
        saml_service_providers.as_dict,
        as_json=as_json,
        columns=("entity ID", "name", "ACS URLs", "signed requests", "NameID", "attributes"),
        cells=lambda row: (
            escape(row["entity_id"]),
            row["name"],
            escape(" ".join(acs["url"] for acs in row["assertion_consumer_services"])),
            "yes" if row["authn_requests_signed"] else "no",
            row["name_id_format"].rsplit(":", 1)[-1],
            ", ".join(row["attributes"]),
        ),
    )


@saml_app.command("remove-sp")
def saml_remove_sp(entity_id: str) -> None:
    """Remove a SAML service provider: it gets no more assertions (its history stays)."""
    _remove_registered(saml_service_providers.REGISTRY, entity_id)
    console.print(f"removed SAML service provider {escape(entity_id)}")


@saml_app.command("set-minimum-acr")
def saml_set_minimum_acr(entity_id: str, level: LevelArgument, as_json: JsonOption = False) -> None:
    """Set the lowest sign-in level a SAML service provider accepts, as for an OIDC client
    (audited)."""
    data = _set_minimum_acr(saml_service_providers.REGISTRY, entity_id, level)
    emit(data) if as_json else console.print(f"{escape(entity_id)}: minimum acr {level}")


def key_as_dict(info: Any, now: Any) -> dict[str, Any]:
    return {
        "kid": info.kid,
        "alg": info.alg,
        "state": info.state(now),
        "created_at": info.created_at,
        "active_from": info.active_from,
        "retire_at": info.retire_at,
        "unpublish_at": info.unpublish_at,
    }


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """List signing keys and their state (pending, active, retired)."""
    current = settings()
    ring = keyring(current)
    # After loading: keys created by this very call must not look pending.
    now = SystemClock().now()
    rows = [key_as_dict(k, now) for k in ring.keys()]  # noqa: SIM118 - KeyRing, not a dict
    if as_json:
        emit(rows)
        return
    table = Table("kid", "alg", "state", "active from", "retire at", "unpublish at")
    for row in rows:
        table.add_row(
            row["kid"],
            row["alg"],
            row["state"],
            str(row["active_from"]),
            str(row["retire_at"] or "-"),
            str(row["unpublish_at"] or "-"),
        )
    console.print(table)


@keys_app.command("rotate")
def keys_rotate(
    alg: Annotated[list[str] | None, typer.Option(help="Only these algorithms (repeat).")] = None,
    as_json: JsonOption = False,
) -> None:
    """New keys, published in JWKS now, signing after the JWKS cache time; old keys stay
    published until every token they signed has expired."""
    current = settings()
    clock = SystemClock()
    ring = keyring(current)
    longest_token = max(current.access_token_ttl, current.id_token_ttl)
    new_keys = ring.rotate(
        now=clock.now(),
        publish_ahead=timedelta(seconds=current.jwks_max_age),
        keep_published=timedelta(seconds=longest_token + current.jwks_max_age),
        algorithms=alg,
    )
    with transaction(session_factory(current)) as session:
        audit.record(
            session,
            clock=clock,
            actor=CLI_ACTOR,
            action="key.rotate",
            details={"new": [{"kid": k.kid, "alg": k.alg} for k in new_keys]},
        )
    rows = [key_as_dict(k, clock.now()) for k in new_keys]
    if as_json:
        emit(rows)
        return
    for row in rows:
        console.print(f"{row['alg']}: new key {row['kid']} signs from {row['active_from']}")


@audit_app.command("verify")
def audit_verify(
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-key",
            help="PEM public key (or certificate) of an audit key to trust (repeat). Given: "
            "only these are trusted. Default: the configured audit key and "
            "COMMUNE_SSO_AUDIT_TRUSTED_PUBLIC_KEYS.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check the hash chain and the signed checkpoints; names every edited, deleted, inserted
    or reordered entry, every bad or untrusted checkpoint and every cut or rebuilt log."""
    current = settings()
    trusted = _trusted_audit_keys(current, trusted_key)
    clock = SystemClock()
    with transaction(session_factory(current)) as session:
        result = audit.verify(session)
        checkpoints = audit_checkpoints.verify_checkpoints(
            session=session, trusted_public_keys=trusted, clock=clock
        )
    ok = result.ok and checkpoints.ok
    data = {
        "ok": ok,
        "checked": result.checked,
        "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in result.problems],
        "checkpoints": checkpoints.as_dict(),
    }
    if as_json:
        emit(data)
    else:
        if result.ok:
            console.print(f"[green]audit chain intact[/green]: {result.checked} entries")
        else:
            for problem in result.problems:
                console.print(f"[red]entry {problem.seq}: {problem.kind}[/red] {problem.message}")
        _print_checkpoint_section(checkpoints)
    if not ok:
        raise typer.Exit(2)


def _trusted_audit_keys(
    current: Settings, given: list[Path] | None
) -> list[audit_checkpoints.PublicKey]:
    """The audit public keys this verification trusts: never one read from the database."""
    files = list(given or current.audit_trusted_public_keys)
    keys: list[audit_checkpoints.PublicKey] = []
    for path in files:
        try:
            keys.append(audit_checkpoints.load_public_key_pem(path.read_bytes()))
        except (OSError, ValueError) as error:
            fail(f"cannot use trusted key {path}: {error}")
    if not given:
        try:
            # Loaded, never generated: verifying must not create the key it then trusts.
            key = load_signing_key(
                audit_key_uri(current),
                passphrase=secrets_setup.key_passphrase(current).decode("utf-8"),
            )
            keys.append(key.public_key())
        except (ConfigurationError, SigningKeyError) as error:
            warning = f"audit key not loaded: {error}"
            err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    return keys


def _print_checkpoint_section(result: audit_checkpoints.CheckpointVerification) -> None:
    last = result.last
    if last is None:
        console.print("checkpoints: none yet")
    else:
        status = "[green]verified[/green]" if result.ok else "[red]checked[/red]"
        age = f"{int(result.last_age_seconds or 0)} s ago"
        console.print(
            f"checkpoints: {result.checked} {status}; the last, #{last.number}, covers entry "
            f"{last.seq} (taken {last.at.isoformat(timespec='seconds')}, {age})"
        )
    if result.unprotected_entries:
        oldest = result.oldest_unprotected_at
        since = f", the oldest from {oldest.isoformat(timespec='seconds')}" if oldest else ""
        console.print(f"not yet checkpointed: {result.unprotected_entries} entries{since}")
    for problem in result.problems:
        console.print(f"[red]checkpoint {problem.number}: {problem.kind}[/red] {problem.message}")


@audit_app.command("tail")
def audit_tail(
    limit: Annotated[int, typer.Option("-n", help="How many entries.")] = 20,
    action: Annotated[str | None, typer.Option(help="Only actions starting with this.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The newest audit entries."""
    current = settings()
    with transaction(session_factory(current)) as session:
        rows = [
            audit.entry_as_dict(e) for e in audit.tail(session, limit=limit, action_prefix=action)
        ]
    if as_json:
        emit(rows)
        return
    table = Table("seq", "at", "actor", "action", "target")
    for row in rows:
        table.add_row(
            str(row["seq"]),
            str(row["at"]),
            row["actor"],
            row["action"],
            str(row.get("target") or ""),
        )
    console.print(table)


@audit_app.command("checkpoint")
def audit_checkpoint(as_json: JsonOption = False) -> None:
    """Sign a checkpoint of the audit log now (the server also takes them periodically).

    Prints it with the audit public key, which an auditor keeps to pass to
    `audit verify --trusted-key`."""
    current = settings()
    try:
        key = load_audit_key(current)
    except (ConfigurationError, SigningKeyError) as error:
        fail(f"audit key: {error}")
        raise
    clock = SystemClock()
    try:
        with transaction(session_factory(current)) as session:
            taken = audit_checkpoints.take_checkpoint(session=session, clock=clock, key=key)
            latest = taken or audit_checkpoints.latest_checkpoint(session)
    except audit_checkpoints.CheckpointRefused as error:
        fail(f"checkpoint refused: {error}", code=2)
        raise
    public_pem = audit_checkpoints.public_key_pem(key.public_key())
    if as_json:
        emit(
            {
                "taken": taken is not None,
                "checkpoint": None if latest is None else latest.as_dict(),
                "public_key_pem": public_pem,
                "public_key_fingerprint": audit_checkpoints.key_fingerprint(key.public_key()),
            }
        )
        return
    if latest is None:
        console.print("nothing to checkpoint: the audit log is empty")
    elif taken is None:
        console.print(f"nothing new since checkpoint #{latest.number} (entry {latest.seq})")
    else:
        console.print(
            f"checkpoint #{taken.number} covers entry {taken.seq} ({taken.entry_hash}), "
            f"signed {taken.algorithm} by key {taken.key_fingerprint}"
        )


# --------------------------------------------------------------------------------------------
# backup and restore


@app.command("backup")
def backup(
    directory: Annotated[Path, typer.Argument(help="New or empty directory to write into.")],
    as_json: JsonOption = False,
) -> None:
    """Back up the database (pg_dump custom format, or SQLite's online backup), the encrypted
    key ring, the CA keys and the audit key, with a manifest of SHA-256 digests.

    Safe while the server runs. The key passphrase, the server secret and the database
    password are NOT in the backup: keep the passphrase apart, the keys are encrypted with it."""
    current = settings()
    try:
        done = backup_module.create_backup(
            settings=current, directory=directory, clock=SystemClock()
        )
    except backup_module.BackupRefused as error:
        fail(str(error), code=2)
        raise
    manifest = done.manifest
    if as_json:
        emit(done.as_dict())
        return
    console.print(f"backup written to {escape(str(directory))}")
    console.print(
        f"database: {manifest['backend']}, revision {manifest['alembic_revision']}; "
        f"{len(manifest['files'])} file(s) with SHA-256 digests in manifest.json"
    )
    head = manifest["audit_head"]
    if head is not None:
        console.print(f"audit log head: entry {head['seq']} ({head['hash']})")
    for line in manifest["not_included"]:
        console.print(f"[yellow]not included:[/yellow] {escape(line)}")
    for warning in manifest["warnings"]:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")


@app.command("restore")
def restore(
    directory: Annotated[Path, typer.Argument(help="A directory written by `backup`.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace a database that holds data and existing key directories (the old "
            "key directories are kept beside them, renamed *.before-restore-<time>).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup into the database and key directories the current settings name.

    Checks the digests, that COMMUNE_SSO_KEY_PASSPHRASE opens every backed-up key and that
    the targets are empty before changing anything; then upgrades the schema if the backup is
    older and runs `audit verify`. Stop the servers first. Exit code 2: refused, or the
    restored audit log does not verify."""
    current = settings()
    try:
        done = backup_module.restore_backup(
            settings=current, directory=directory, clock=SystemClock(), force=force, actor=CLI_ACTOR
        )
    except backup_module.BackupRefused as error:
        fail(str(error), code=2)
        raise
    data = done.as_dict()
    if as_json:
        emit(data)
    else:
        for line in done.restored:
            console.print(f"restored {escape(line)}")
        for path in done.moved_aside:
            console.print(f"kept the replaced files at {escape(path)}")
        if done.ca_key_uris_rewritten:
            console.print(f"CA key paths moved to this host's: {done.ca_key_uris_rewritten}")
        console.print(f"schema at revision {done.revision}")
        head = done.audit_head
        if head is not None:
            console.print(f"audit log head in the backup: entry {head['seq']} ({head['hash']})")
        if done.audit_ok:
            console.print(
                f"[green]audit verify passed[/green]: {done.audit_checked} entries, "
                f"{done.audit_checkpoints} checkpoint(s)"
            )
    for warning in done.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    if not done.audit_ok:
        raise typer.Exit(2)


# --------------------------------------------------------------------------------------------
# unit


ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why (the reform decision); kept in the history.")
]


@unit_app.command("sync")
def unit_sync(as_json: JsonOption = False) -> None:
    """Load or refresh the 34 provinces and 3,321 wards from the vietnam-provinces package.

    Idempotent: creates missing units, restores changed names, reports the counts."""
    current = settings()
    with transaction(session_factory(current)) as session:
        result = units.sync_from_package(session=session, clock=SystemClock(), actor=CLI_ACTOR)
    data = result.as_dict()
    if as_json:
        emit(data)
        return
    console.print(
        f"units: {data['created']} created, {data['renamed']} renamed, "
        f"{data['unchanged']} unchanged"
    )


@unit_app.command("list")
def unit_list(
    province: Annotated[
        str | None, typer.Option("--province", help="Only units of this province (code).")
    ] = None,
    level: Annotated[str | None, typer.Option("--level", help="province or ward.")] = None,
    search: Annotated[
        str | None,
        typer.Option("--search", help="Name contains this (case and diacritics ignored)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many units.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List units by code."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            rows = [
                units.unit_as_dict(session, unit)
                for unit in units.list_units(
                    session, province_code=province, level=level, query=search, limit=limit
                )
            ]
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(rows)
        return
    table = Table("code", "level", "name", "province", "status")
    for row in rows:
        table.add_row(row["code"], row["level"], row["name"], row["province_code"], row["status"])
    console.print(table)


@unit_app.command("show")
def unit_show(code: str, as_json: JsonOption = False) -> None:
    """One unit with its history and the number of officials attached."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            unit = units.get_by_code(session, code)
            data = {
                **units.unit_as_dict(session, unit),
                "accounts": units.attached_account_count(session, unit),
                "events": [
                    {"kind": e.kind, "at": e.at, "actor": e.actor, "details": e.details}
                    for e in units.events_of(session, unit)
                ],
            }
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(data)
        return
    console.print(f"{escape(data['code'])}  {escape(data['name'])}")
    console.print(
        f"level {data['level']}, {escape(data['division_type'])}, status {data['status']}"
    )
    console.print(f"province {data['province_code']}, {data['accounts']} account(s)")
    if data["merged_into"]:
        console.print(f"merged into {data['merged_into']}")
    for event in data["events"]:
        details = json.dumps(event["details"], ensure_ascii=False)
        console.print(f"  {event['at']}  {event['kind']}  {escape(details)}")


@unit_app.command("require-passkeys")
def unit_require_passkeys(
    code: str,
    off: Annotated[bool, typer.Option("--off", help="Stop requiring passkeys.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Require every official of a unit (of all its wards, for a province) to sign in to the
    shared apps with a passkey (phishing-resistant); --off lifts it. Audited."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            unit = units.get_by_code(session, code)
            authentication_levels.set_unit_requirement(
                session=session, clock=SystemClock(), actor=CLI_ACTOR, unit=unit, required=not off
            )
            data = {"code": unit.code, "requires_passkeys": unit.requires_phishing_resistant}
    except DomainError as error:
        fail(error.text())
    if as_json:
        emit(data)
        return
    state = "required" if data["requires_passkeys"] else "not required"
    console.print(f"{data['code']}: passkeys {state}")


@unit_app.command("rename")
def unit_rename(
    code: str, new_name: str, reason: ReasonOption, as_json: JsonOption = False
) -> None:
    """Give a unit a new official name; the old one stays in its history."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            unit = units.get_by_code(session, code)
            units.rename(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                unit=unit,
                new_name=new_name,
                reason=reason,
            )
            data = units.unit_as_dict(session, unit)
    except DomainError as error:
        fail(error.text())
    emit(data) if as_json else console.print(f"renamed {data['code']} to {escape(data['name'])}")


@unit_app.command("merge")
def unit_merge(source: str, target: str, reason: ReasonOption, as_json: JsonOption = False) -> None:
    """Merge unit SOURCE into unit TARGET; SOURCE's officials move to TARGET with REASON."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            moved = units.merge(
                session=session,
                clock=SystemClock(),
                actor=CLI_ACTOR,
                source=units.get_by_code(session, source),
                target=units.get_by_code(session, target),
                reason=reason,
            )
    except DomainError as error:
        fail(error.text())
    data = {"source": source, "target": target, "accounts_moved": moved}
    if as_json:
        emit(data)
        return
    console.print(f"merged {source} into {target}: {moved} account(s) moved")


@unit_app.command("dissolve")
def unit_dissolve(code: str, reason: ReasonOption, as_json: JsonOption = False) -> None:
    """Mark a unit dissolved; refused while officials are attached to it."""
    current = settings()
    try:
        with transaction(session_factory(current)) as session:
            unit = units.get_by_code(session, code)
            units.dissolve(
                session=session, clock=SystemClock(), actor=CLI_ACTOR, unit=unit, reason=reason
            )
            data = units.unit_as_dict(session, unit)
    except DomainError as error:
        fail(error.text())
    emit(data) if as_json else console.print(f"dissolved {data['code']}")


# import-users


class MessageLanguage(StrEnum):
    vi = "vi"
    en = "en"


def import_messages(lang: str) -> Callable[[str], str]:
    """Translate the import's messages (English msgids) into ``lang`` with the catalogues the
    pages and the admin API use."""
    from core.web.i18n import load_translations

    if lang == "en":
        return str
    catalogue = load_translations(
        [Path(core.__file__).parent / "web" / "locale", Path(idp.__file__).parent / "locale"]
    ).get(lang)
    return catalogue.gettext if catalogue is not None else str


@app.command("import-users")
def import_users(
    file: Annotated[str, typer.Argument(help="CSV (UTF-8) or XLSX file, one official per line.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    output_dir: Annotated[
        str,
        typer.Option(
            "--output-dir", help="Where the activation codes go: one <unit_code>.csv per unit."
        ),
    ] = "activation-codes",
    show: Annotated[
        int, typer.Option("--show", help="How many refused rows (and changes) to list.")
    ] = 20,
    as_admin: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Import on behalf of this administrator: rows for units outside their "
            "province or unit are refused. Default: the operator, with full reach.",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=10_000,
            help="Rows written per transaction (a crash or kill leaves whole batches only).",
        ),
    ] = 1000,
    lang: Annotated[
        MessageLanguage,
        typer.Option(
            "--lang",
            help="Language of the messages and of the column titles of the activation-code "
            "files (vi: Vietnamese, en: English).",
        ),
    ] = MessageLanguage.vi,
    as_json: JsonOption = False,
) -> None:
    """Create and update officials from a file (keyed on citizen ID); see docs/import-template.csv.

    Exit code 0: every row accepted; 1: some rows refused (the others applied); 2: the file
    was refused and nothing was changed."""
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from core.web.i18n import N_
    from idp.bulk_import import activation
    from idp.bulk_import import apply as bulk_apply
    from idp.bulk_import import plan as bulk_plan
    from idp.bulk_import.reading import FileRefused, read_file

    current = settings()
    factory = session_factory(current)
    clock = SystemClock()
    translate = import_messages(lang.value)

    def say(message: str, **params: object) -> str:
        return translate(message) % params if params else translate(message)

    actor, reach = CLI_ACTOR, None
    if as_admin is not None:
        with transaction(factory) as session:
            admin = accounts.find_by_username(session, as_admin)
            reach = admin_scope.scope_of(session, admin) if admin else None
        if reach is None or not reach.is_admin:
            fail(say(N_("%(username)s is not an active administrator."), username=as_admin), 2)
        actor = f"user:{as_admin.lower()}"
    path = Path(file)
    if not path.is_file():
        fail(say(N_("No such file: %(file)s"), file=file), 2)
    try:
        imported = read_file(path)
    except FileRefused as error:
        fail(error.text(translate), 2)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    )
    with progress:
        task = progress.add_task(
            say(N_("dry run")) if dry_run else say(N_("import")), total=len(imported.rows)
        )

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        job_id: str | None = None
        code_files: list[Path] = []
        if dry_run:
            with transaction(factory) as session:
                planned = bulk_plan.build_plan(
                    session, imported, today=clock.now().date(), reach=reach, on_progress=advance
                )
            rows, summary = planned.rows, planned.summary
        else:
            result = bulk_apply.apply_file(
                session_factory=factory,
                clock=clock,
                actor=actor,
                file=imported,
                output_dir=Path(output_dir),
                reach=reach,
                on_progress=advance,
                batch_size=batch_size,
                issuer=current.issuer,
                titles=activation.headers(translate),
            )
            rows, summary, job_id = result.rows, result.summary, result.job_id
            code_files = result.code_files
    errors = [refusal for row in rows for refusal in row.errors]
    exit_code = 1 if errors else 0
    if as_json:
        emit(
            {
                "file": imported.name,
                "format": imported.format,
                "dry_run": dry_run,
                "job_id": job_id,
                "summary": summary.as_dict(),
                "ignored_columns": imported.ignored_headers,
                "errors": [refusal.as_dict(translate) for refusal in errors],
                "rows": [row.as_dict() for row in rows if row.action != bulk_plan.UNCHANGED],
                "code_files": [str(p) for p in code_files],
            }
        )
        raise typer.Exit(exit_code)
    if imported.ignored_headers:
        console.print(
            escape(
                say(N_("Ignored columns: %(columns)s"), columns=", ".join(imported.ignored_headers))
            )
        )
    table = Table("", say(N_("rows")))
    labels = [("create", N_("to create") if dry_run else N_("created"))]
    labels.append(("update", N_("to update") if dry_run else N_("updated")))
    labels += [("unchanged", N_("unchanged")), ("error", N_("refused"))]
    counts = summary.as_dict()
    for key, label in labels:
        table.add_row(say(label), str(counts[key]))
    console.print(table)
    if dry_run:
        changed = [row for row in rows if row.action in (bulk_plan.CREATE, bulk_plan.UPDATE)]
        for row in changed[:show]:
            if row.action == bulk_plan.CREATE:
                line = say(
                    N_("line %(line)s: create %(username)s"), line=row.line, username=row.username
                )
            else:
                line = say(
                    N_("line %(line)s: update %(username)s: %(fields)s"),
                    line=row.line,
                    username=row.username,
                    fields=", ".join(import_column(name, translate) for name in row.changes),
                )
            console.print(escape(line))
    for refusal in errors[:show]:
        where = f" [{import_column(refusal.field, translate)}]" if refusal.field else ""
        line = say(N_("line %(line)s"), line=refusal.line)
        console.print(f"{escape(line + where)}: {escape(refusal.text(translate))}")
    if len(errors) > show:
        console.print(
            escape(say(N_("... and %(count)s more refused row error(s)"), count=len(errors) - show))
        )
    if code_files:
        console.print(
            escape(
                say(
                    N_("Activation codes: %(count)s file(s) in %(directory)s"),
                    count=len(code_files),
                    directory=output_dir,
                )
            )
        )
    raise typer.Exit(exit_code)


def main() -> None:
    try:
        app()
    except Exception as error:
        # A database that cannot be reached is the operator's to fix, not a bug: one line
        # naming the setting, exit code 2, for every command (serve maps it the same way).
        if not is_database_unavailable(error):
            raise
        err_console.print(
            "[red]error:[/red] cannot reach the database (COMMUNE_SSO_DATABASE_URL): "
            + escape(database_cause(error)),
            soft_wrap=True,
        )
        sys.exit(STARTUP_FAILURE)
