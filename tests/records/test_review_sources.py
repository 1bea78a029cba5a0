"""Review rounds (with their accuracy intervals) and cases join the timeline and the
retrospective draft, derived from the review app's rows."""

from __future__ import annotations

import hashlib

import pytest
from django.utils import timezone

from records import selectors, timeline
from review.models import Case, ReviewRound

pytestmark = pytest.mark.django_db


def _case(need, n: int, status: str = "new") -> Case:
    text = f"case text {n}"
    return Case.objects.create(
        tenant=need.tenant,
        need=need,
        text=text,
        text_hash=hashlib.sha256(text.encode()).hexdigest(),
        source="review_correction",
        status=status,
    )


def test_review_rounds_and_cases_are_on_the_timeline(live_need, tenant_a, alice, client):
    now = timezone.now()
    review = ReviewRound.objects.create(
        tenant=tenant_a,
        need=live_need,
        trigger="manual",
        status="closed",
        window_start=now,
        window_end=now,
        sample_size=120,
        created_by=alice,
        closed_at=now,
        accuracy_target=0.9,
        result={"accuracy": {"estimate": 0.85, "low": 0.78, "high": 0.9, "n": 120}},
        signoff="retrain",
        signoff_at=now,
        signoff_by=alice,
    )
    for n in range(3):
        _case(live_need, n, status="accepted" if n else "rejected")
    entries = timeline.build(need=live_need, tenant=tenant_a)
    closed = next(e for e in entries if e.kind == "review_closed")
    assert "accuracy 85.0% (95% interval 78.0–90.0%), target 90%" in closed.title
    assert closed.url == f"/review/rounds/{review.pk}/"
    assert any(e.kind == "review_signoff" and e.actor == "alice" for e in entries)
    cases = next(e for e in entries if e.kind == "cases")
    assert cases.metrics == {"cases": 3, "accepted": 2}
    client.force_login(alice)
    assert client.get(closed.url).status_code == 200
    assert client.get(cases.url).status_code == 200

    draft = selectors.retrospective_draft(tenant=tenant_a, need=live_need, milestone="retrain")
    assert "**Cases:** 3 reported, 2 accepted as training samples, 1 rejected." in draft["body"]
    assert "Review rounds closed:** 1" in draft["body"]


def test_another_tenants_cases_stay_out(live_need, tenant_a, tenant_b):
    from tests.monitoring.factories import make_monitored_need

    other, _ = make_monitored_need(tenant=tenant_b, slug="b-need", baseline={"news.sport": 1})
    _case(other, 1)
    assert not any(e.kind == "cases" for e in timeline.build(need=live_need, tenant=tenant_a))


def test_a_problem_links_a_case_of_its_own_need_only(api, alice, live_need, tenant_b, client):
    from tests.monitoring.factories import make_monitored_need

    other, _ = make_monitored_need(tenant=tenant_b, slug="b-need", baseline={"news.sport": 1})
    foreign = _case(other, 1)
    own = _case(live_need, 2)
    api.force_authenticate(alice)
    url = f"/api/v1/records/{live_need.slug}/items/"
    refused = api.post(url, {"kind": "problem", "title": "x", "case": foreign.pk}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_link"
    created = api.post(
        url, {"kind": "problem", "title": "Mis-tagged", "case": own.pk}, format="json"
    )
    assert created.status_code == 201 and created.json()["case"] == own.pk
    client.force_login(alice)
    page = client.get(f"/records/{live_need.slug}/").content.decode()
    assert f'href="/review/cases/{own.pk}/"' in page
