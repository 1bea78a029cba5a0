"""A reviewer works through a queue with the keyboard only; the round page draws the trend chart
with interval bars; the case triage page shows the signals and takes an override. Under the
strict CSP, with screenshots."""

from __future__ import annotations

import pytest

from review import services
from review.models import CaseSource, CaseStatus, ReviewItem, ReviewVerdict
from tenants.models import Role
from tests.browser.csp import violations, watch_csp
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory
from tests.review.factories import add_training_samples, live_need, log_stream, log_sync, texts

pytestmark = pytest.mark.browser


@pytest.fixture
def setup(transactional_db, tenant_a):
    need, version = live_need(tenant_a)
    log_stream(need, version, {"t.a": texts("a", 20), "t.b": texts("b", 6), "t.c": texts("c", 2)})
    add_training_samples(
        version,
        [
            ("article about a topics and news", ["t.a"]),
            ("article about b topics and news", ["t.b"]),
        ],
    )
    user = UserFactory(username="rita")
    MembershipFactory(user=user, tenant=tenant_a, role=Role.ADMIN)
    return need, user


def test_reviewer_works_through_the_queue_with_the_keyboard(live_server, page, screenshot, setup):
    need, user = setup
    review_round = services.round_start(need=need, sample_size=4)
    console = watch_csp(page)
    login(page, live_server, "rita")
    page.goto(f"{live_server.url}/review/rounds/{review_round.pk}/queue/")
    page.wait_for_selector("#review-item")
    screenshot(page, "review_queue")

    def answer(key: str) -> str:
        current = page.locator("#review-item").get_attribute("data-item")
        page.keyboard.press(key)
        page.wait_for_function(
            "(id) => !document.querySelector('#review-item') ||"
            " document.querySelector('#review-item').dataset.item !== id",
            arg=current,
        )
        return current

    first = answer("c")  # confirm
    # Pick label 3 (t.c) with its number key, then X to correct with it.
    page.keyboard.press("3")
    assert page.locator("input[name=labels][data-shortcut='3']").is_checked()
    second = answer("x")
    answer("u")
    answer("s")
    page.wait_for_selector("#queue-empty")
    assert "3 of 4 items done" in page.locator("#queue-progress").inner_text()
    answers = dict(
        ReviewVerdict.objects.for_tenant(need.tenant)
        .filter(item__round=review_round, reviewer=user)
        .values_list("item_id", "decision")
    )
    assert answers[int(first)] == "confirm"
    # Picking the predicted label itself is a confirmation.
    predicted = ReviewItem.objects.for_tenant(need.tenant).get(pk=int(second)).predicted_labels
    assert answers[int(second)] == ("confirm" if predicted == ["t.c"] else "correct")
    assert sorted(answers.values())[-2:] == ["skip", "unsure"]
    assert ReviewVerdict.objects.for_tenant(need.tenant).get(item_id=int(second)).labels == ["t.c"]
    assert violations(page, console) == []
    screenshot(page, "review_queue_done")


def test_round_page_draws_the_trend_with_interval_bars(live_server, page, screenshot, setup):
    need, user = setup
    for right in (3, 5):
        review_round = services.round_start(need=need, sample_size=6)
        for i, item in enumerate(review_round.items.order_by("position")):
            if i < right:
                services.verdict_record(item=item, decision="confirm", api_key_prefix="k")
            else:
                other = next(k for k in ("t.a", "t.b", "t.c") if k not in item.predicted_labels)
                services.verdict_record(
                    item=item, decision="correct", labels=[other], api_key_prefix="k"
                )
        services.round_close(review_round=review_round)
    console = watch_csp(page)
    login(page, live_server, "rita")
    page.goto(f"{live_server.url}/review/rounds/{review_round.pk}/")
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 1")
    chart = page.evaluate(
        """() => { const c = Chart.getChart(document.getElementById('chart-trend'));
               const px = c.ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
               let ink = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
               return {labels: c.data.labels, sets: c.data.datasets.map(d => d.label),
                       bars: c.data.datasets[0].data, ink: ink}; }"""
    )
    assert len(chart["labels"]) == 2 and chart["ink"] > 1000
    assert chart["sets"] == [
        "95 % interval",
        "reviewed accuracy",
        "target",
        "offline test accuracy",
    ]
    assert all(low < high for low, high in chart["bars"])
    assert "Accuracy" in page.locator("#accuracy").inner_text()
    assert violations(page, console) == []
    screenshot(page, "review_round")
    # The need's page: the same trend, the rounds and the per-label gaps.
    page.goto(f"{live_server.url}/review/needs/{need.slug}/")
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 1")
    assert page.locator("#need-rounds tbody tr").count() == 2
    assert page.locator("#gaps-table tbody tr").count() == 3
    assert violations(page, console) == []
    screenshot(page, "review_need")


def test_case_triage_page(live_server, page, screenshot, setup):
    need, user = setup
    case = services.case_create(
        need=need,
        data={
            "text": "article about b topics and news today",
            "predicted_labels": ["t.a"],
            "scores": {"t.a": 0.55, "t.b": 0.4},
            "suggested_labels": ["t.b"],
        },
        source=CaseSource.REPORT,
        reported_by=user,
    )
    console = watch_csp(page)
    login(page, live_server, "rita")
    page.goto(f"{live_server.url}/review/cases/{case.pk}/")
    signals = page.locator("#signals").inner_text()
    assert "Model confidence" in signals and "0.550" in signals
    assert "Similarity to the nearest training text" in signals
    assert page.locator("#cause-select").input_value() == "model_error"  # pre-filled
    screenshot(page, "review_case_triage")
    page.select_option("#cause-select", "data_change")  # people override it
    page.click("#accept-button")
    page.wait_for_selector("#case-accepted")
    case.refresh_from_db()
    assert case.status == CaseStatus.ACCEPTED and case.cause == "data_change"
    assert violations(page, console) == []
    screenshot(page, "review_case_accepted")


def test_sync_review_settings_and_a_sync_item_in_the_queue(live_server, page, screenshot, setup):
    """An admin opts the need in to keeping sync texts from its settings form; a round over a
    need whose traffic is sync calls hands the reviewer a sync item, marked as such."""
    need, user = setup
    console = watch_csp(page)
    login(page, live_server, "rita")
    page.goto(f"{live_server.url}/review/needs/{need.slug}/")
    page.fill("input[name=sync_review_share]", "0.2")
    page.fill("input[name=sync_text_retention_days]", "7")
    screenshot(page, "review_sync_settings")
    page.click("#review-settings button[type=submit]")
    page.wait_for_url(f"**/review/needs/{need.slug}/")
    config = services.config_for(need)
    assert (config.sync_review_share, config.sync_text_retention_days) == (0.2, 7)
    assert page.locator("input[name=sync_review_share]").input_value() == "0.2"

    calls, version = live_need(need.tenant, slug="calls")
    log_sync(calls, version, {"t.a": ["a kept sync call"], "t.b": ["b kept sync call"]}, share=0.2)
    review_round = services.round_start(need=calls, sample_size=5)
    page.goto(f"{live_server.url}/review/rounds/{review_round.pk}/queue/")
    page.wait_for_selector("#review-item")
    assert page.locator("#review-channel").get_attribute("data-channel") == "sync"
    assert "synchronous call" in page.locator("#review-channel").inner_text()
    assert "kept sync call" in page.locator("#review-text").inner_text()
    assert violations(page, console) == []
    screenshot(page, "review_queue_sync_item")
