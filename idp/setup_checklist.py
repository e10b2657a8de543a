"""The "what next" checklist of the admin dashboard: what a new installation still lacks.

Each item is read from the database or the settings on every visit (five small queries), so
it turns done as soon as the thing is done, by page, CLI or API alike. The CA's state is not
the IdP's to read (idp never imports ca_admin): the composition root passes it in as
:class:`OutsideState`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import Settings
from core.web.i18n import N_
from idp.models import Client, ImportJob, Unit


@dataclass(frozen=True)
class OutsideState:
    """What the checklist learns from outside the IdP, given by ``commune_sso``.

    ``ca_initialised``: whether the certificate authority has its hierarchy (None: no CA in
    this deployment, the item is left out). ``ca_init_command``: the command that creates it,
    as the operator types it. ``built_in_client_ids``: clients the service registers itself
    (the CA pages, the quick start's demo), which are not "your first app".
    """

    ca_initialised: Callable[[Session], bool] | None = None
    ca_init_command: str = "commune-sso ca init"
    built_in_client_ids: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class SetupItem:
    key: str  # units | import | app | ca | smtp: the element ids and tests use it
    title: str  # msgid
    done: bool
    explanation: str  # msgid, with %(count)s where the item counts something
    count: int | None = None
    href: str | None = None  # the page that does it
    link_label: str | None = None  # msgid
    command: str | None = None  # the CLI command that does it (never translated)


def setup_checklist(
    session: Session, *, settings: Settings, outside: OutsideState
) -> list[SetupItem]:
    """The items in the order a new installation does them."""
    unit_count = session.scalar(select(func.count()).select_from(Unit)) or 0
    imported = session.scalar(
        select(ImportJob.id)
        .where(ImportJob.dry_run.is_(False), ImportJob.status == "finished")
        .limit(1)
    )
    app_registered = session.scalar(
        select(Client.id)
        .where(
            Client.removed_at.is_(None),
            Client.client_id.not_in(sorted(outside.built_in_client_ids)),
        )
        .limit(1)
    )
    items = [
        SetupItem(
            key="units",
            title=N_("Communes, wards and provinces loaded"),
            done=unit_count > 0,
            explanation=N_("%(count)s units loaded from the official list.")
            if unit_count
            else N_(
                "No unit yet: imports refuse every row until the units are loaded. They load "
                "at start-up; to load them now, run:"
            ),
            count=unit_count,
            href="/admin/units" if unit_count else None,
            link_label=N_("See the units") if unit_count else None,
            command=None if unit_count else "commune-sso unit sync",
        ),
        SetupItem(
            key="import",
            title=N_("First officials imported"),
            done=imported is not None,
            explanation=N_("Officials were imported from a file.")
            if imported is not None
            else N_(
                "Import the officials from a CSV or XLSX file; a dry run shows the result first."
            ),
            href="/admin/imports",
            link_label=N_("Import officials"),
        ),
        SetupItem(
            key="app",
            title=N_("First app registered"),
            done=app_registered is not None,
            explanation=N_("A shared app signs officials in through this portal.")
            if app_registered is not None
            else N_("Register a shared app so that officials can sign in to it here."),
            href="/admin/clients" if app_registered is not None else "/admin/clients/new",
            link_label=N_("See the apps") if app_registered is not None else N_("Register an app"),
        ),
    ]
    if outside.ca_initialised is not None:
        ca_ready = outside.ca_initialised(session)
        items.append(
            SetupItem(
                key="ca",
                title=N_("Certificate authority initialised"),
                done=ca_ready,
                explanation=N_("Signing certificates can be issued.")
                if ca_ready
                else N_(
                    "Certificates cannot be issued until the CA is created. On the server, run:"
                ),
                href="/ca/pages/admin/certificates" if ca_ready else None,
                link_label=N_("See the certificates") if ca_ready else None,
                command=None if ca_ready else outside.ca_init_command,
            )
        )
    smtp = settings.smtp_host is not None
    items.append(
        SetupItem(
            key="smtp",
            title=N_("E-mail server configured"),
            done=smtp,
            explanation=N_("E-mail to officials is sent through the configured mail server.")
            if smtp
            else N_(
                "E-mail to officials is written to files under the var directory instead of "
                "being sent. Set the mail server in the service's settings:"
            ),
            command=None if smtp else "COMMUNE_SSO_SMTP_HOST=… COMMUNE_SSO_SMTP_FROM=…",
        )
    )
    return items
