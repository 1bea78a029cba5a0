"""The comparison page in a real browser: tables, the guard, two drawn charts, no CSP
violation, and a promotion by click."""

from __future__ import annotations

import pytest

from registry.selectors import serving_version
from tests.browser.csp import violations, watch_csp
from tests.conftest import login
from tests.retraining.conftest import (  # noqa: F401 (fixtures)
    need_with_champion,
    run_retrain,
    shifted_need,
    topics,
)

pytestmark = pytest.mark.browser


def test_comparison_page_draws_charts_and_promotes(
    live_server,
    page,
    screenshot,
    alice,
    shifted_need,  # noqa: F811 (fixture imported above)
    run_retrain,  # noqa: F811 (fixture imported above)
):
    retrain = run_retrain(shifted_need)
    console = watch_csp(page)
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/retraining/")
    page.click(f"#retrains a:has-text('{retrain.pk}')")
    page.wait_for_url(f"**/retraining/{retrain.pk}/")
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 2")
    assert violations(page, console) == []
    assert "passes" in page.locator("#guard h2").inner_text()
    fresh = page.locator("#set-fresh").inner_text()
    assert "McNemar" in fresh and "news.tech" not in fresh.split("Label")[0]
    drawn = page.evaluate(
        """() => Array.from(document.querySelectorAll('canvas')).map(c => {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let painted = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) painted++;
             return painted; })"""
    )
    assert len(drawn) == 2 and all(p > 1000 for p in drawn)
    screenshot(page, "retraining_comparison")

    page.click("#promote-form button[type=submit]")
    page.wait_for_url(f"**/retraining/{retrain.pk}/")
    assert "now the production version" in page.content()
    assert serving_version(shifted_need).pk == retrain.challenger_id
    screenshot(page, "retraining_promoted")


def test_a_retrain_with_another_algorithm_from_the_start_form(
    live_server,
    page,
    screenshot,
    alice,
    shifted_need,  # noqa: F811 (fixture imported above)
):
    console = watch_csp(page)
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/retraining/")
    page.select_option("#retrain-algorithm", "complement-nb")
    page.fill("#retrain-params", '{"classifier": {"alpha": 0.1}}')
    screenshot(page, "retraining_start_algorithm")
    page.click("form[action$='/retraining/start/'] button[type=submit]")
    page.wait_for_url("**/retraining/*/", timeout=120_000)
    line = page.locator("#retrain-algorithms").inner_text()
    assert "tfidf-logreg" in line and "complement-nb" in line
    assert violations(page, console) == []
    screenshot(page, "retraining_comparison_algorithm")
