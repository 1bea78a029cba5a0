"""Retrains (with their champion/challenger comparison) and optimisation runs join the timeline,
derived from the retraining and optimisation apps' rows; every entry opens for the owner."""

from __future__ import annotations

import pytest
from django.utils import timezone

from optimisation.models import OptimisationRun, OptimisationTrial
from records import timeline
from registry.models import ModelVersion
from retraining.models import Retrain
from tests.records.conftest import add_version

pytestmark = pytest.mark.django_db


def _comparison(test: tuple[float, float], fresh: tuple[float, float]) -> dict:
    def part(pair, n):
        return {"n": n, "overall": {"macro_f1": {"champion": pair[0], "challenger": pair[1]}}}

    return {"test": part(test, 48), "fresh": part(fresh, 28)}


def test_retrains_and_optimisation_runs_are_on_the_timeline(live_need, tenant_a, alice, client):
    champion = ModelVersion.objects.for_tenant(tenant_a).get(
        registered_model=live_need.model, version=2
    )
    challenger = add_version(live_need, 3, f1=0.91, acc=0.92)
    now = timezone.now()
    retrain = Retrain.objects.create(
        tenant=tenant_a,
        need=live_need,
        trigger="signoff",
        status="promoted",
        champion=champion,
        challenger=challenger,
        accepted_added=53,
        comparison=_comparison((0.766, 0.915), (0.309, 0.622)),
        guard={"passed": True, "checks": []},
        created_by=alice,
        finished_at=now,
        promoted_by=alice,
        promoted_at=now,
    )
    run = OptimisationRun.objects.create(
        tenant=tenant_a,
        need=live_need,
        snapshot=champion.snapshot,
        status="succeeded",
        latency_budget_ms=5,
        size_budget_kb=512,
        time_limit_seconds=60,
        created_by=alice,
        finished_at=now,
    )
    run.chosen_trial = OptimisationTrial.objects.create(
        run=run, number=3, state="complete", macro_f1=0.87, p99_ms=1.5, size_bytes=300 * 1024
    )
    run.save()

    entries = timeline.build(need=live_need, tenant=tenant_a)
    made = next(e for e in entries if e.kind == "retrain")
    assert "53 accepted samples added" in made.title
    assert "test set macro-F1 0.766 → 0.915 (n=48)" in made.detail
    assert "fresh set macro-F1 0.309 → 0.622 (n=28)" in made.detail
    assert "guard passed" in made.detail
    promoted = next(e for e in entries if e.kind == "retrain_promoted")
    assert promoted.actor == "alice" and promoted.object_id == retrain.pk
    optimised = next(e for e in entries if e.kind == "optimisation_run")
    assert "budgets p99 5 ms, 512 KB" in optimised.title
    assert "macro-F1 0.870, p99 1.5 ms, 300 KB" in optimised.detail

    client.force_login(alice)
    for entry in (made, optimised):
        assert client.get(entry.url).status_code == 200, entry.url


def test_a_run_where_nothing_fits_says_why(live_need, tenant_a):
    champion = ModelVersion.objects.for_tenant(tenant_a).get(
        registered_model=live_need.model, version=2
    )
    OptimisationRun.objects.create(
        tenant=tenant_a,
        need=live_need,
        snapshot=champion.snapshot,
        status="nothing_fits",
        latency_budget_ms=0.01,
        size_budget_kb=1,
        time_limit_seconds=60,
        result={"nothing_fits": {"reason": "No variant is within 0.01 ms p99."}},
    )
    entry = next(
        e for e in timeline.build(need=live_need, tenant=tenant_a) if e.kind == "optimisation_run"
    )
    assert entry.detail == "No variant is within 0.01 ms p99."


def test_another_tenants_retrains_stay_out(live_need, tenant_a, tenant_b):
    from tests.monitoring.factories import make_monitored_need

    other, version = make_monitored_need(tenant=tenant_b, slug="b-need", baseline={"news.sport": 1})
    Retrain.objects.create(tenant=tenant_b, need=other, champion=version, accepted_added=7)
    kinds = [e.kind for e in timeline.build(need=live_need, tenant=tenant_a)]
    assert "retrain" not in kinds
