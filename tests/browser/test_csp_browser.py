"""The Content-Security-Policy allows no inline script, and the main pages run without a single
violation: every script (htmx, Chart.js, page behaviour) is a vendored static file."""

from __future__ import annotations

import pytest

from tenants.models import NeedStatus, Role
from tests.browser.csp import violations, watch_csp
from tests.conftest import login
from tests.factories import MembershipFactory, NeedFactory, TenantFactory
from tests.taxonomy.factories import build_news_tree, make_live_model, shared_label_sets

pytestmark = pytest.mark.browser

PORTAL_PAGES = [
    "/",
    "/taxonomy/",
    "/tenant/needs/",
    "/tenant/needs/new/",
    "/tenant/needs/desk/",
    "/tenant/keys/",
    "/models/",
    "/serving/try/",
    "/serving/batches/",
    "/monitoring/",
    "/api/docs/",
]
ADMIN_PAGES = ["/admin/", "/admin/tenants/need/", "/admin/monitoring/monitoringdashboard/"]


@pytest.fixture
def world(db, alice, tenant_a):
    build_news_tree()
    topics, _ = shared_label_sets()
    model = make_live_model(label_set=topics)
    NeedFactory(
        tenant=tenant_a, slug="desk", name="Desk", label_set=topics, model=model,
        status=NeedStatus.LIVE,
    )  # fmt: skip
    # A second tenant, so the switcher (a select that submits itself) is on every page.
    MembershipFactory(user=alice, tenant=TenantFactory(slug="other"), role=Role.VIEWER)


def test_main_pages_report_no_csp_violation(live_server, page, world, staff_user):
    console = watch_csp(page)
    login(page, live_server, "alice")
    for path in PORTAL_PAGES:
        response = page.goto(f"{live_server.url}{path}")
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
        assert violations(page, console) == [], path
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)  # its start-up script ran

    page.context.clear_cookies()
    login(page, live_server, "staff")
    for path in ADMIN_PAGES:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert violations(page, console) == [], path


def test_the_watch_sees_an_inline_script_the_policy_blocks(live_server, page, world):
    console = watch_csp(page)
    login(page, live_server, "alice")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.__ran = 1'; document.body.appendChild(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.__ran") is None
    assert any("script-src" in v for v in violations(page, console))


def test_portal_behaviour_moved_out_of_inline_handlers_still_works(
    live_server, page, world, tenant_a
):
    console = watch_csp(page)
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/tenant/needs/desk/")
    # data-confirm: dismissing the question keeps the need, accepting it retires the need.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#retire-need")
    page.wait_for_timeout(300)
    assert tenant_a.needs.get(slug="desk").status == NeedStatus.LIVE
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#retire-need")
    page.wait_for_load_state("networkidle")
    assert tenant_a.needs.get(slug="desk").status == NeedStatus.RETIRED
    # data-autosubmit: choosing another tenant in the switcher switches at once.
    page.goto(f"{live_server.url}/")
    with page.expect_navigation():
        page.select_option("#tenant-switcher select", "other")
    assert "You are working as Business unit other" in page.inner_text("main")
    assert violations(page, console) == []
