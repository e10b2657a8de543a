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
class Guidance:
    """What an item says in one of its two states, and where it leads."""

    explanation: str  # msgid, with %(count)s where the item counts something
    href: str | None = None  # the page that does it (or shows the result)
    link_label: str | None = None  # msgid
    command: str | None = None  # the CLI command that does it (never translated)


@dataclass(frozen=True)
class SetupItem:
    key: str  # units | import | app | ca | smtp: the element ids and tests use it
    title: str  # msgid
    done: bool
    guidance: Guidance  # the one for the current state
    count: int | None = None


def _item(
    key: str,
    title: str,
    *,
    done: bool,
    when_done: Guidance,
    to_do: Guidance,
    count: int | None = None,
) -> SetupItem:
    return SetupItem(key, title, done, when_done if done else to_do, count)


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
        _item(
            "units",
            N_("Communes, wards and provinces loaded"),
            done=unit_count > 0,
            count=unit_count,
            when_done=Guidance(
                N_("%(count)s units loaded from the official list."),
                href="/admin/units",
                link_label=N_("See the units"),
            ),
            to_do=Guidance(
                N_(
                    "No unit yet: imports refuse every row until the units are loaded. They "
                    "load at start-up; to load them now, run:"
                ),
                command="commune-sso unit sync",
            ),
        ),
        _item(
            "import",
            N_("First officials imported"),
            done=imported is not None,
            when_done=Guidance(
                N_("Officials were imported from a file."),
                href="/admin/imports",
                link_label=N_("Import officials"),
            ),
            to_do=Guidance(
                N_(
                    "Import the officials from a CSV or XLSX file; a dry run shows the result "
                    "first."
                ),
                href="/admin/imports",
                link_label=N_("Import officials"),
            ),
        ),
        _item(
            "app",
            N_("First app registered"),
            done=app_registered is not None,
            when_done=Guidance(
                N_("A shared app signs officials in through this portal."),
                href="/admin/clients",
                link_label=N_("See the apps"),
            ),
            to_do=Guidance(
                N_("Register a shared app so that officials can sign in to it here."),
                href="/admin/clients/new",
                link_label=N_("Register an app"),
            ),
        ),
    ]
    if outside.ca_initialised is not None:
        items.append(
            _item(
                "ca",
                N_("Certificate authority initialised"),
                done=outside.ca_initialised(session),
                when_done=Guidance(
                    N_("Signing certificates can be issued."),
                    href="/ca/pages/admin/certificates",
                    link_label=N_("See the certificates"),
                ),
                to_do=Guidance(
                    N_(
                        "Certificates cannot be issued until the CA is created. On the server, run:"
                    ),
                    command=outside.ca_init_command,
                ),
            )
        )
    items.append(
        _item(
            "smtp",
            N_("E-mail server configured"),
            done=settings.smtp_host is not None,
            when_done=Guidance(
                N_("E-mail to officials is sent through the configured mail server.")
            ),
            to_do=Guidance(
                N_(
                    "E-mail to officials is written to files under the var directory instead of "
                    "being sent. Set the mail server in the service's settings:"
                ),
                command="COMMUNE_SSO_SMTP_HOST=… COMMUNE_SSO_SMTP_FROM=…",
            ),
        )
    )
    return items
