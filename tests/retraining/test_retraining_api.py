"""The retraining REST API as an outsider: an API key or a signed-in member, tenant-scoped."""

from __future__ import annotations

import pytest

from registry.models import AliasEvent
from registry.selectors import serving_version
from retraining.models import Retrain, RetrainStatus
from tenants.models import ApiKeyScope
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory

RETRAINS = "/api/v1/retraining/retrains/"


def _policy_url(slug):
    return f"/api/v1/retraining/policies/{slug}/"


@pytest.fixture
def ready_retrain(shifted_need, run_retrain):
    retrain = run_retrain(shifted_need)
    assert retrain.status == RetrainStatus.READY, retrain.error
    return retrain


def test_a_key_starts_a_retrain_reads_the_comparison_and_promotes_through_the_guard(
    shifted_need, api_a, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        created = api_a.post(RETRAINS, {"need": "topics", "reason": "cases"}, format="json")
    assert created.status_code == 201, created.json()
    retrain_id = created.json()["id"]

    body = api_a.get(f"{RETRAINS}{retrain_id}/").json()
    assert body["status"] == "ready", body["error"]
    assert body["guard"]["passed"] is True
    assert body["comparison"]["fresh"]["n"] == 45
    assert set(body["comparison"]["test"]["overall"]) >= {"accuracy", "macro_f1"}
    assert "p_value" in body["comparison"]["fresh"]["flips"]

    promoted = api_a.post(f"{RETRAINS}{retrain_id}/promote/", {}, format="json")
    assert promoted.status_code == 200, promoted.json()
    assert serving_version(shifted_need).pk == body["challenger"]["id"]

    rolled = api_a.post(f"{RETRAINS}{retrain_id}/rollback/", {}, format="json")
    assert rolled.status_code == 200
    assert serving_version(shifted_need).pk == body["champion"]["id"]


def test_starting_while_one_is_in_flight_returns_that_one(shifted_need, api_a):
    first = api_a.post(RETRAINS, {"need": "topics"}, format="json")  # not committed: stays queued
    again = api_a.post(RETRAINS, {"need": "topics"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


def test_a_refused_promotion_is_409_with_a_stable_code_and_writes_nothing(
    shifted_need, run_retrain, api_a
):
    api_a.put(_policy_url("topics"), {"promotion_margin": 0.9}, format="json")
    retrain = run_retrain(shifted_need)
    events = AliasEvent.objects.count()
    response = api_a.post(f"{RETRAINS}{retrain.pk}/promote/", {}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "promotion_refused"
    assert any(check["code"] == "fresh_set_margin" for check in error["fields"]["guard"])
    assert AliasEvent.objects.count() == events


def test_an_api_key_cannot_override_the_guard(shifted_need, run_retrain, api_a):
    api_a.put(_policy_url("topics"), {"promotion_margin": 0.9}, format="json")
    retrain = run_retrain(shifted_need)
    response = api_a.post(
        f"{RETRAINS}{retrain.pk}/promote/",
        {"override_reason": "we really want it live"},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "override_requires_staff"


def test_staff_override_through_the_api_is_audited(
    shifted_need, run_retrain, api, staff_user, tenant_a
):
    from tests.factories import MembershipFactory

    MembershipFactory(user=staff_user, tenant=tenant_a, role="admin")
    api.force_authenticate(staff_user)
    api.put(_policy_url("topics"), {"promotion_margin": 0.9}, format="json")
    retrain = run_retrain(shifted_need)
    short = api.post(f"{RETRAINS}{retrain.pk}/promote/", {"override_reason": "ok"}, format="json")
    assert short.status_code == 400
    assert short.json()["error"]["code"] == "override_reason_too_short"
    response = api.post(
        f"{RETRAINS}{retrain.pk}/promote/",
        {"override_reason": "tech desk launch, accepted risk"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["override_reason"] == "tech desk launch, accepted risk"
    event = AliasEvent.objects.filter(alias="production").first()
    assert event.actor_id == staff_user.pk and "accepted risk" in event.reason


def test_another_tenants_retrains_and_policies_are_404(ready_retrain, api_b):
    assert api_b.get(f"{RETRAINS}{ready_retrain.pk}/").status_code == 404
    assert api_b.post(f"{RETRAINS}{ready_retrain.pk}/promote/", {}, format="json").status_code == (
        404
    )
    assert api_b.post(f"{RETRAINS}{ready_retrain.pk}/rollback/", {}, format="json").status_code == (
        404
    )
    assert api_b.post(f"{RETRAINS}{ready_retrain.pk}/compare/", {}, format="json").status_code == (
        404
    )
    assert api_b.get(_policy_url("topics")).status_code == 404
    assert api_b.put(_policy_url("topics"), {"shadow_share": 0.1}, format="json").status_code == (
        404
    )
    assert api_b.post(RETRAINS, {"need": "topics"}, format="json").status_code == 404
    assert api_b.get(RETRAINS).json()["results"] == []


def test_a_viewer_reads_but_never_starts_or_promotes(ready_retrain, api, bob):
    api.force_authenticate(bob)
    assert api.get(f"{RETRAINS}{ready_retrain.pk}/").status_code == 200
    assert api.post(RETRAINS, {"need": "topics"}, format="json").status_code == 403
    assert api.post(f"{RETRAINS}{ready_retrain.pk}/promote/", {}, format="json").status_code == 403
    assert api.put(_policy_url("topics"), {"shadow_share": 0.1}, format="json").status_code == 403
    ready_retrain.refresh_from_db()
    assert ready_retrain.status == RetrainStatus.READY


def test_a_read_only_key_cannot_start_a_retrain(shifted_need, tenant_a):
    reader = api_client_for_key(ApiKeyFactory(tenant=tenant_a, scopes=[ApiKeyScope.READ]))
    assert reader.post(RETRAINS, {"need": "topics"}, format="json").status_code == 403
    assert Retrain.objects.for_tenant(tenant_a).count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"shadow_share": 0.9}, "shadow_share"),
        ({"max_recall_drop": -0.1}, "max_recall_drop"),
        ({"retrain_after_accepted": 0}, "retrain_after_accepted"),
        ({"retrain_every_days": 400}, "retrain_every_days"),
        ({"promotion_margin": "lots"}, "promotion_margin"),
    ],
)
def test_bad_policy_values_are_400(shifted_need, api_a, body, field):
    response = api_a.put(_policy_url("topics"), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_policy_round_trip(shifted_need, api_a):
    response = api_a.put(
        _policy_url("topics"),
        {"retrain_after_accepted": 25, "shadow_share": 0.1, "max_recall_drop": 0.1},
        format="json",
    )
    assert response.status_code == 200
    body = api_a.get(_policy_url("topics")).json()
    assert (body["retrain_after_accepted"], body["shadow_share"], body["max_recall_drop"]) == (
        25,
        0.1,
        0.1,
    )


def test_bad_retrain_requests_are_clear_4xx(need_with_champion, api_a, tenant_a, topics):
    from tests.factories import NeedFactory

    unknown = api_a.post(RETRAINS, {"need": "no-such-need"}, format="json")
    assert unknown.status_code == 404
    bad_params = api_a.post(RETRAINS, {"need": "topics", "params": [1, 2]}, format="json")
    assert bad_params.status_code == 400
    NeedFactory(tenant=tenant_a, slug="fresh-need", label_set=topics)
    no_model = api_a.post(RETRAINS, {"need": "fresh-need"}, format="json")
    assert no_model.status_code == 409
    assert no_model.json()["error"]["code"] == "no_champion"
    assert api_a.get(f"{RETRAINS}999999/").status_code == 404


def test_promoting_a_retrain_that_is_not_ready_is_409(shifted_need, api_a):
    queued = api_a.post(RETRAINS, {"need": "topics"}, format="json").json()
    response = api_a.post(f"{RETRAINS}{queued['id']}/promote/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "retrain_not_ready"
    rollback = api_a.post(f"{RETRAINS}{queued['id']}/rollback/", {}, format="json")
    assert rollback.json()["error"]["code"] == "not_promoted"


def test_retrain_endpoints_are_in_the_openapi_schema(api, alice):
    api.force_authenticate(alice)
    paths = api.get("/api/schema/?format=json").json()["paths"]
    for path in (
        "/api/v1/retraining/retrains/",
        "/api/v1/retraining/retrains/{id}/promote/",
        "/api/v1/retraining/retrains/{id}/rollback/",
        "/api/v1/retraining/retrains/{id}/compare/",
        "/api/v1/retraining/policies/{need}/",
    ):
        assert path in paths, path
