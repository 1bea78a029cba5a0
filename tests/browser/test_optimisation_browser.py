"""Optimise a need from the portal as its admin would, and read the trade-off charts."""

from __future__ import annotations

import pytest

from tests.browser.csp import violations, watch_csp
from tests.conftest import login
from tests.optimisation import conftest as optimisation_fixtures

# The optimisation tests' fixtures, shared here (a need on the word-order data set).
fast_measurement = optimisation_fixtures.fast_measurement
order_set = optimisation_fixtures.order_set
order_snapshot = optimisation_fixtures.order_snapshot
need = optimisation_fixtures.need

pytestmark = pytest.mark.browser

_INK = """() => [...document.querySelectorAll('.charts canvas')].map(c => {
    const ctx = c.getContext('2d');
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
    const chart = Chart.getChart(c);
    return {id: c.id, w: c.width, h: c.height, ink: ink,
            labels: chart.data.datasets.map(d => d.label),
            counts: chart.data.datasets.map(d => d.data.length)};
})"""


def _start(page, live_server, need, *, latency: str, trials: str) -> None:
    page.goto(f"{live_server.url}/tenant/needs/{need.slug}/")
    page.click("#need-optimise")
    page.wait_for_url(f"**/optimisation/needs/{need.slug}/")
    page.fill("input[name=latency_budget_ms]", latency)
    page.fill("input[name=size_budget_kb]", "100000")
    page.fill("input[name=time_limit_seconds]", "60")
    page.fill("input[name=max_trials]", trials)
    page.fill("input[name=target_requests_per_s]", "150")
    # The test server runs Celery eagerly: the run finishes inside this request.
    with page.expect_navigation(timeout=180_000):
        page.click("#start-optimisation", no_wait_after=True)


def test_admin_optimises_a_need_and_sees_the_trade_off_charts(
    live_server, page, screenshot, alice, need
):
    console = watch_csp(page)
    login(page, live_server, "alice")
    _start(page, live_server, need, latency="1000", trials="8")
    assert "/optimisation/runs/" in page.url
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 2")
    assert violations(page, console) == []
    assert "Succeeded" in page.locator("#run-status").inner_text()
    charts = page.evaluate(_INK)
    assert [c["id"] for c in charts] == ["chart-latency", "chart-size"]
    for chart in charts:
        assert chart["w"] > 100 and chart["h"] > 100 and chart["ink"] > 2000, chart
        counts = dict(zip(chart["labels"], chart["counts"], strict=True))
        assert counts["chosen variant"] == 1 and counts["default model"] == 1
        assert counts["budget"] == 2 and counts["Pareto front (F1, p99, size)"] >= 1
    front_rows = page.locator("#front tbody tr")
    assert front_rows.count() >= 1
    assert page.locator("#front tr.chosen").count() == 1
    assert "150.0 /s" in page.locator("#capacity").inner_text()
    screenshot(page, "optimisation_run_charts")
    page.click("#registered-version")
    page.wait_for_url("**/versions/**")
    assert page.locator("#deployment-budgets").count() == 1
    screenshot(page, "optimisation_model_card")


def test_nothing_fits_page_explains_the_closest_misses(live_server, page, screenshot, alice, need):
    console = watch_csp(page)
    login(page, live_server, "alice")
    _start(page, live_server, need, latency="0.001", trials="4")
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 2")
    assert violations(page, console) == []
    text = page.locator("#nothing-fits").inner_text()
    assert "0.001 ms" in text and "Closest on latency" in text and "Closest on size" in text
    assert page.locator("#registered-version").count() == 0
    screenshot(page, "optimisation_nothing_fits")
