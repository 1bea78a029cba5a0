"""Needs: validation (400 with field errors, nothing written), lifecycle, subscription."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from taxonomy import services as taxonomy_services
from tenants import services
from tenants.models import Need, NeedStatus
from tests.factories import NeedFactory, TenantFactory
from tests.taxonomy.factories import make_live_model


@pytest.fixture
def session_api(api, alice):
    api.force_authenticate(alice)
    return api


def test_need_on_an_existing_label_set(session_api, news_topics, tenant_a, alice):
    response = session_api.post(
        "/api/v1/needs/",
        {
            "name": "News topics",
            "goal": "Route articles to desks",
            "label_set": "news-topics",
            "label_mapping": {"Sport": "news.sport", "Tech": "news.tech"},
            "threshold": 0.3,
            "per_label_thresholds": {"news.sport": 0.6},
            "top_k": 2,
            "delivery": ["sync", "batch"],
            "latency_budget_ms": 50,
            "size_budget_kb": 2048,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["slug"] == "news-topics" and body["status"] == "requested"
    need = Need.objects.for_tenant(tenant_a).get(slug="news-topics")
    assert need.created_by == alice and need.delivery == ["sync", "batch"]


def test_requested_labels_accept_names_and_aliases_and_store_keys(session_api, tree):
    response = session_api.post(
        "/api/v1/needs/",
        {"name": "Finer", "requested_labels": ["Football", "体育", "Tech"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["requested_labels"] == [
        "news.sport.football",
        "news.sport",
        "news.tech",
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (
            {"label_set": "news-topics", "label_mapping": {"Weather": "news.weather"}},
            "label_mapping",
        ),
        (
            {"label_set": "news-topics", "label_mapping": {"Happy": "sentiment.positive"}},
            "label_mapping",
        ),
        ({"requested_labels": ["Sport", "weather"]}, "requested_labels"),
        ({"label_set": "no-such-set"}, "label_set"),
        ({}, "label_set"),
        ({"label_set": "news-topics", "delivery": ["carrier-pigeon"]}, "delivery"),
        ({"label_set": "news-topics", "threshold": 1.5}, "threshold"),
        ({"label_set": "news-topics", "top_k": 9}, "top_k"),
        (
            {"label_set": "news-topics", "per_label_thresholds": {"spam.spam": 0.5}},
            "per_label_thresholds",
        ),
    ],
)
def test_bad_need_is_a_400_with_field_errors_and_nothing_written(
    session_api, news_topics, payload, field
):
    response = session_api.post("/api/v1/needs/", {"name": "Bad", **payload}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"], response.json()
    assert not Need.objects.dangerously_unscoped().exists()


def test_unknown_label_in_mapping_names_the_offending_entry(session_api, news_topics):
    response = session_api.post(
        "/api/v1/needs/",
        {
            "name": "N",
            "label_set": "news-topics",
            "label_mapping": {"Sport": "news.sport", "Wx": "news.wx"},
        },
        format="json",
    )
    messages = response.json()["error"]["fields"]["label_mapping"]
    assert messages == ["'Wx': Unknown label 'news.wx'."]


def test_duplicate_slug_is_a_400(session_api, news_topics, tenant_a):
    NeedFactory(tenant=tenant_a, slug="topics")
    response = session_api.post(
        "/api/v1/needs/", {"name": "T", "slug": "topics", "label_set": "news-topics"}, format="json"
    )
    assert response.status_code == 400 and "slug" in response.json()["error"]["fields"]


def test_update_validates_and_changes_the_need(session_api, news_topics, tenant_a):
    NeedFactory(tenant=tenant_a, slug="n", label_set=news_topics)
    bad = session_api.patch("/api/v1/needs/n/", {"label_mapping": {"X": "nope"}}, format="json")
    assert bad.status_code == 400
    good = session_api.patch(
        "/api/v1/needs/n/", {"top_k": 3, "label_mapping": {"Biz": "news.business"}}, format="json"
    )
    assert good.status_code == 200
    need = Need.objects.for_tenant(tenant_a).get(slug="n")
    assert need.top_k == 3 and need.label_mapping == {"Biz": "news.business"}


def test_lifecycle_requested_approved_live_retired(news_topics, tenant_a, staff_user):
    need = services.need_create(tenant=tenant_a, name="Topics", label_set=news_topics)
    with pytest.raises(ValidationError):
        services.need_go_live(need=need)  # not approved, no model
    need = services.need_approve(need=need, actor=staff_user)
    assert need.status == NeedStatus.APPROVED and need.approved_by == staff_user
    with pytest.raises(ValidationError) as exc:
        services.need_go_live(need=need)
    assert "model" in exc.value.message_dict
    need = services.need_subscribe_model(need=need, model=make_live_model(label_set=news_topics))
    need = services.need_go_live(need=need)
    assert need.status == NeedStatus.LIVE
    with pytest.raises(ValidationError):
        services.need_approve(need=need, actor=staff_user)
    need = services.need_retire(need=need)
    assert need.status == NeedStatus.RETIRED
    with pytest.raises(ValidationError):
        services.need_retire(need=need)
    with pytest.raises(ValidationError):
        services.need_update(need=need, top_k=2)


def test_only_platform_staff_approve(news_topics, tenant_a, alice):
    need = services.need_create(tenant=tenant_a, name="Topics", label_set=news_topics)
    with pytest.raises(PermissionDenied):
        services.need_approve(need=need, actor=alice)
    need.refresh_from_db()
    assert need.status == NeedStatus.REQUESTED


def test_retire_over_the_api(session_api, tenant_a, news_topics):
    NeedFactory(tenant=tenant_a, slug="n", label_set=news_topics)
    assert session_api.post("/api/v1/needs/n/retire/").json()["status"] == "retired"
    again = session_api.post("/api/v1/needs/n/retire/")
    assert again.status_code == 400 and "status" in again.json()["error"]["fields"]


def test_subscribe_to_a_shared_model_adopts_its_label_set(session_api, tenant_a, tree, news_topics):
    model = make_live_model(label_set=news_topics)
    session_api.post(
        "/api/v1/needs/",
        {
            "name": "Mine",
            "requested_labels": ["Sport", "Tech"],
            "label_mapping": {"S": "news.sport"},
        },
        format="json",
    )
    response = session_api.post(
        "/api/v1/needs/mine/subscribe/", {"model": model.name}, format="json"
    )
    assert response.status_code == 200, response.json()
    need = Need.objects.for_tenant(tenant_a).get(slug="mine")
    assert need.model == model and need.label_set == news_topics and need.requested_labels == []


def test_cannot_subscribe_to_another_tenants_own_model(session_api, tenant_a, tree):
    other = TenantFactory(slug="other")
    private = taxonomy_services.label_set_create(
        tenant=other, slug="private", name="P", label_keys=["news.sport", "news.tech"]
    )
    model = make_live_model(label_set=private, tenant=other, name="private/tfidf-logreg")
    session_api.post(
        "/api/v1/needs/", {"name": "Mine", "requested_labels": ["Sport"]}, format="json"
    )
    response = session_api.post(
        "/api/v1/needs/mine/subscribe/", {"model": model.name}, format="json"
    )
    assert response.status_code == 400
    assert Need.objects.for_tenant(tenant_a).get(slug="mine").model is None


def test_need_suggestions_endpoint_ranks_the_shared_set(session_api, tenant_a, news_topics):
    session_api.post(
        "/api/v1/needs/",
        {"name": "Mine", "requested_labels": ["Business", "Sports", "Tech", "Politics"]},
        format="json",
    )
    body = session_api.get("/api/v1/needs/mine/suggestions/").json()
    assert body["label_sets"][0]["label_set"] == "news-topics"
    assert body["label_sets"][0]["overlap"]["jaccard"] == 0.8


def test_staff_creates_tenant_member_key_and_the_key_registers_a_need(api, staff_user, news_topics):
    """End to end over HTTP: no fixture-made tenant, member or key."""
    from tests.factories import UserFactory

    UserFactory(username="erin")
    api.force_authenticate(staff_user)
    assert (
        api.post("/api/v1/tenants/", {"slug": "echo", "name": "Echo"}, format="json").status_code
        == 201
    )
    member = api.post(
        "/api/v1/tenants/echo/memberships/", {"username": "erin", "role": "admin"}, format="json"
    )
    assert member.status_code == 201 and member.json()["role"] == "admin"
    plain = api.post(
        "/api/v1/tenants/echo/keys/",
        {"name": "svc", "scopes": ["needs", "tag", "read"]},
        format="json",
    ).json()["key"]
    client = type(api)()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plain}")
    created = client.post(
        "/api/v1/needs/", {"name": "Echo topics", "label_set": "news-topics"}, format="json"
    )
    assert created.status_code == 201, created.json()
    approved = api.post("/api/v1/tenants/echo/needs/echo-topics/approve/")
    assert approved.json()["status"] == "approved"
    assert client.get("/api/v1/needs/echo-topics/").json()["status"] == "approved"


def test_bad_tenant_is_a_400(api, staff_user):
    api.force_authenticate(staff_user)
    response = api.post("/api/v1/tenants/", {"slug": "Not a slug", "name": ""}, format="json")
    assert response.status_code == 400
    assert {"slug", "name"} <= set(response.json()["error"]["fields"])
