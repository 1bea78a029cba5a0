"""The review REST API as a business unit's service or labelling tool uses it: with an API key or
as a signed-in member. Another tenant's rounds, items and cases are 404; roles and key scopes are
enforced; bad input gets a stable error code and writes nothing."""

from __future__ import annotations

import pytest

from review.models import Case, ReviewRound, ReviewVerdict
from tenants.models import ApiKeyScope, Role
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory, MembershipFactory, UserFactory
from tests.review.factories import live_need, log_stream, texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def topics(tenant_a):
    need, version = live_need(tenant_a)
    log_stream(need, version, {"t.a": texts("a", 30), "t.b": texts("b", 10)})
    return need


@pytest.fixture
def bravo(tenant_b):
    need, version = live_need(tenant_b, slug="topics")
    log_stream(need, version, {"t.a": texts("bravo", 5)}, prefix="b")
    return need


def start(api, slug="topics", **body):
    return api.post(f"/api/v1/needs/{slug}/review-rounds", body, format="json")


def test_the_loop_through_the_api(api_a, topics):
    response = start(api_a, sample_size=12)
    assert response.status_code == 201, response.content
    round_id = response.json()["id"]
    assert response.json()["status"] == "open" and response.json()["progress"]["items"] == 12
    answered = 0
    while True:
        claim = api_a.post(f"/api/v1/review-rounds/{round_id}/claim")
        if claim.status_code == 204:
            break
        item = claim.json()
        decision = (
            {"decision": "confirm"} if answered % 3 else {"decision": "correct", "labels": ["t.c"]}
        )
        verdict = api_a.post(
            f"/api/v1/review-rounds/{round_id}/items/{item['id']}/verdict", decision, format="json"
        )
        assert verdict.status_code == 200, verdict.content
        answered += 1
    assert answered == 12
    closed = api_a.post(f"/api/v1/review-rounds/{round_id}/close").json()
    assert closed["status"] == "closed"
    assert closed["result"]["accuracy"]["estimate"] is not None
    assert closed["result"]["reviewed"] == 12
    cases = api_a.get("/api/v1/needs/topics/cases?source=review_correction").json()
    assert cases["count"] == 4
    case_id = cases["results"][0]["id"]
    detail = api_a.get(f"/api/v1/cases/{case_id}").json()
    assert detail["suggested_cause"] in {"model_error", "data_change", "label_problem", "bad_input"}
    triaged = api_a.post(f"/api/v1/cases/{case_id}/triage", {"cause": "model_error"}, format="json")
    assert triaged.json()["status"] == "triaged"
    accepted = api_a.post(f"/api/v1/cases/{case_id}/accept")
    assert accepted.json()["status"] == "accepted" and accepted.json()["sample"]
    again = api_a.post(f"/api/v1/cases/{case_id}/accept")
    assert again.json()["sample"] == accepted.json()["sample"]
    gaps = api_a.get("/api/v1/needs/topics/label-gaps").json()
    assert {g["label"] for g in gaps} == {"t.a", "t.b", "t.c"}


def test_round_on_a_need_without_predictions_is_a_409(api_a, tenant_a):
    live_need(tenant_a, slug="quiet")
    response = start(api_a, slug="quiet")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_predictions"
    assert not ReviewRound.objects.for_tenant(tenant_a).exists()


def test_bad_round_parameters_are_400(api_a, topics):
    response = start(api_a, sample_size=0)
    assert response.status_code == 400
    response = start(api_a, double_review_share=2)
    assert response.status_code == 400


def test_another_tenants_round_item_and_case_are_404(api_a, api_b, topics, bravo):
    round_a = start(api_a, sample_size=3).json()["id"]
    round_b = start(api_b, sample_size=3).json()["id"]
    item_b = api_b.get(f"/api/v1/review-rounds/{round_b}/items").json()["results"][0]["id"]
    case_b = api_b.post("/api/v1/needs/topics/cases", {"text": "bravo case"}, format="json").json()[
        "id"
    ]
    assert api_a.get(f"/api/v1/review-rounds/{round_b}").status_code == 404
    assert api_a.get(f"/api/v1/review-rounds/{round_b}/items").status_code == 404
    assert api_a.post(f"/api/v1/review-rounds/{round_b}/claim").status_code == 404
    assert api_a.post(f"/api/v1/review-rounds/{round_b}/close").status_code == 404
    # Another tenant's item, even under one's own round: 404, nothing written.
    verdict = api_a.post(
        f"/api/v1/review-rounds/{round_a}/items/{item_b}/verdict",
        {"decision": "confirm"},
        format="json",
    )
    assert verdict.status_code == 404
    assert api_a.get(f"/api/v1/cases/{case_b}").status_code == 404
    assert api_a.post(f"/api/v1/cases/{case_b}/accept").status_code == 404
    assert (
        api_a.post(
            f"/api/v1/cases/{case_b}/triage", {"cause": "model_error"}, format="json"
        ).status_code
        == 404
    )
    assert api_a.get("/api/v1/needs/nope/cases").status_code == 404
    assert not ReviewVerdict.objects.for_tenant(bravo.tenant).exists()


def test_item_of_another_round_is_404(api_a, topics):
    first = start(api_a, sample_size=2).json()["id"]
    second = start(api_a, sample_size=2).json()["id"]
    item = api_a.get(f"/api/v1/review-rounds/{first}/items").json()["results"][0]["id"]
    response = api_a.post(
        f"/api/v1/review-rounds/{second}/items/{item}/verdict",
        {"decision": "confirm"},
        format="json",
    )
    assert response.status_code == 404


def test_labels_outside_the_label_set_are_400(api_a, topics):
    round_id = start(api_a, sample_size=2).json()["id"]
    item = api_a.post(f"/api/v1/review-rounds/{round_id}/claim").json()["id"]
    response = api_a.post(
        f"/api/v1/review-rounds/{round_id}/items/{item}/verdict",
        {"decision": "correct", "labels": ["other.label"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "labels_outside_label_set"
    response = api_a.post(
        "/api/v1/needs/topics/cases",
        {"text": "x y z", "suggested_labels": ["other.label"]},
        format="json",
    )
    assert response.json()["error"]["code"] == "labels_outside_label_set"
    assert not Case.objects.for_tenant(topics.tenant).exists()


def test_cases_single_bulk_and_duplicates(api_a, topics):
    one = api_a.post(
        "/api/v1/needs/topics/cases",
        {"text": "first report", "suggested_labels": ["t.a"]},
        format="json",
    )
    assert one.status_code == 201 and one.json()["source"] == "api"
    dup = api_a.post("/api/v1/needs/topics/cases", {"text": "first report"}, format="json")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "duplicate_case"
    bulk = api_a.post(
        "/api/v1/needs/topics/cases",
        {"cases": [{"text": "second"}, {"text": "third"}]},
        format="json",
    )
    assert bulk.status_code == 201 and len(bulk.json()["cases"]) == 2
    bad = api_a.post(
        "/api/v1/needs/topics/cases",
        {"cases": [{"text": "fourth"}, {"text": "first report"}]},
        format="json",
    )
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "duplicate_case"
    assert Case.objects.for_tenant(topics.tenant).count() == 3
    assert api_a.post("/api/v1/needs/topics/cases", {"cases": []}, format="json").status_code == 400


def test_roles_and_scopes(api, topics, tenant_a, bob):
    # A viewer reads but never writes.
    api.force_authenticate(bob)
    assert api.get("/api/v1/needs/topics/review-rounds").status_code == 200
    assert start(api).status_code == 403
    assert api.post("/api/v1/needs/topics/cases", {"text": "t"}, format="json").status_code == 403
    # A key without the feedback scope cannot review or report.
    reader = api_client_for_key(ApiKeyFactory(tenant=tenant_a, scopes=[ApiKeyScope.READ]))
    assert reader.get("/api/v1/needs/topics/review-rounds").status_code == 200
    assert start(reader).status_code == 403
    # A requester reports cases but does not review.
    requester = UserFactory(username="rita")
    MembershipFactory(user=requester, tenant=tenant_a, role=Role.REQUESTER)
    api.force_authenticate(requester)
    assert api.post("/api/v1/needs/topics/cases", {"text": "t"}, format="json").status_code == 201
    assert start(api).status_code == 403


def test_sign_off_needs_a_person_who_owns_the_need(api, api_a, topics, alice, tenant_a):
    round_id = start(api_a, sample_size=2).json()["id"]
    api_a.post(f"/api/v1/review-rounds/{round_id}/close")
    url = f"/api/v1/review-rounds/{round_id}/sign-off"
    assert api_a.post(url, {"decision": "meets"}, format="json").status_code == 403
    reviewer = UserFactory(username="ray")
    MembershipFactory(user=reviewer, tenant=tenant_a, role=Role.REVIEWER)
    api.force_authenticate(reviewer)
    response = api.post(url, {"decision": "meets"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_business_owner"
    api.force_authenticate(alice)
    assert api.post(url, {"decision": "maybe"}, format="json").status_code == 400
    response = api.post(url, {"decision": "rescope", "note": "the need changed"}, format="json")
    assert response.status_code == 200 and response.json()["signoff"] == "rescope"


def test_review_config_api(api_a, api, topics, bob):
    response = api_a.patch(
        "/api/v1/needs/topics/review-config",
        {"accuracy_target": 0.85, "schedule_crontab": "0 5 * * 1"},
        format="json",
    )
    assert response.status_code == 200 and response.json()["accuracy_target"] == 0.85
    bad = api_a.patch(
        "/api/v1/needs/topics/review-config", {"schedule_crontab": "weekly"}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_crontab"
    assert (
        api_a.patch(
            "/api/v1/needs/topics/review-config", {"accuracy_target": 3}, format="json"
        ).status_code
        == 400
    )
    api.force_authenticate(bob)
    assert (
        api.patch(
            "/api/v1/needs/topics/review-config", {"accuracy_target": 0.5}, format="json"
        ).status_code
        == 403
    )


def test_endpoints_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    for path in [
        "/api/v1/needs/{slug}/review-rounds",
        "/api/v1/review-rounds/{id}/items/{item_id}/verdict",
        "/api/v1/review-rounds/{id}/sign-off",
        "/api/v1/needs/{slug}/cases",
        "/api/v1/cases/{id}/accept",
        "/api/v1/needs/{slug}/label-gaps",
    ]:
        assert path in paths, path
