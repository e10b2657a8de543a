"""The CA's e-mail (expiry reminders, key compromise notices): the mailer is shared with the
IdP in :mod:`core.mail`; the CA's messages are translated with its own catalogue."""

from __future__ import annotations

from pathlib import Path

from babel.support import Translations

import ca_admin
import core
from core.mail import Mailer, MailSettings, compose_bilingual, vietnam_time
from core.web.i18n import load_translations

__all__ = ["MailSettings", "Mailer", "catalogues", "compose_bilingual", "vietnam_time"]


def catalogues() -> dict[str, Translations]:
    return load_translations(
        [Path(core.__file__).parent / "web" / "locale", Path(ca_admin.__file__).parent / "locale"]
    )
