"""After the monitoring demo, the dashboards show grouped alerts people can read, and real
Chart.js charts with the tenant's label names, lines above bars and titled axes."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from tenants.models import Need, Role, Tenant
from tests.browser.csp import violations, watch_csp
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory, set_need_labels

pytestmark = pytest.mark.browser


def test_dashboard_after_demo_shows_drift_alert_and_charts(
    live_server, page, browser, screenshot, staff_user
):
    out = StringIO()
    call_command("monitoring_demo", "--days", "10", "--shift-days", "3", stdout=out)
    assert "open alerts" in out.getvalue()
    user = UserFactory(username="monica")
    MembershipFactory(user=user, tenant=Tenant.objects.get(slug="tenant-a"), role=Role.ADMIN)
    # The tenant's own names for two labels (the others fall back to the taxonomy's names).
    need = Need.objects.dangerously_unscoped().get(tenant__slug="tenant-a", slug="news-topics")
    set_need_labels(
        need, label_mapping={"娱乐 Entertainment": "news.entertainment", "科技 Tech": "news.tech"}
    )

    console = watch_csp(page)
    login(page, live_server, "monica")
    page.goto(f"{live_server.url}/monitoring/")
    overview = page.locator("#needs-overview")
    assert "News topics" in overview.inner_text()
    open_alerts = page.locator("#open-alerts")
    text = open_alerts.inner_text()
    # One alert per problem, in words, with the tenant's names (the global key in a tooltip).
    assert "娱乐 Entertainment fell from" in text
    assert page.locator("#open-alerts .label-name[title='news.entertainment']").count() >= 1
    assert "{'" not in text and '{"' not in text
    rules = page.locator("#open-alerts tr.alert-row").all_inner_texts()
    assert len(rules) == len(set(rules)) and len(rules) <= 6
    screenshot(page, "monitoring_overview")

    page.click("#needs-overview a:has-text('News topics')")
    page.wait_for_url("**/monitoring/needs/news-topics/")
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 5")
    assert violations(page, console) == []  # Chart.js and dashboard.js under the CSP
    kinds = page.locator("#need-alerts tr.alert-row").all_inner_texts()
    assert sum("A label's share changed" in row and "Entertainment" in row for row in kinds) == 1
    assert any("CTR falling" in row and "科技 Tech" in row for row in kinds)
    assert page.locator("#need-alerts svg.sparkline").count() >= 1
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
    # Lines above bars; both axes of every chart titled; the tenant's names; one colour per label.
    volume = page.evaluate(
        """() => Chart.getChart(document.getElementById('chart-volume')).data.datasets
               .map(d => ({type: d.type, order: d.order}))"""
    )
    bars = [d["order"] for d in volume if d["type"] == "bar"]
    lines = [d["order"] for d in volume if d["type"] == "line"]
    assert bars and lines and min(bars) > max(lines)  # higher order is drawn first (below)
    titles = page.evaluate(
        """() => [...document.querySelectorAll('.charts canvas')].map(c =>
               Object.values(Chart.getChart(c).options.scales)
                 .map(s => s.title && s.title.display && s.title.text))"""
    )
    assert all(all(titles_of_chart) for titles_of_chart in titles), titles
    colors = page.evaluate(
        """() => ['chart-shares', 'chart-ctr'].map(id =>
               Object.fromEntries(Chart.getChart(document.getElementById(id)).data.datasets
                 .filter(d => !d.label.endsWith('(baseline)'))
                 .map(d => [d.label, d.borderColor])))"""
    )
    assert "娱乐 Entertainment" in colors[0] and "news.entertainment" not in colors[0]
    assert colors[1] and all(colors[0][name] == color for name, color in colors[1].items())
    assert "Week over week" in page.locator("#week-over-week").inner_text()
    screenshot(page, "monitoring_need_news_topics")

    page.locator("#need-alerts details.evidence").first.click()
    screenshot(page, "monitoring_need_news_topics_alerts")

    # Acknowledge the label alert in place with a note (htmx swaps the row).
    row = page.locator("#need-alerts tr.alert-label_share").first
    row.locator(".ack-form:not(.snooze-form) input[name=note]").fill("desk notified")
    row.locator(".ack-form:not(.snooze-form) .ack-button").click()
    page.wait_for_selector(
        "#need-alerts tr.alert-label_share >> nth=0 >> text=acknowledged by monica"
    )
    assert "desk notified" in page.locator("#need-alerts tr.alert-label_share").first.inner_text()

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
        assert "A label's share changed" in admin_page.locator("#admin-alerts").inner_text()
        screenshot(admin_page, "monitoring_admin_dashboard")
    finally:
        context.close()
