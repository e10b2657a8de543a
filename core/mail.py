"""E-mail to officials: one bilingual plain-text message (Vietnamese first, then English,
CONVENTIONS §15), sent by SMTP or, without an SMTP host (the embedded default), written as an
RFC 5322 ``.eml`` file under ``<var_dir>/mail/`` so it can be read (and tests read it there).
Used by the CA (expiry reminders, key compromise notices) and the IdP (password reset links).
"""

from __future__ import annotations

import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from babel.support import Translations

from core.settings import Settings

SMTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class MailSettings:
    host: str | None
    port: int
    sender: str
    username: str | None
    password: str | None
    starttls: bool
    directory: Path  # where messages go without an SMTP host
    base_url: str  # the service's public URL, for links in the messages
    # Who signs the messages, by language ("vi", "en"): COMMUNE_SSO_ORGANISATION_NAME(_EN).
    organisation_names: Mapping[str, str] = field(default_factory=dict)


class Mailer:
    """Sends an RFC 5322 message by SMTP, or writes it as a .eml file."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    def send(self, message: EmailMessage) -> None:
        settings = self.settings
        if not settings.host:
            settings.directory.mkdir(parents=True, exist_ok=True)
            name = str(message["Message-ID"]).strip("<>").replace("@", "_").replace("/", "_")
            target = settings.directory / f"{name}.eml"
            partial = target.with_suffix(".eml.part")
            partial.write_bytes(message.as_bytes(policy=SMTP))
            os.replace(partial, target)  # a reader never sees half a message
            return
        with smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)


def mail_settings(settings: Settings) -> MailSettings:
    """The mail settings of the service (COMMUNE_SSO_SMTP_*); links point at the issuer."""
    return MailSettings(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
        directory=(settings.var_dir / "mail").absolute(),
        base_url=settings.issuer,
        organisation_names=settings.organisation_names,
    )


def vietnam_time(moment: datetime) -> str:
    """Vietnam has one time zone and no daylight saving: UTC+7."""
    return (moment + timedelta(hours=7)).strftime("%d/%m/%Y %H:%M (UTC+7)")


def compose_bilingual(
    *,
    settings: MailSettings,
    translations: dict[str, Translations],
    recipient: str,
    subject: str,
    body: str,
    values: Mapping[str, object],
    now: datetime,
) -> EmailMessage:
    """``subject`` and ``body`` (msgids with ``%(name)s`` parameters) in Vietnamese, then in
    English, in one plain-text UTF-8 message signed with the organisation's name."""
    vietnamese = translations["vi"].gettext
    message = EmailMessage(policy=SMTP)
    # Non-ASCII header text is RFC 2047-encoded by the policy when the message is serialised.
    message["Subject"] = vietnamese(subject) % values
    message["From"] = settings.sender
    message["To"] = recipient
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or "localhost")
    message["Content-Language"] = "vi, en"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    english = (subject % values) + "\n\n" + (body % values) + _signature(settings, "en")
    message.set_content(
        (vietnamese(body) % values)
        + _signature(settings, "vi")
        + "\n\n-- English --\n\n"
        + english,
        charset="utf-8",
    )
    return message


def _signature(settings: MailSettings, locale: str) -> str:
    name = settings.organisation_names.get(locale)
    return f"\n\n{name}" if name else ""
