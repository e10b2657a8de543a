"""The shared header and the admin menu in headless Chromium: on a 375 px phone the admin menu
is a closed disclosure, so the page's heading starts near the top, and it opens on a tap (no
script of ours: the page's CSP allows none)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from idp.runtime import IdpRuntime
from tests.browser.test_admin_browser import sign_in
from tests.idp.test_admin_pages import World

# The same units, officials and admins as the page tests.
from tests.idp.test_admin_pages import world as world

NARROW_PHONE = {"width": 375, "height": 740}
# Under the header (emblem and title, language switch, the areas and signing out) and the
# closed menu; ~260 px here, where the open menu alone took ~300 px before (issue 19).
HEADING_TOP_LIMIT = 280


def test_admin_menu_is_collapsed_on_a_phone_and_opens_on_tap(
    page: Page, provider: str, runtime: IdpRuntime, world: World, shoot: Callable[[str], None]
) -> None:
    sign_in(page, runtime, provider, world.system)
    page.set_viewport_size(NARROW_PHONE)
    page.goto(f"{provider}/admin")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_be_visible()
    box = heading.bounding_box()
    assert box is not None
    assert box["y"] < HEADING_TOP_LIMIT, box
    menu = page.locator("details.admin-nav--narrow")
    expect(menu).to_be_visible()
    expect(menu).not_to_have_attribute("open", "")
    expect(page.locator("nav.admin-nav--wide")).to_be_hidden()
    officials = menu.get_by_role("link", name="Cán bộ", exact=True)
    expect(officials).to_be_hidden()
    # The shared header names who is signed in and offers signing out.
    expect(page.get_by_role("link", name="Đăng xuất", exact=True)).to_be_visible()

    menu.locator("summary").click()
    expect(officials).to_be_visible()
    officials.click()
    expect(page).to_have_url(f"{provider}/admin/officials")

    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.locator("nav.admin-nav--wide")).to_be_visible()
    expect(page.locator("details.admin-nav--narrow")).to_be_hidden()
    shoot("admin-officials")
