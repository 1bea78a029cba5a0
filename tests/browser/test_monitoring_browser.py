"""After the monitoring demo, the dashboards show the drift alert and real Chart.js charts."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from tenants.models import Role, Tenant
from tests.browser.csp import violations, watch_csp
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.browser


def test_dashboard_after_demo_shows_drift_alert_and_charts(
    live_server, page, browser, screenshot, staff_user
):
    out = StringIO()
    call_command("monitoring_demo", "--days", "10", "--shift-days", "3", stdout=out)
    assert "open alerts" in out.getvalue()
    user = UserFactory(username="monica")
    MembershipFactory(user=user, tenant=Tenant.objects.get(slug="tenant-a"), role=Role.ADMIN)

    console = watch_csp(page)
    login(page, live_server, "monica")
    page.goto(f"{live_server.url}/monitoring/")
    overview = page.locator("#needs-overview")
    assert "News topics" in overview.inner_text()
    open_alerts = page.locator("#open-alerts")
    assert "Label distribution drift" in open_alerts.inner_text()
    assert "news.entertainment" in open_alerts.inner_text()  # the vanished rare class
    screenshot(page, "monitoring_overview")

    page.click("#needs-overview a:has-text('News topics')")
    page.wait_for_url("**/monitoring/needs/news-topics/")
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 5")
    assert violations(page, console) == []  # Chart.js and dashboard.js under the CSP
    kinds = page.locator("#need-alerts tbody tr").all_inner_texts()
    assert any("Label distribution drift" in row for row in kinds)
    assert any("Rare class missing" in row for row in kinds)
    assert any("CTR falling" in row and "news.tech" in row for row in kinds)
    # Every chart canvas has a size and was actually drawn on (not a blank bitmap).
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('.charts canvas')].map(c => {
               const ctx = c.getContext('2d');
               const px = ctx.getImageData(0, 0, c.width, c.height).data;
               let ink = 0;
               for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
               return {id: c.id, w: c.width, h: c.height, ink: ink,
                       datasets: Chart.getChart(c).data.datasets.length};
           })"""
    )
    assert [c["id"] for c in drawn] == [
        "chart-shares",
        "chart-drift",
        "chart-volume",
        "chart-ctr",
        "chart-negative",
    ]
    for chart in drawn:
        assert chart["w"] > 100 and chart["h"] > 100 and chart["ink"] > 1000, chart
        assert chart["datasets"] >= 2, chart
    # The drift chart carries the threshold lines.
    labels = page.evaluate(
        "() => Chart.getChart(document.getElementById('chart-drift')).data.datasets.map(d => d.label)"
    )
    assert labels == ["PSI", "PSI threshold", "JS distance", "JS threshold"]
    assert "Week over week" in page.locator("#week-over-week").inner_text()
    screenshot(page, "monitoring_need_news_topics")

    # Acknowledge the newest drift alert in place (htmx swaps the row).
    row = page.locator("#need-alerts tr.alert-drift").first
    row.locator(".ack-button").click()
    page.wait_for_selector("#need-alerts tr.alert-drift >> nth=0 >> text=acknowledged by monica")

    # Platform staff see every need on the admin dashboard.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    admin_page = context.new_page()
    try:
        admin_page.goto(f"{live_server.url}/admin/login/")
        admin_page.fill("input[name=username]", "staff")
        admin_page.fill("input[name=password]", "password")
        admin_page.click("input[type=submit]")
        admin_page.click("a:has-text('Dashboard (all needs)')")
        admin_page.wait_for_function(
            "() => window.Chart && Object.keys(Chart.instances).length === 1"
        )
        needs = admin_page.locator("#admin-needs").inner_text()
        assert "news-topics" in needs and "zh-sentiment" in needs
        assert "Label distribution drift" in admin_page.locator("#admin-alerts").inner_text()
        screenshot(admin_page, "monitoring_admin_dashboard")
    finally:
        context.close()
