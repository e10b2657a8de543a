"""First start on an empty database: a first system admin, the CA pages' client and, for the
local quick start only, a demo client. Every start of the app (:func:`prepare_at_start`, run by
its lifespan) also loads the units when they are missing or the packaged list changed, and, for
the quick start only, creates the certificate authority.

No password ever reaches the log (``docker logs``, journald keep it): the first admin gets the
password from a file the operator wrote (``serve --admin-password-file``), or no password and a
one-time activation code that expires, exchanged on the activation page like an imported
official's. Everything is stored only hashed; a second start finds the accounts and creates
nothing.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from ca_admin import hierarchy, tsa_certificate
from ca_admin.runtime import CaRuntime
from commune_sso import secrets_setup
from commune_sso.ca_bridge import CA_PAGES_CLIENT_ID, ensure_ca_pages_client
from core.clock import Clock
from core.db import transaction
from core.settings import Settings
from idp import accounts, clients, units
from idp.passwords import PasswordHasher
from idp.setup_checklist import OutsideState

log = logging.getLogger("commune_sso.bootstrap")

FIRST_ADMIN = "admin"
DEMO_CLIENT_ID = "demo-shared-app"
DEMO_REDIRECT_URI = "http://127.0.0.1:8001/auth/callback"
DEMO_POST_LOGOUT_URI = "http://127.0.0.1:8001/"
# examples/shared_app run on port 8001 (its README): its post-logout page and logout receiver.
DEMO_LOGGED_OUT_URI = "http://127.0.0.1:8001/logged-out"
DEMO_BACKCHANNEL_LOGOUT_URI = "http://127.0.0.1:8001/backchannel-logout"
# Long enough to finish an installation the next morning, short enough that a forgotten log
# line is soon worthless.
ADMIN_SETUP_LIFETIME = timedelta(hours=24)
ACTIVATION_PATH = "/activate"
# The CA's organisation when no name is configured: the department that runs the service.
DEFAULT_ORGANISATION = "Sở Khoa học và Công nghệ"


@dataclass(frozen=True)
class AdminSetup:
    """The one-time code that sets the first admin's password, and until when it works."""

    code: str
    expires_at: datetime


@dataclass(frozen=True)
class DemoClient:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class FirstStartData:
    admin_username: str
    # None when the password came from --admin-password-file.
    admin_setup: AdminSetup | None
    demo: DemoClient | None


def is_quick_start(settings: Settings) -> bool:
    """The embedded quick start: SQLite under ./var/ and development settings."""
    return settings.database_url is None and settings.environment == "development"


def demo_by_default(settings: Settings) -> bool:
    """The demo client belongs to the embedded quick start only (SQLite, development): on
    PostgreSQL or in production a client nobody registered is an open door."""
    return is_quick_start(settings)


def organisation(settings: Settings) -> str:
    """The organisation named in the CA's certificates: the configured name of the province's
    department (COMMUNE_SSO_ORGANISATION_NAME), else the generic one."""
    configured = getattr(settings, "organisation_name", None)
    return (
        configured.strip()
        if isinstance(configured, str) and configured.strip()
        else (DEFAULT_ORGANISATION)
    )


def setup_state(settings: Settings) -> OutsideState:
    """What the admin dashboard's checklist needs to know beyond the IdP's own tables."""
    return OutsideState(
        ca_initialised=hierarchy.is_initialised,
        ca_init_command=f"commune-sso ca init --organisation {shlex.quote(organisation(settings))}",
        built_in_client_ids=frozenset({CA_PAGES_CLIENT_ID, DEMO_CLIENT_ID}),
    )


def prepare_at_start(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    clock: Clock,
    ca_runtime: CaRuntime | None,
) -> None:
    """What every start checks before serving (the app's lifespan runs it in each worker):

    - units: loaded when the table is empty or the vietnam-provinces package changed since
      the last load (one query otherwise; :func:`idp.units.load_package_if_changed`);
    - the CA, for the embedded quick start only: created with defaults if missing, so that
      certificates work without a `ca init`. Production keeps the explicit `ca init` (its root
      key belongs offline or in an HSM, a choice the operator makes); /readyz names it while
      it is missing.
    """
    if settings.units_load_on_start:
        loaded = units.load_package_if_changed(session_factory=factory, clock=clock, actor="system")
        if loaded is not None:
            log.info(
                "units loaded from %s %s: %d created, %d renamed, %d unchanged",
                units.PACKAGE,
                units.package_version(),
                loaded.created,
                loaded.renamed,
                loaded.unchanged,
            )
    if (
        ca_runtime is not None
        and is_quick_start(settings)
        and init_quick_start_ca(settings, ca_runtime)
    ):
        log.info("certificate authority created for the quick start (%s)", organisation(settings))


def init_quick_start_ca(settings: Settings, ca_runtime: CaRuntime) -> bool:
    """``ca init`` with its defaults, named after the organisation, and ``ca tsa init`` (a
    quick start made before the TSA existed gets its TSA unit at its next start); False if a
    CA existed."""
    with transaction(ca_runtime.session_factory) as session:
        # FOR UPDATE: on SQLite the write lock is taken before the check (core.db), so workers
        # of one quick start starting together make one hierarchy, not one each.
        created = not hierarchy.is_initialised(session, for_update=True)
        if created:
            hierarchy.init_hierarchy(
                session=session,
                runtime=ca_runtime,
                actor="system",
                setup=hierarchy.CaSetup(organisation=organisation(settings)),
            )
        if not tsa_certificate.has_tsa_unit(session):
            tsa_certificate.issue_tsa_unit(session=session, runtime=ca_runtime, actor="system")
    ca_runtime.forget_authorities()
    return created


def first_start(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    clock: Clock,
    demo: bool,
    admin_password: str | None = None,
) -> FirstStartData | None:
    """Create the first-start data if the database has no account yet; None otherwise.

    ``admin_password`` is checked by the password policy (``accounts.validate_password``): a
    refusal raises ``DomainError`` and nothing is created.
    """
    with transaction(factory) as session:
        if accounts.count(session) > 0:
            return None
        admin = accounts.create(
            session=session,
            clock=clock,
            passwords=PasswordHasher(settings),
            actor="system",
            username=FIRST_ADMIN,
            full_name="Quản trị hệ thống",
            password=admin_password,
            is_system_admin=True,
        )
        setup = None
        if admin_password is None:
            session.flush()  # the code row refers to the account's id
            code, expires_at = accounts.issue_activation_code(
                session=session,
                clock=clock,
                actor="system",
                account=admin,
                lifetime=ADMIN_SETUP_LIFETIME,
            )
            setup = AdminSetup(code, expires_at)
        demo_client = None
        if demo:
            client, secret = clients.create(
                session=session,
                clock=clock,
                actor="system",
                name="Ứng dụng mẫu (demo)",
                redirect_uris=[DEMO_REDIRECT_URI],
                post_logout_redirect_uris=[DEMO_POST_LOGOUT_URI, DEMO_LOGGED_OUT_URI],
                client_id=DEMO_CLIENT_ID,
                first_party=True,
                backchannel_logout_uri=DEMO_BACKCHANNEL_LOGOUT_URI,
            )
            assert secret is not None
            demo_client = DemoClient(client.client_id, secret)
        # The CA pages log officials in through this IdP: their client, secret derived from the
        # server secret (nothing to print or store; the pages also register it on first use).
        ensure_ca_pages_client(
            session,
            clock=clock,
            settings=settings,
            server_secret=secrets_setup.server_secret(settings),
        )
        return FirstStartData(FIRST_ADMIN, setup, demo_client)


def print_first_start(console: Console, settings: Settings, data: FirstStartData) -> None:
    console.rule("[bold]commune-sso: first start[/bold]")
    console.print(f"issuer:              {settings.issuer}")
    console.print(f"discovery:           {settings.issuer}/.well-known/openid-configuration")
    console.print(f"admin username:      {data.admin_username}")
    if data.admin_setup is None:
        console.print("admin password:      the one in --admin-password-file")
    else:
        expires = data.admin_setup.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        # The code stays out of the URL: proxies log URLs, and a code sits there until used.
        console.print(
            f"admin setup page:    {settings.issuer}{ACTIVATION_PATH}?username={FIRST_ADMIN}"
        )
        console.print(f"activation code:     {data.admin_setup.code}")
        console.print(
            f"[yellow]The activation code works once, until {expires}: open the page, enter it "
            "and choose the admin password. Later: commune-sso user set-password admin.[/yellow]"
        )
    if data.demo is not None:
        console.print(f"demo client_id:      {data.demo.client_id}")
        console.print(f"demo client_secret:  {data.demo.client_secret}")
        console.print(f"demo redirect_uri:   {DEMO_REDIRECT_URI}")
        console.print(
            "[yellow]The demo client is for the local quick start (serve --demo); its secret is "
            "shown once and stored only hashed.[/yellow]"
        )
    console.rule()
