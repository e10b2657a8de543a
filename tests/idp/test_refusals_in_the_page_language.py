"""Refusals read in the reader's language, with their values filled (issue 19).

A refusal's message is a msgid with ``%(name)s`` parameters; the page translates it, then fills
it, and a status given as a parameter (``core.errors.Phrase``) is shown as its label. Checked
on the real app: the app registration form, the admin error page, and the unit refusals in
the text every page and the admin API show (``PageRenderer.refusal_text``), in Vietnamese
and in English. tests/core/test_error_messages_translated.py checks that every message has a
Vietnamese translation at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient

from core.db import transaction
from core.errors import DomainError
from core.web.i18n import N_
from idp import clients, units
from idp.models import Client, Unit
from idp.runtime import IdpRuntime
from idp.web.admin_pages.guard import error_page
from tests.idp.test_admin_pages import WARD_A, WARD_B, World, post, sign_in, world
from tests.idp.test_pages_in_vietnamese import problems_in, visible_text

__all__ = ["world"]  # the fixture, imported for pytest

PROVINCE = "15"  # Lào Cai, the province of WARD_A and WARD_B


def refusal(runtime: IdpRuntime, action: Callable[[Session], object]) -> DomainError:
    """The DomainError ``action`` raises (its transaction rolled back)."""
    with pytest.raises(DomainError) as raised, transaction(runtime.session_factory) as session:
        action(session)
    return raised.value


def unit(session: Session, code: str) -> Unit:
    return session.scalars(select(Unit).where(Unit.code == code)).one()


def in_both(runtime: IdpRuntime, error: DomainError) -> tuple[str, str]:
    return runtime.pages.refusal_text("vi", error), runtime.pages.refusal_text("en", error)


def merge_ward_b_into_ward_a(runtime: IdpRuntime) -> None:
    with transaction(runtime.session_factory) as session:
        units.merge(
            session=session,
            clock=runtime.clock,
            actor="test",
            source=unit(session, WARD_B),
            target=unit(session, WARD_A),
            reason="Sáp nhập theo nghị quyết",
        )


def alert_text(html: str) -> str:
    """What the error page's alert says, as a reader sees it."""
    alert = re.search(r'role="alert">(.*?)</div>', html, re.S)
    assert alert is not None, html
    return visible_text(alert.group(1))


def test_unit_refusals_name_the_unit_and_its_status_in_both_languages(
    runtime: IdpRuntime, world: World
) -> None:
    clock = runtime.clock
    merge_ward_b_into_ward_a(runtime)

    renamed_merged = refusal(
        runtime,
        lambda s: units.rename(
            session=s, clock=clock, actor="t", unit=unit(s, WARD_B), new_name="Xã Mới", reason="x"
        ),
    )
    assert in_both(runtime, renamed_merged) == (
        f"Đơn vị {WARD_B} không còn hoạt động (Đã sáp nhập): "
        "chỉ đổi tên được đơn vị đang hoạt động.",
        f"Unit {WARD_B} is no longer active (Merged): only an active unit can be renamed.",
    )

    across_levels = refusal(
        runtime,
        lambda s: units.merge(
            session=s,
            clock=clock,
            actor="t",
            source=unit(s, WARD_A),
            target=unit(s, PROVINCE),
            reason="x",
        ),
    )
    vietnamese, english = in_both(runtime, across_levels)
    assert vietnamese.startswith(f"Đơn vị {WARD_A} và {PROVINCE} không cùng cấp (")
    assert english.startswith(f"Units {WARD_A} and {PROVINCE} are not of the same level (")
    # No stored code: "ward" and "province" are shown as words, not as the level column.
    assert "ward" not in vietnamese and "province" not in vietnamese

    with transaction(runtime.session_factory) as session:
        attached = units.attached_account_count(session, unit(session, WARD_A))
    still_attached = refusal(
        runtime,
        lambda s: units.dissolve(
            session=s, clock=clock, actor="t", unit=unit(s, WARD_A), reason="x"
        ),
    )
    vietnamese, english = in_both(runtime, still_attached)
    assert vietnamese.startswith(f"Đơn vị {WARD_A} vẫn còn {attached} tài khoản:")
    assert english.startswith(f"Unit {WARD_A} still has {attached} account(s) attached:")

    unknown = refusal(runtime, lambda s: units.get_by_code(s, "99999"))
    assert in_both(runtime, unknown) == (
        "Không có đơn vị nào mã 99999.",
        "No unit with code 99999.",
    )
    # Logs and the English CLI read the same English text (str() fills the parameters).
    assert str(unknown) == "No unit with code 99999."


def test_client_id_refusals_in_both_languages(runtime: IdpRuntime) -> None:
    def register(session: Session, client_id: str) -> object:
        return clients.create(
            session=session,
            clock=runtime.clock,
            actor="test",
            name="Một cửa",
            redirect_uris=["https://motcua.example.vn/cb"],
            client_id=client_id,
        )

    malformed = refusal(runtime, lambda s: register(s, "dấu cách không được"))
    assert malformed.field == "client_id"
    assert in_both(runtime, malformed) == (
        "Mã ứng dụng (client_id) gồm 1 đến 64 ký tự: chữ cái, chữ số hoặc . _ ~ : / -.",
        "A client_id is 1 to 64 letters, digits or . _ ~ : / - characters.",
    )
    with transaction(runtime.session_factory) as session:
        register(session, "motcua")
    taken = refusal(runtime, lambda s: register(s, "motcua"))
    assert in_both(runtime, taken) == (
        "Mã ứng dụng (client_id) này đã được đăng ký.",
        "That client_id is already registered.",
    )


def test_app_registration_form_refused_in_vietnamese_and_in_english(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    sign_in(web, runtime, world.system)
    form = {
        "name": "Ứng dụng thử",
        "grant_types": "authorization_code",
        "redirect_uris": "https://ok.example.vn/cb",
        "scope": "openid danh_ba",
    }
    vietnamese = post(web, "/admin/clients/new", form, form_page="/admin/clients/new")
    assert vietnamese.status_code == 400
    problem = re.search(r'id="scope-error">([^<]*)<', vietnamese.text)
    assert problem is not None, vietnamese.text
    assert problem.group(1).startswith("Không có phạm vi “danh_ba”; máy chủ này có các phạm vi: ")
    assert "Unknown scope" not in vietnamese.text

    english = post(web, "/admin/clients/new?lang=en", form, form_page="/admin/clients/new")
    assert english.status_code == 400
    problem = re.search(r'id="scope-error">([^<]*)<', english.text)
    assert problem is not None and problem.group(1).startswith(
        "Unknown scope “danh_ba”; this server offers "
    )
    with transaction(runtime.session_factory) as session:
        assert session.scalars(select(Client)).all() == []


def test_admin_error_page_shows_a_refusal_in_the_page_language(
    web: TestClient, runtime: IdpRuntime, world: World
) -> None:
    sign_in(web, runtime, world.system)
    for path, expected in (
        ("/admin/officials/khong.ton.tai", "Không có nội dung ở đây"),
        ("/admin/officials/khong.ton.tai?lang=en", "There is nothing here"),
    ):
        page = web.get(path)
        assert page.status_code == 404
        assert expected in alert_text(page.text)


def test_error_page_fills_a_refusals_parameters_and_labels(
    app: Starlette, runtime: IdpRuntime, world: World
) -> None:
    merge_ward_b_into_ward_a(runtime)
    merged_again = refusal(
        runtime,
        lambda s: units.dissolve(
            session=s, clock=runtime.clock, actor="t", unit=unit(s, WARD_B), reason="x"
        ),
    )
    request = Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/admin",
            "query_string": b"",
            "headers": [],
            "app": app,
        }
    )
    shown = {}
    for locale in ("vi", "en"):
        page = error_page(
            request,
            status_code=merged_again.status_code,
            title=N_("Request refused"),
            message=merged_again,
            locale=locale,
        )
        html = bytes(page.body).decode()
        shown[locale] = alert_text(html)
        assert "%(" not in html
    assert problems_in("error page", shown["vi"]) == []
    assert shown == {
        "vi": f"Đơn vị {WARD_B} không còn hoạt động (Đã sáp nhập): "
        "chỉ giải thể được đơn vị đang hoạt động.",
        "en": f"Unit {WARD_B} is no longer active (Merged): only an active unit can be dissolved.",
    }
