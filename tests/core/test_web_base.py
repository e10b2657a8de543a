"""Web base: locale negotiation, catalogues, CSRF and page rendering through a real ASGI app."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from core.errors import DomainError
from core.web.csrf import CsrfError, CsrfProtection
from core.web.i18n import DEFAULT_LOCALE, load_translations, negotiate_locale
from core.web.templating import PageRenderer

ROOT = Path(__file__).resolve().parents[2]
CORE_TEMPLATES = ROOT / "core" / "web" / "templates"
IDP_TEMPLATES = ROOT / "idp" / "templates"
STATIC_DIR = ROOT / "core" / "web" / "static"
# The app merges all three catalogues (commune_sso/app.py): a template may use a msgid that
# another package's catalogue translates.
LOCALE_DIRS = [
    ROOT / "core" / "web" / "locale",
    ROOT / "idp" / "locale",
    ROOT / "ca_admin" / "locale",
]
PO_FILES = sorted(p for d in LOCALE_DIRS for p in d.glob("*/LC_MESSAGES/messages.po"))
SECRET = b"test-secret-test-secret-test-secret!"

# msgids the idp's Python code passes to the pages as error / message / title.
CODE_MSGIDS = [
    "Incorrect username or password.",
    "Too many failed attempts. Please wait a few minutes and try again.",
    "Please enter your username and password.",
    "Your sign-in session has expired. Please start again from the application.",
    "Sign-in error",
    "The application sent an invalid sign-in request.",
    "Unknown application or unregistered return address. For your safety you were not redirected.",
    "Page not found",
    "Something went wrong",
    "Please try again later.",
    "This form has expired. Please go back, reload the page and try again.",
    "Form expired",
    "Signed out",
    "Access denied",
    "Sign out",
]


# ---------------------------------------------------------------- HTML inspection helpers


class _Element:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.text = ""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self._open: list[_Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = _Element(tag, dict(attrs))
        self.elements.append(element)
        if tag not in {"input", "meta", "link", "br", "img", "path", "circle", "polygon"}:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


def parse(html: str) -> list[_Element]:
    collector = _Collector()
    collector.feed(html)
    return collector.elements


def find(elements: list[_Element], tag: str, **attrs: str) -> list[_Element]:
    return [
        e
        for e in elements
        if e.tag == tag and all(e.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
    ]


def one(elements: list[_Element], tag: str, **attrs: str) -> _Element:
    found = find(elements, tag, **attrs)
    assert len(found) == 1, (tag, attrs, len(found))
    return found[0]


def squash(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- fixtures: a tiny app


@pytest.fixture(scope="module")
def translations() -> dict[str, Any]:
    return load_translations(LOCALE_DIRS)


def make_app(translations: dict[str, Any], *, secure_cookies: bool = False) -> Starlette:
    csrf = CsrfProtection(SECRET, secure_cookies=secure_cookies)
    renderer = PageRenderer(
        template_dirs=[IDP_TEMPLATES, CORE_TEMPLATES], translations=translations, csrf=csrf
    )

    def page(request: Request, template: str, context: dict[str, Any]) -> Response:
        query_lang = request.query_params.get("lang")
        locale = negotiate_locale(
            ui_locales=request.query_params.get("ui_locales"),
            query_lang=query_lang,
            cookie_lang=request.cookies.get("lang"),
        )
        return renderer.render(
            request,
            template,
            context,
            locale=locale,
            remember_locale=query_lang is not None and query_lang == locale,
        )

    def login(request: Request) -> Response:
        return page(
            request,
            "login.html",
            {
                "interaction": "int-123",
                "username": request.query_params.get("username", ""),
                "error": request.query_params.get("error"),
                "client_name": request.query_params.get("client", "Quản lý văn bản"),
            },
        )

    async def login_post(request: Request) -> Response:
        form = await request.form()
        token = form.get("csrf_token")
        try:
            csrf.verify(request, token if isinstance(token, str) else None)
        except CsrfError as exc:
            return PlainTextResponse(exc.code, status_code=exc.status_code)
        return PlainTextResponse("ok")

    def consent(request: Request) -> Response:
        return page(
            request,
            "consent.html",
            {
                "interaction": "int-456",
                "client_name": "Một cửa điện tử",
                "scopes": ["openid", "profile", "email", "phone", "unit", "offline_access", "x:y"],
                "user_name": "Nguyễn Thị Hoa",
            },
        )

    def logout_confirm(request: Request) -> Response:
        return page(
            request,
            "logout_confirm.html",
            {"logout_request": "lr-789", "client_name": request.query_params.get("client")},
        )

    def logged_out(request: Request) -> Response:
        return page(request, "logged_out.html", {"client_name": request.query_params.get("client")})

    def error(request: Request) -> Response:
        return page(
            request,
            "error.html",
            {
                "title": "Sign-in error",
                "message": "The application sent an invalid sign-in request.",
                "status_code": 400,
                "error_code": "invalid_request",
                "error_description": request.query_params.get("desc", "missing code_challenge"),
                "back_url": "/login",
            },
        )

    return Starlette(
        routes=[
            Route("/login", login, methods=["GET"]),
            Route("/login", login_post, methods=["POST"]),
            Route("/consent", consent),
            Route("/logout", logout_confirm),
            Route("/logged-out", logged_out),
            Route("/error", error),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]
    )


@pytest.fixture
def client(translations: dict[str, Any]) -> TestClient:
    return TestClient(make_app(translations), base_url="http://testserver")


# ---------------------------------------------------------------- negotiate_locale


def test_default_locale_is_vietnamese() -> None:
    assert DEFAULT_LOCALE == "vi"
    assert negotiate_locale(ui_locales=None, query_lang=None, cookie_lang=None) == "vi"


@pytest.mark.parametrize(
    ("ui_locales", "query_lang", "cookie_lang", "expected"),
    [
        ("en-US vi", "vi", "vi", "en"),  # ui_locales wins, first supported tag
        ("fr de-DE vi-VN", "en", "en", "vi"),  # unsupported tags skipped
        ("fr", "en", "vi", "en"),  # nothing usable in ui_locales: ?lang=
        ("", None, "en", "en"),  # then the cookie
        (None, "xx", "en", "en"),  # unsupported ?lang= ignored
        (None, "EN_us", None, "en"),  # tags are case-insensitive, _ or -
        (None, None, "klingon", "vi"),
        ("   ", "", "", "vi"),
    ],
)
def test_negotiate_locale_order(
    ui_locales: str | None, query_lang: str | None, cookie_lang: str | None, expected: str
) -> None:
    assert (
        negotiate_locale(ui_locales=ui_locales, query_lang=query_lang, cookie_lang=cookie_lang)
        == expected
    )


# ---------------------------------------------------------------- load_translations


def test_vietnamese_catalogue_translates_core_and_idp(translations: dict[str, Any]) -> None:
    vi = translations["vi"]
    assert vi.gettext("Sign in") == "Đăng nhập"  # idp catalogue
    assert vi.gettext("Single sign-on portal") == "Cổng đăng nhập một lần"  # core catalogue
    assert vi.gettext("Not a msgid at all") == "Not a msgid at all"


def test_english_falls_back_to_msgid(translations: dict[str, Any]) -> None:
    en = translations["en"]
    assert en.gettext("Sign in") == "Sign in"
    assert en.gettext("Incorrect username or password.") == "Incorrect username or password."
    assert en.ngettext("%(n)s item", "%(n)s items", 2) == "%(n)s items"


@pytest.mark.parametrize("msgid", CODE_MSGIDS)
def test_code_msgids_have_vietnamese(translations: dict[str, Any], msgid: str) -> None:
    translated = translations["vi"].gettext(msgid)
    assert translated and translated != msgid


def _write_po(path: Path, locale: str, messages: dict[str, str]) -> None:
    catalog = Catalog(locale=locale)
    for msgid, msgstr in messages.items():
        catalog.add(msgid, msgstr)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog)


def test_later_catalogue_overrides_and_missing_dirs_are_skipped(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _write_po(first / "vi/LC_MESSAGES/messages.po", "vi", {"A": "Một", "B": "Hai"})
    _write_po(second / "vi/LC_MESSAGES/messages.po", "vi", {"B": "Hai (mới)", "C": ""})
    loaded = load_translations([first, second, tmp_path / "absent"])
    assert set(loaded) == {"vi", "en"}
    assert loaded["vi"].gettext("A") == "Một"
    assert loaded["vi"].gettext("B") == "Hai (mới)"
    assert loaded["vi"].gettext("C") == "C"  # empty msgstr falls back, never shows ""
    assert loaded["en"].gettext("A") == "A"


# ---------------------------------------------------------------- catalogue hygiene


@pytest.mark.parametrize("po_path", PO_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_po_file_parses_and_placeholders_match(po_path: Path) -> None:
    with po_path.open("rb") as fh:
        catalog = read_po(fh, abort_invalid=True)
    assert len(catalog) > 0
    problems = [(message.id, errors) for message, errors in catalog.check()]
    assert problems == []
    assert not [m.id for m in catalog if m.id and m.fuzzy]


def test_catalogue_pairs_have_the_same_msgids() -> None:
    assert len(PO_FILES) == 6
    for locale_dir in LOCALE_DIRS:
        ids = {}
        for locale in ("vi", "en"):
            with (locale_dir / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
                ids[locale] = {m.id for m in read_po(fh) if m.id}
        assert ids["vi"] == ids["en"], locale_dir


def _template_msgids() -> set[str]:
    msgids: set[str] = set()
    for directory in (CORE_TEMPLATES, IDP_TEMPLATES, ROOT / "ca_admin" / "templates"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(directory),
            method_map=[("**.html", "jinja2")],
            options_map={"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}},
        ):
            msgids.update(m for m in (message if isinstance(message, tuple) else (message,)) if m)
    return msgids


def test_every_template_msgid_has_a_vietnamese_translation() -> None:
    catalogue: dict[str, str] = {}
    for locale_dir in LOCALE_DIRS:
        with (locale_dir / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
            catalogue.update(
                {m.id: m.string for m in read_po(fh) if isinstance(m.id, str) and m.id}
            )
    msgids = _template_msgids()
    assert {"Sign in", "Allow", "Single sign-on portal"} <= msgids  # the extractor did run
    missing = sorted(m for m in msgids if not catalogue.get(m))
    assert missing == []


def test_pages_use_no_external_resources() -> None:
    files = [
        *CORE_TEMPLATES.glob("*.html"),
        *IDP_TEMPLATES.glob("*.html"),
        STATIC_DIR / "style.css",
    ]
    for path in files:
        text = path.read_text(encoding="utf-8")
        # the only absolute URL allowed is the SVG namespace
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text.replace("http://www.w3.org", ""))
        assert urls == [], (path.name, urls)
        assert "@import" not in text and "@font-face" not in text
        # CSP (default-src 'self'): no inline script or style; a script of our own origin
        # (the SAML POST binding's auto-submit) is allowed.
        assert re.search(r"<script(?![^>]*\bsrc=\"\{\{ static_url \}\}/)", text) is None, path.name
        assert " style=" not in text


# ---------------------------------------------------------------- CSRF


def _request(cookies: dict[str, str] | None = None) -> Request:
    cookie_header = "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())
    headers = [(b"cookie", cookie_header.encode())] if cookie_header else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


def test_csrf_token_round_trip() -> None:
    csrf = CsrfProtection(SECRET, secure_cookies=False)
    first = _request()
    token = csrf.token_for(first)
    assert token == csrf.token_for(first)  # stable within a request
    nonce = first.state.csrf_nonce
    csrf.verify(_request({"csrf_nonce": nonce}), token)


def test_csrf_reuses_existing_cookie_and_sets_none() -> None:
    csrf = CsrfProtection(SECRET, secure_cookies=False)
    issued = _request()
    token = csrf.token_for(issued)
    again = _request({"csrf_nonce": issued.state.csrf_nonce})
    assert csrf.token_for(again) == token
    response = Response()
    csrf.set_cookie_if_new(again, response)
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("secure", [True, False])
def test_csrf_cookie_flags(secure: bool) -> None:
    csrf = CsrfProtection(SECRET, secure_cookies=secure)
    request = _request()
    csrf.token_for(request)
    response = Response()
    csrf.set_cookie_if_new(request, response)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"csrf_nonce={request.state.csrf_nonce};")
    assert "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower()
    assert "Path=/" in cookie
    assert ("Secure" in cookie) is secure


def test_csrf_missing_cookie_fails() -> None:
    csrf = CsrfProtection(SECRET, secure_cookies=False)
    token = csrf.token_for(_request())
    with pytest.raises(CsrfError) as raised:
        csrf.verify(_request(), token)
    assert isinstance(raised.value, DomainError)
    assert raised.value.status_code == 403
    assert raised.value.code == "csrf_failed"
    assert raised.value.message == (
        "This form has expired. Please go back, reload the page and try again."
    )


@pytest.mark.parametrize("submitted", [None, "", "not-the-token", "x" * 43])
def test_csrf_wrong_or_missing_token_fails(submitted: str | None) -> None:
    csrf = CsrfProtection(SECRET, secure_cookies=False)
    request = _request()
    csrf.token_for(request)
    with pytest.raises(CsrfError):
        csrf.verify(_request({"csrf_nonce": request.state.csrf_nonce}), submitted)


def test_csrf_token_of_another_nonce_or_secret_fails() -> None:
    csrf = CsrfProtection(SECRET, secure_cookies=False)
    mine, theirs = _request(), _request()
    csrf.token_for(mine)
    their_token = csrf.token_for(theirs)
    assert mine.state.csrf_nonce != theirs.state.csrf_nonce
    with pytest.raises(CsrfError):
        csrf.verify(_request({"csrf_nonce": mine.state.csrf_nonce}), their_token)
    # a planted cookie with a token minted under another secret
    other = CsrfProtection(b"another-secret-another-secret!!", secure_cookies=False)
    planted = _request()
    forged = other.token_for(planted)
    with pytest.raises(CsrfError):
        csrf.verify(_request({"csrf_nonce": planted.state.csrf_nonce}), forged)


def test_csrf_malformed_cookie_gets_replaced() -> None:
    csrf = CsrfProtection(SECRET, secure_cookies=False)
    request = _request({"csrf_nonce": "short"})
    csrf.token_for(request)
    assert request.state.csrf_nonce != "short"
    response = Response()
    csrf.set_cookie_if_new(request, response)
    assert "set-cookie" in response.headers
    with pytest.raises(CsrfError):
        csrf.verify(_request({"csrf_nonce": "short"}), csrf.token_for(_request()))


# ---------------------------------------------------------------- rendering


def test_login_page_is_vietnamese_by_default(client: TestClient) -> None:
    response = client.get("/login")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    elements = parse(response.text)
    assert one(elements, "html").attrs["lang"] == "vi"
    assert squash(one(elements, "h1").text) == "Đăng nhập"
    assert squash(one(elements, "button", type="submit").text) == "Đăng nhập"
    assert "Đăng nhập để tiếp tục vào Quản lý văn bản" in squash(
        one(elements, "p", class_="lead").text
    )
    assert "Cổng đăng nhập một lần" in response.text
    assert "lang" not in response.cookies  # no explicit choice, nothing remembered


def test_login_page_in_english_sets_lang_cookie(client: TestClient) -> None:
    response = client.get("/login?lang=en")
    elements = parse(response.text)
    assert one(elements, "html").attrs["lang"] == "en"
    assert squash(one(elements, "h1").text) == "Sign in"
    assert squash(one(elements, "label", for_="password").text) == "Password"
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("lang="))
    assert cookie.startswith("lang=en;")
    assert "Max-Age=31536000" in cookie
    assert "samesite=lax" in cookie.lower()
    # the cookie keeps the choice on the next page
    follow = client.get("/consent")
    assert one(parse(follow.text), "html").attrs["lang"] == "en"
    assert ">Allow<" in follow.text


def test_ui_locales_beats_cookie(client: TestClient) -> None:
    client.cookies.set("lang", "vi")
    response = client.get("/login?ui_locales=en-US%20vi")
    assert squash(one(parse(response.text), "h1").text) == "Sign in"


def test_login_form_has_exactly_the_agreed_fields(client: TestClient) -> None:
    elements = parse(client.get("/login").text)
    form = one(elements, "form")
    # The interaction rides in the URL too, so the language switch on a re-shown form keeps it.
    assert form.attrs["action"] == "/login?interaction=int-123"
    assert form.attrs["method"] == "post"
    inputs = {e.attrs.get("name"): e.attrs for e in find(elements, "input")}
    assert set(inputs) == {"csrf_token", "interaction", "username", "password"}
    assert inputs["interaction"]["type"] == "hidden"
    assert inputs["interaction"]["value"] == "int-123"
    assert inputs["csrf_token"]["type"] == "hidden"
    username = inputs["username"]
    assert username["id"] == "username"
    assert username["autocomplete"] == "username"
    assert username["autocapitalize"] == "none"
    assert username["spellcheck"] == "false"
    assert "required" in username
    password = inputs["password"]
    assert password["type"] == "password"
    assert password["id"] == "password"
    assert password["autocomplete"] == "current-password"
    assert "required" in password
    submit = one(elements, "button")
    assert submit.attrs["type"] == "submit"


@pytest.mark.parametrize("path", ["/login", "/login?error=x", "/consent", "/logout", "/error"])
def test_labels_point_at_existing_inputs(client: TestClient, path: str) -> None:
    elements = parse(client.get(path).text)
    ids = [e.attrs["id"] for e in elements if e.attrs.get("id")]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for label in find(elements, "label"):
        assert label.attrs.get("for") in ids
    for field in elements:
        if field.tag in {"input", "select", "textarea"} and field.attrs.get("type") != "hidden":
            assert find(elements, "label", for_=field.attrs["id"] or "")


def test_csrf_cookie_set_and_hidden_token_verifies(client: TestClient) -> None:
    response = client.get("/login")
    set_cookie = next(
        v for v in response.headers.get_list("set-cookie") if v.startswith("csrf_nonce=")
    )
    assert "HttpOnly" in set_cookie and "Secure" not in set_cookie
    token = one(parse(response.text), "input", name="csrf_token").attrs["value"]
    assert client.post("/login", data={"csrf_token": token}).text == "ok"
    # the next page reuses the nonce: same token, no new cookie
    again = client.get("/login")
    assert "csrf_nonce" not in again.headers.get("set-cookie", "")
    assert one(parse(again.text), "input", name="csrf_token").attrs["value"] == token


def test_post_without_matching_cookie_is_refused(
    client: TestClient, translations: dict[str, Any]
) -> None:
    token = one(parse(client.get("/login").text), "input", name="csrf_token").attrs["value"]
    stranger = TestClient(make_app(translations))
    refused = stranger.post("/login", data={"csrf_token": token})
    assert refused.status_code == 403
    assert refused.text == "csrf_failed"
    assert client.post("/login", data={}).status_code == 403


def test_secure_cookies_follow_setting(translations: dict[str, Any]) -> None:
    secure_client = TestClient(make_app(translations, secure_cookies=True))
    response = secure_client.get("/login?lang=en")
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 2
    assert all("Secure" in c for c in cookies)


def test_security_headers(client: TestClient) -> None:
    headers = client.get("/login").headers
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "style-src 'self'" in csp
    assert "unsafe-inline" not in csp


def test_login_error_is_announced_and_input_refilled_escaped(client: TestClient) -> None:
    response = client.get(
        "/login",
        params={
            "error": "Incorrect username or password.",
            "username": '"><script>x</script>',
            "client": "<b>App</b>",
        },
    )
    assert "<script>x" not in response.text and "<b>App" not in response.text
    elements = parse(response.text)
    alert = one(elements, "div", role="alert")
    assert squash(alert.text) == "Tên đăng nhập hoặc mật khẩu không đúng."
    assert alert.attrs["id"] == "form-error"
    username = one(elements, "input", name="username")
    assert username.attrs["value"] == '"><script>x</script>'
    assert username.attrs["aria-invalid"] == "true"
    assert username.attrs["aria-describedby"] == "form-error"
    assert "<b>App</b>" in one(elements, "strong", class_="client-name").text


def test_no_alert_without_error(client: TestClient) -> None:
    assert find(parse(client.get("/login").text), "div", role="alert") == []


def test_language_switch_keeps_query_and_marks_current(client: TestClient) -> None:
    elements = parse(client.get("/login?username=an&lang=vi").text)
    nav = one(elements, "nav")
    assert nav.attrs["aria-label"] == "Ngôn ngữ"
    vi = one(elements, "a", hreflang="vi")
    en = one(elements, "a", hreflang="en")
    assert en.attrs["href"] == "/login?username=an&lang=en"
    assert vi.attrs["href"] == "/login?username=an&lang=vi"
    assert vi.attrs.get("aria-current") == "true"
    assert "aria-current" not in en.attrs
    assert squash(vi.text) == "Tiếng Việt" and squash(en.text) == "English"


def test_skip_link_and_main_landmark(client: TestClient) -> None:
    elements = parse(client.get("/login").text)
    skip = one(elements, "a", class_="skip-link")
    assert skip.attrs["href"] == "#main"
    assert one(elements, "main").attrs["id"] == "main"
    assert find(elements, "header") and find(elements, "footer")
    assert one(elements, "meta", name="viewport")
    assert one(elements, "link", rel="stylesheet").attrs["href"] == "/static/style.css"


def test_consent_page(client: TestClient) -> None:
    elements = parse(client.get("/consent").text)
    form = one(elements, "form")
    assert (form.attrs["action"], form.attrs["method"]) == ("/consent", "post")
    assert one(elements, "input", name="interaction").attrs["value"] == "int-456"
    assert one(elements, "input", name="csrf_token").attrs["type"] == "hidden"
    allow = one(elements, "button", value="allow")
    deny = one(elements, "button", value="deny")
    assert allow.attrs["name"] == deny.attrs["name"] == "decision"
    assert (squash(allow.text), squash(deny.text)) == ("Đồng ý", "Từ chối")
    items = [squash(li.text) for li in find(elements, "li") if not li.attrs]
    scope_items = items[2:]  # after the two language links
    assert scope_items == [
        "Mã định danh tài khoản, để xác nhận danh tính của bạn",
        "Họ tên và thông tin hồ sơ cơ bản",
        "Địa chỉ thư điện tử",
        "Số điện thoại",
        "Đơn vị công tác: tỉnh, xã/phường, cơ quan và chức vụ",
        "Duy trì kết nối với tài khoản của bạn cả khi bạn không sử dụng ứng dụng",
        "x:y",
    ]
    text = squash(" ".join(e.text for e in find(elements, "p")))
    assert "Ứng dụng Một cửa điện tử đề nghị được truy cập tài khoản của bạn." in text
    assert "Nguyễn Thị Hoa" in text


def test_logout_confirmation_page(client: TestClient) -> None:
    elements = parse(client.get("/logout?client=Báo cáo").text)
    form = one(elements, "form")
    assert (form.attrs["action"], form.attrs["method"]) == ("/oauth2/logout/confirm", "post")
    assert one(elements, "input", name="logout_request").attrs["value"] == "lr-789"
    assert one(elements, "input", name="csrf_token").attrs["type"] == "hidden"
    assert squash(one(elements, "button", value="logout").text) == "Đăng xuất"
    assert one(elements, "button", value="cancel").attrs["name"] == "decision"
    assert "Báo cáo" in one(elements, "strong", class_="client-name").text
    # without a client name the page still makes sense
    assert find(parse(client.get("/logout").text), "strong", class_="client-name") == []


@pytest.mark.parametrize(("lang", "heading"), [("vi", "Đã đăng xuất"), ("en", "Signed out")])
def test_logged_out_page(client: TestClient, lang: str, heading: str) -> None:
    elements = parse(client.get(f"/logged-out?lang={lang}").text)
    assert squash(one(elements, "h1").text) == heading
    with_client = parse(client.get(f"/logged-out?lang={lang}&client=Một cửa").text)
    assert "Một cửa" in one(with_client, "strong", class_="client-name").text


def test_error_page(client: TestClient) -> None:
    response = client.get("/error", params={"desc": "<img src=x onerror=alert(1)>"})
    assert "<img src=x" not in response.text
    elements = parse(response.text)
    assert squash(one(elements, "h1").text) == "Lỗi đăng nhập"
    assert squash(one(elements, "title").text).startswith("Lỗi đăng nhập – ")
    alert = one(elements, "div", role="alert")
    assert squash(alert.text) == "Ứng dụng đã gửi yêu cầu đăng nhập không hợp lệ."
    codes = [squash(c.text) for c in find(elements, "code")]
    assert codes == ["400", "invalid_request"]
    assert "<img src=x onerror=alert(1)>" in one(elements, "p", lang="en").text
    assert one(elements, "a", class_="button button--secondary").attrs["href"] == "/login"


def test_stylesheet_and_emblem_are_served(client: TestClient) -> None:
    css = client.get("/static/style.css")
    assert css.status_code == 200 and ".site-header" in css.text
    assert client.get("/static/emblem.svg").status_code == 200


def test_unknown_locale_is_refused(translations: dict[str, Any]) -> None:
    renderer = PageRenderer(
        template_dirs=[IDP_TEMPLATES, CORE_TEMPLATES],
        translations=translations,
        csrf=CsrfProtection(SECRET, secure_cookies=False),
    )
    with pytest.raises(ValueError, match="unsupported locale"):
        renderer.render(_request(), "login.html", {}, locale="fr")
