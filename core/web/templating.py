"""Server-rendered pages: Jinja2 + Babel catalogues + CSRF token + security headers.

One Jinja2 environment per locale, each with its catalogue installed once at start-up. Pages
are rendered concurrently in a thread pool, so translations are never swapped on a shared
environment per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from babel.support import Translations
from starlette.requests import Request
from starlette.responses import HTMLResponse

from core.errors import DomainError
from core.web.code_labels import CORE_LABELS, CodeLabels, label_filters, merge_labels
from core.web.csrf import CsrfProtection
from core.web.i18n import SUPPORTED_LOCALES
from core.web.language_cookie import LANG_QUERY_PARAM, remember_language
from core.web.site_header import SiteArea, visitor_of

# No form-action directive on purpose: Chrome applies form-action to the redirects that follow
# a form POST, which would block the redirect from POST /consent or /login to a relying
# party's redirect_uri. No script-src either: default-src 'self' already forbids inline script
# and javascript: URLs, and our pages ship no script at all.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
}


class PageRenderer:
    def __init__(
        self,
        *,
        template_dirs: Sequence[Path],
        translations: dict[str, Translations],
        csrf: CsrfProtection,
        static_url: str = "/static",
        organisation_names: Mapping[str, str] | None = None,
        areas: Sequence[SiteArea] = (),
        code_labels: CodeLabels | None = None,
    ) -> None:
        """``template_dirs`` are searched in order: put package dirs before core's base dir.

        ``organisation_names`` (by locale, e.g. "vi": "Sở Khoa học và Công nghệ tỉnh Lào Cai")
        replace the generic translated department name in the page header and footer.
        ``areas``: the areas of the service the shared header links to (core.web.site_header).
        ``code_labels`` (kind -> code -> msgid, see core.web.code_labels) backs the ``label``
        and ``actor_label`` filters; core's own actor names are always included.
        """
        labels = merge_labels(CORE_LABELS, code_labels or {})
        loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in template_dirs])
        self._csrf = csrf
        self._static_url = static_url.rstrip("/")
        self._environments: dict[str, jinja2.Environment] = {}
        self._translations = translations
        self._areas = tuple(areas)
        for locale in {*SUPPORTED_LOCALES, *translations}:
            env = jinja2.Environment(
                loader=loader,
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            catalogue = translations.get(locale) or Translations()
            # newstyle: %(name)s placeholders are filled and escaped by gettext itself.
            env.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
            env.globals["organisation_name"] = (organisation_names or {}).get(locale)
            env.filters.update(label_filters(labels, catalogue.gettext))
            self._environments[locale] = env

    def environment(self, locale: str) -> jinja2.Environment:
        try:
            return self._environments[locale]
        except KeyError:
            raise ValueError(f"unsupported locale {locale!r}") from None

    @property
    def translations(self) -> dict[str, Translations]:
        """The merged catalogues by locale, for text composed outside a page (e-mail)."""
        return self._translations

    def gettext(self, locale: str, message: str) -> str:
        """``message`` (a msgid) in ``locale``, for text outside a template (JSON errors)."""
        catalogue = self._translations.get(locale)
        return catalogue.gettext(message) if catalogue is not None else message

    def refusal_text(self, locale: str, refusal: DomainError) -> str:
        """A refusal's text in ``locale``, its parameters filled (``error.html``'s
        ``message_text``): a msgid with placeholders cannot go through the template's ``_()``."""
        return refusal.text(lambda message: self.gettext(locale, message))

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        locale: str,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        remember_locale: bool = False,
    ) -> HTMLResponse:
        """Render ``template`` in ``locale``.

        ``remember_locale``: the language was chosen explicitly (``?lang=``), so a ``lang``
        cookie keeps it for the next pages.
        """
        env = self.environment(locale)

        def lang_switch_url(lang: str) -> str:
            # Relative URL: never built from the Host header.
            params = [
                (k, v) for k, v in request.query_params.multi_items() if k != LANG_QUERY_PARAM
            ]
            params.append((LANG_QUERY_PARAM, lang))
            return f"{request.url.path}?{urlencode(params)}"

        visitor = visitor_of(request)
        page_context: dict[str, Any] = {
            "request": request,
            "locale": locale,
            "csrf_token": self._csrf.token_for(request),
            "csrf_field_name": self._csrf.FIELD_NAME,
            "static_url": self._static_url,
            "lang_switch_url": lang_switch_url,
            "visitor": visitor,
            "site_areas": visitor.areas(self._areas) if visitor is not None else [],
        }
        page_context.update(context or {})
        body = env.get_template(template).render(page_context)

        response = HTMLResponse(body, status_code=status_code)
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        for name, value in (headers or {}).items():
            response.headers[name] = value
        self._csrf.set_cookie_if_new(request, response)
        if remember_locale:
            remember_language(response, locale, secure=self._csrf.secure_cookies)
        return response
