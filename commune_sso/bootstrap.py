"""First start on an empty database: a first system admin, a demo client and the CA pages'
client.

Their secrets are printed once and stored only hashed; a second start finds the accounts and
creates nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from commune_sso import secrets_setup
from commune_sso.ca_bridge import ensure_ca_pages_client
from core.clock import Clock
from core.db import transaction
from core.settings import Settings
from idp import accounts, clients
from idp.passwords import PasswordHasher

FIRST_ADMIN = "admin"
DEMO_REDIRECT_URI = "http://127.0.0.1:8001/auth/callback"
DEMO_POST_LOGOUT_URI = "http://127.0.0.1:8001/"
# examples/shared_app run on port 8001 (its README): its post-logout page and logout receiver.
DEMO_LOGGED_OUT_URI = "http://127.0.0.1:8001/logged-out"
DEMO_BACKCHANNEL_LOGOUT_URI = "http://127.0.0.1:8001/backchannel-logout"


@dataclass(frozen=True)
class FirstStartData:
    admin_username: str
    admin_password: str
    demo_client_id: str
    demo_client_secret: str


def first_start(
    settings: Settings, factory: sessionmaker[Session], *, clock: Clock
) -> FirstStartData | None:
    with transaction(factory) as session:
        if accounts.count(session) > 0:
            return None
        password = secrets.token_urlsafe(12)
        accounts.create(
            session=session,
            clock=clock,
            passwords=PasswordHasher(settings),
            actor="system",
            username=FIRST_ADMIN,
            full_name="Quản trị hệ thống",
            password=password,
            is_system_admin=True,
        )
        client, secret = clients.create(
            session=session,
            clock=clock,
            actor="system",
            name="Ứng dụng mẫu (demo)",
            redirect_uris=[DEMO_REDIRECT_URI],
            post_logout_redirect_uris=[DEMO_POST_LOGOUT_URI, DEMO_LOGGED_OUT_URI],
            client_id="demo-shared-app",
            first_party=True,
            backchannel_logout_uri=DEMO_BACKCHANNEL_LOGOUT_URI,
        )
        assert secret is not None
        # The CA pages log officials in through this IdP: their client, secret derived from the
        # server secret (nothing to print or store; the pages also register it on first use).
        ensure_ca_pages_client(
            session,
            clock=clock,
            settings=settings,
            server_secret=secrets_setup.server_secret(settings),
        )
        return FirstStartData(FIRST_ADMIN, password, client.client_id, secret)


def print_first_start(console: Console, settings: Settings, data: FirstStartData) -> None:
    console.rule("[bold]commune-sso: first start[/bold]")
    console.print(f"issuer:              {settings.issuer}")
    console.print(f"discovery:           {settings.issuer}/.well-known/openid-configuration")
    console.print(f"admin username:      {data.admin_username}")
    console.print(f"admin password:      {data.admin_password}")
    console.print(f"demo client_id:      {data.demo_client_id}")
    console.print(f"demo client_secret:  {data.demo_client_secret}")
    console.print(f"demo redirect_uri:   {DEMO_REDIRECT_URI}")
    console.print(
        "[yellow]These secrets are shown once and stored only hashed. Save them now.[/yellow]"
    )
    console.rule()
