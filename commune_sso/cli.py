"""The ``commune-sso`` command line (DESIGN: CLI contract). ``--json`` on every data command."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from commune_sso import bootstrap, database, secrets_setup
from commune_sso import workers as workers_module
from core import audit
from core.clock import SystemClock
from core.db import make_engine, make_session_factory, transaction
from core.errors import ConfigurationError, DomainError
from core.settings import Settings
from idp import accounts, clients
from idp.passwords import PasswordHasher
from keys.errors import KeyRingError
from keys.keyring import KeyRing

app = typer.Typer(
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

console = Console()
err_console = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CLI_ACTOR = "cli"


def fail(message: str, code: int = 1) -> None:
    # Messages can quote settings values; "[...]" in them is text, not rich markup.
    err_console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def settings() -> Settings:
    try:
        return Settings()
    except ValueError as error:
        fail(f"invalid settings: {error}")
        raise


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
            help="Log every request (off by default: the load balancer logs them, "
            "and per-request logging costs about a tenth of a token request's CPU)."
        ),
    ] = False,
) -> None:
    """Upgrade the database, create first-start data if the database is empty, and serve."""
    current = settings()
    try:
        # Both secrets are checked before the database is touched: the app factory in each
        # uvicorn worker needs them, and failing there would only show after start-up.
        secrets_setup.key_passphrase(current)
        secrets_setup.server_secret(current)
    except ConfigurationError as error:
        fail(str(error))
    current.var_dir.mkdir(parents=True, exist_ok=True)
    if upgrade:
        database.upgrade(current.resolved_database_url)
    try:
        keyring(current)
        created = bootstrap.first_start(current, session_factory(current), clock=SystemClock())
    except (ConfigurationError, DomainError) as error:
        fail(str(error))
        return
    if created is not None:
        bootstrap.print_first_start(console, current, created)
    workers_module.serve(
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        proxy_headers=current.trust_forwarded_for,
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
        fail(error.message)
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
        fail(error.message)
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
        fail(error.message)
    console.print(f"disabled {username}")


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
    }


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
        str | None, typer.Option(help="client_secret_basic (default) or client_secret_post.")
    ] = None,
    id_token_alg: Annotated[str, typer.Option(help="RS256, ES256 or EdDSA.")] = "RS256",
    access_token_alg: Annotated[str, typer.Option(help="RS256, ES256 or EdDSA.")] = "RS256",
    first_party: Annotated[bool, typer.Option(help="Skip the consent page.")] = False,
    client_id: Annotated[str | None, typer.Option(help="Choose the client_id.")] = None,
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
            )
            data = {**client_as_dict(client), "client_secret": secret}
    except DomainError as error:
        fail(error.message)
    if as_json:
        emit(data)
        return
    console.print(f"client_id:     {data['client_id']}")
    if secret:
        console.print(f"client_secret: {secret}   [yellow](shown once; store it now)[/yellow]")


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
        fail(error.message)
    console.print(f"removed {client_id}")


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
def audit_verify(as_json: JsonOption = False) -> None:
    """Check the hash chain; names every edited, deleted, inserted or reordered entry."""
    current = settings()
    with transaction(session_factory(current)) as session:
        result = audit.verify(session)
    data = {
        "ok": result.ok,
        "checked": result.checked,
        "problems": [{"seq": p.seq, "kind": p.kind, "message": p.message} for p in result.problems],
    }
    if as_json:
        emit(data)
    elif result.ok:
        console.print(f"[green]audit chain intact[/green]: {result.checked} entries")
    else:
        for problem in result.problems:
            console.print(f"[red]entry {problem.seq}: {problem.kind}[/red] {problem.message}")
    if not result.ok:
        raise typer.Exit(2)


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


def main() -> None:
    app()
