import pytest

from tests.conftest import login

pytestmark = pytest.mark.browser


def test_user_logs_in_and_sees_the_home_page(live_server, page, alice, screenshot):
    login(page, live_server, "alice")
    assert page.locator("h1").inner_text().startswith("Welcome, alice")
    assert page.locator(".tenant-badge").inner_text() == "Alpha News"
    # The vendored CSS and htmx load from our own static files.
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("getComputedStyle(document.body).fontFamily") != ""
    screenshot(page, "home")
    page.click("summary")
    page.click("#logout-button")
    page.wait_for_url(f"{live_server.url}/login/")
