"""The optimisation API as an outsider uses it: an API key or a signed-in member, on one need."""

from __future__ import annotations

import pytest

from optimisation import services
from optimisation.models import OptimisationRun, OptimisationStatus
from tenants.models import ApiKeyScope
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory, NeedFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/needs/{}/optimisation-runs"
OK = {"latency_budget_ms": 500, "size_budget_kb": 50_000, "time_limit_seconds": 60, "max_trials": 3}


@pytest.fixture
def batch_key(tenant_a):
    return api_client_for_key(
        ApiKeyFactory(tenant=tenant_a, name="ops", scopes=[ApiKeyScope.READ, ApiKeyScope.BATCH])
    )


@pytest.fixture
def queued(need):
    return services.optimisation_run_start(need=need, time_limit_seconds=60, enqueue=False)


def test_start_runs_the_search_and_the_trials_and_front_are_readable(
    need, batch_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = batch_key.post(URL.format(need.slug), OK, format="json")
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    detail = batch_key.get(f"/api/v1/optimisation-runs/{run_id}").json()
    assert detail["status"] == OptimisationStatus.SUCCEEDED, detail["log"]
    assert detail["registered_version"] and detail["chosen_trial"] is not None
    assert detail["measurement"]["repetitions"] == 20
    trials = batch_key.get(f"/api/v1/optimisation-runs/{run_id}/trials").json()
    assert [t["number"] for t in trials] == list(range(len(trials))) and len(trials) == 3
    assert all(t["p99_ms"] > 0 and t["size_bytes"] > 0 for t in trials if t["state"] == "complete")
    front = batch_key.get(f"/api/v1/optimisation-runs/{run_id}/front").json()
    assert front and all(t["pareto"] for t in front)
    assert detail["chosen_trial"] in {t["number"] for t in front}
    listed = batch_key.get(URL.format(need.slug)).json()
    assert [r["id"] for r in listed] == [run_id]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"latency_budget_ms": 0}, "latency_budget_ms"),
        ({"latency_budget_ms": -5}, "latency_budget_ms"),
        ({"latency_budget_ms": 1e9}, "latency_budget_ms"),
        ({"size_budget_kb": 0}, "size_budget_kb"),
        ({"size_budget_kb": -1}, "size_budget_kb"),
        ({"size_budget_kb": 10**12}, "size_budget_kb"),
        ({"time_limit_seconds": 10**6}, "time_limit_seconds"),
        ({"time_limit_seconds": 0}, "time_limit_seconds"),
        ({"max_trials": 0}, "max_trials"),
        ({"target_requests_per_s": -3}, "target_requests_per_s"),
    ],
)
def test_bad_budgets_and_limits_are_a_400_and_start_nothing(need, batch_key, change, field):
    response = batch_key.post(URL.format(need.slug), {**OK, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in str(response.json())
    assert not OptimisationRun.objects.for_tenant(need.tenant).exists()


def test_time_limit_above_the_platform_maximum_is_refused_with_the_maximum(
    need, batch_key, settings
):
    settings.OPTIMISATION_MAX_SECONDS = 90
    response = batch_key.post(
        URL.format(need.slug), {**OK, "time_limit_seconds": 91}, format="json"
    )
    assert response.status_code == 400
    assert "90" in str(response.json())


def test_budgets_default_to_the_needs_and_a_need_without_budgets_needs_them(
    tenant_a, order_snapshot, batch_key, fast_measurement
):
    bare = NeedFactory(tenant=tenant_a, slug="bare", label_set=order_snapshot.revision.label_set)
    response = batch_key.post(URL.format("bare"), {"time_limit_seconds": 60}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "budget_required"
    assert bare.pk


def test_need_without_a_snapshot_is_a_400(tenant_a, order_set, batch_key):
    NeedFactory(
        tenant=tenant_a, slug="empty", label_set=order_set, latency_budget_ms=5, size_budget_kb=9
    )
    response = batch_key.post(URL.format("empty"), {"time_limit_seconds": 60}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_snapshot"


def test_a_second_concurrent_run_on_the_same_need_is_a_409(need, batch_key, queued):
    response = batch_key.post(URL.format(need.slug), OK, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "optimisation_running"


def test_cancel_through_the_api(need, batch_key, queued):
    response = batch_key.post(f"/api/v1/optimisation-runs/{queued.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == OptimisationStatus.CANCELLED
    again = batch_key.post(f"/api/v1/optimisation-runs/{queued.pk}/cancel")
    assert again.status_code == 409


def test_other_tenants_need_and_run_are_404(need, queued, api_b, charlie, api):
    assert api_b.get(URL.format(need.slug)).status_code == 404
    assert api_b.post(URL.format(need.slug), OK, format="json").status_code == 404
    for suffix in ("", "/trials", "/front"):
        assert api_b.get(f"/api/v1/optimisation-runs/{queued.pk}{suffix}").status_code == 404
    assert api_b.post(f"/api/v1/optimisation-runs/{queued.pk}/cancel").status_code == 404
    api.force_authenticate(charlie)
    assert api.get(f"/api/v1/optimisation-runs/{queued.pk}").status_code == 404
    queued.refresh_from_db()
    assert queued.status == OptimisationStatus.QUEUED


def test_viewer_reads_but_never_starts_or_cancels(need, queued, bob, api):
    api.force_authenticate(bob)
    assert api.get(f"/api/v1/optimisation-runs/{queued.pk}").status_code == 200
    assert api.post(URL.format(need.slug), OK, format="json").status_code == 403
    assert api.post(f"/api/v1/optimisation-runs/{queued.pk}/cancel").status_code == 403


def test_a_key_without_the_batch_scope_cannot_start_a_run(need, tenant_a):
    tagger = api_client_for_key(
        ApiKeyFactory(tenant=tenant_a, name="tagger", scopes=[ApiKeyScope.TAG, ApiKeyScope.READ])
    )
    assert tagger.get(URL.format(need.slug)).status_code == 200
    response = tagger.post(URL.format(need.slug), OK, format="json")
    assert response.status_code == 403
    assert not OptimisationRun.objects.for_tenant(need.tenant).exists()


def test_endpoints_are_in_the_openapi_schema(api, staff_user):
    api.force_authenticate(staff_user)
    schema = api.get("/api/schema/?format=json").json()
    for path in (
        "/api/v1/needs/{slug}/optimisation-runs",
        "/api/v1/optimisation-runs/{id}",
        "/api/v1/optimisation-runs/{id}/cancel",
        "/api/v1/optimisation-runs/{id}/trials",
        "/api/v1/optimisation-runs/{id}/front",
    ):
        assert path in schema["paths"], path
