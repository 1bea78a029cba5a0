"""The isolation matrix for the REST API: every endpoint × owner / member / outsider / other key.

alice = admin of A, bob = viewer of A, charlie = admin of B, api_b = B's API key (all scopes).
A owns the need `a-need`, the label set `alpha-private` and the key `key_a`. Nothing of A's may
be read or changed by B's people or keys: A's objects answer 404 to them, exactly like missing ones.
"""

import pytest
from django.db import transaction

from taxonomy import services as taxonomy_services
from tenants.models import ApiKey, Need, NeedStatus
from tests.factories import NeedFactory
from tests.taxonomy.factories import make_live_model


@pytest.fixture
def world(tenant_a, tenant_b, alice, bob, charlie, key_a, key_b, news_topics):
    private = taxonomy_services.label_set_create(
        tenant=tenant_a,
        slug="alpha-private",
        name="Alpha private",
        label_keys=["news.sport", "news.tech"],
    )
    model = make_live_model(label_set=private, tenant=tenant_a, name="alpha-private/tfidf-logreg")
    need = NeedFactory(tenant=tenant_a, slug="a-need", label_set=news_topics)
    NeedFactory(tenant=tenant_b, slug="b-need", label_set=news_topics)
    return {"need": need, "private": private, "model": model, "key_a": key_a}


@pytest.fixture
def callers(api, alice, bob, charlie, api_a, api_b):
    from rest_framework.test import APIClient

    def session(user):
        client = APIClient()
        client.force_authenticate(user)
        return client

    return {
        "owner": session(alice),
        "member": session(bob),
        "outsider": session(charlie),
        "other_key": api_b,
        "own_key": api_a,
    }


# (method, url, body, expected status per caller)
MATRIX = [
    (
        "get",
        "/api/v1/needs/a-need/",
        None,
        {"owner": 200, "member": 200, "outsider": 404, "other_key": 404, "own_key": 200},
    ),
    (
        "patch",
        "/api/v1/needs/a-need/",
        {"top_k": 2},
        {"owner": 200, "member": 403, "outsider": 404, "other_key": 404, "own_key": 200},
    ),
    (
        "post",
        "/api/v1/needs/a-need/retire/",
        {},
        {"owner": 200, "member": 403, "outsider": 404, "other_key": 404, "own_key": 200},
    ),
    (
        "post",
        "/api/v1/needs/a-need/go-live/",
        {},
        {"owner": 400, "member": 403, "outsider": 404, "other_key": 404, "own_key": 400},
    ),
    (
        "post",
        "/api/v1/needs/a-need/subscribe/",
        {"model": "news-topics/tfidf-logreg"},
        {"owner": 400, "member": 403, "outsider": 404, "other_key": 404, "own_key": 400},
    ),
    (
        "get",
        "/api/v1/needs/a-need/suggestions/",
        None,
        {"owner": 200, "member": 200, "outsider": 404, "other_key": 404, "own_key": 200},
    ),
    (
        "get",
        "/api/v1/label-sets/alpha-private/",
        None,
        {"owner": 200, "member": 200, "outsider": 404, "other_key": 404, "own_key": 200},
    ),
    (
        "get",
        "/api/v1/label-sets/alpha-private/revisions/",
        None,
        {"owner": 200, "member": 200, "outsider": 404, "other_key": 404, "own_key": 200},
    ),
    (
        "get",
        "/api/v1/keys/",
        None,
        {"owner": 200, "member": 403, "outsider": 200, "other_key": 403, "own_key": 403},
    ),
    (
        "get",
        "/api/v1/keys/{prefix}/",
        None,
        {"owner": 200, "member": 403, "outsider": 404, "other_key": 403, "own_key": 403},
    ),
    (
        "post",
        "/api/v1/keys/{prefix}/revoke/",
        {},
        {"owner": 200, "member": 403, "outsider": 404, "other_key": 403, "own_key": 403},
    ),
    (
        "delete",
        "/api/v1/keys/{prefix}/",
        None,
        {"owner": 200, "member": 403, "outsider": 404, "other_key": 403, "own_key": 403},
    ),
    (
        "post",
        "/api/v1/keys/",
        {"name": "new", "scopes": ["tag"]},
        {"owner": 201, "member": 403, "outsider": 201, "other_key": 403, "own_key": 403},
    ),
    (
        "get",
        "/api/v1/tenants/",
        None,
        {"owner": 403, "member": 403, "outsider": 403, "other_key": 403, "own_key": 403},
    ),
    (
        "get",
        "/api/v1/tenants/alpha/",
        None,
        {"owner": 403, "member": 403, "outsider": 403, "other_key": 403, "own_key": 403},
    ),
    (
        "post",
        "/api/v1/tenants/",
        {"slug": "x", "name": "X"},
        {"owner": 403, "member": 403, "outsider": 403, "other_key": 403, "own_key": 403},
    ),
    (
        "post",
        "/api/v1/tenants/alpha/memberships/",
        {"username": "charlie", "role": "admin"},
        {"owner": 403, "member": 403, "outsider": 403, "other_key": 403, "own_key": 403},
    ),
    (
        "post",
        "/api/v1/tenants/alpha/keys/",
        {"name": "x", "scopes": ["tag"]},
        {"owner": 403, "member": 403, "outsider": 403, "other_key": 403, "own_key": 403},
    ),
    (
        "post",
        "/api/v1/tenants/alpha/needs/a-need/approve/",
        {},
        {"owner": 403, "member": 403, "outsider": 403, "other_key": 403, "own_key": 403},
    ),
    (
        "get",
        "/api/v1/taxonomy/labels/news.sport/",
        None,
        {"owner": 200, "member": 200, "outsider": 200, "other_key": 200, "own_key": 200},
    ),
    (
        "delete",
        "/api/v1/taxonomy/labels/news.sport.football/",
        None,
        {"owner": 403, "member": 403, "outsider": 403, "other_key": 403, "own_key": 403},
    ),
]

CALLERS = ["owner", "member", "outsider", "other_key", "own_key"]


def _snapshot(tenant):
    """Everything of A's an unauthorised write could have changed."""
    need = Need.objects.for_tenant(tenant).get(slug="a-need")
    return (
        need.status,
        need.top_k,
        need.model_id,
        sorted(ApiKey.objects.for_tenant(tenant).values_list("name", "revoked_at")),
    )


@pytest.mark.parametrize(
    ("method", "url", "body", "expected"), MATRIX, ids=[f"{m} {u}" for m, u, *_ in MATRIX]
)
def test_isolation_matrix(world, callers, tenant_a, method, url, body, expected):
    url = url.format(prefix=world["key_a"].prefix)
    mismatches = []
    for caller in CALLERS:
        # Each caller starts from the same data: roll back whatever the previous one changed.
        savepoint = transaction.savepoint()
        before = _snapshot(tenant_a)
        client = getattr(callers[caller], method)
        response = client(url, body, format="json") if body is not None else client(url)
        if response.status_code != expected[caller]:
            mismatches.append((caller, response.status_code, response.content[:200]))
        elif response.status_code >= 400:
            assert "error" in response.json()
            if _snapshot(tenant_a) != before:
                mismatches.append((caller, "a refused request changed tenant A's data"))
        transaction.savepoint_rollback(savepoint)
    assert not mismatches, mismatches


@pytest.mark.parametrize("caller", CALLERS)
def test_lists_show_only_the_callers_tenant(world, callers, caller):
    client = callers[caller]
    needs = [row["slug"] for row in client.get("/api/v1/needs/").json()["results"]]
    sets = [row["slug"] for row in client.get("/api/v1/label-sets/").json()["results"]]
    ours = caller in {"owner", "member", "own_key"}
    assert needs == (["a-need"] if ours else ["b-need"])
    assert ("alpha-private" in sets) is ours
    assert "news-topics" in sets  # shared sets are for everyone


@pytest.mark.parametrize("caller", ["outsider", "other_key"])
def test_reuse_suggestions_never_offer_another_tenants_own_set_or_model(world, callers, caller):
    body = (
        callers[caller]
        .post("/api/v1/reuse-suggestions/", {"labels": ["Sport", "Tech"]}, format="json")
        .json()
    )
    assert "alpha-private" not in [row["label_set"] for row in body["label_sets"]]
    assert body["models"] == []


def test_outsider_cannot_subscribe_their_need_to_as_private_model(world, callers, tenant_b):
    response = callers["outsider"].post(
        "/api/v1/needs/b-need/subscribe/", {"model": world["model"].name}, format="json"
    )
    assert response.status_code == 400
    assert Need.objects.for_tenant(tenant_b).get(slug="b-need").model is None


def test_creating_a_need_always_lands_in_the_callers_tenant(world, callers, tenant_a, tenant_b):
    response = callers["outsider"].post(
        "/api/v1/needs/",
        {"name": "Sneaky", "slug": "a-need", "tenant": "alpha", "label_set": "news-topics"},
        format="json",
    )
    assert response.status_code == 201
    assert Need.objects.for_tenant(tenant_b).filter(slug="a-need").exists()
    assert Need.objects.for_tenant(tenant_a).get(slug="a-need").name != "Sneaky"


def test_outsider_cannot_use_another_tenants_label_set_in_a_need(world, callers, tenant_b):
    response = callers["other_key"].post(
        "/api/v1/needs/", {"name": "Sneaky", "label_set": "alpha-private"}, format="json"
    )
    assert response.status_code == 400
    assert "label_set" in response.json()["error"]["fields"]
    assert not Need.objects.for_tenant(tenant_b).filter(slug="sneaky").exists()


def test_x_tenant_header_cannot_reach_a_tenant_you_do_not_belong_to(world, callers):
    response = callers["outsider"].get("/api/v1/needs/a-need/", HTTP_X_TENANT="alpha")
    assert response.status_code == 403


def test_owner_flow_really_changed_state(world, callers, tenant_a):
    """The matrix's 200s are real writes, not no-ops."""
    callers["owner"].post("/api/v1/needs/a-need/retire/")
    assert Need.objects.for_tenant(tenant_a).get(slug="a-need").status == NeedStatus.RETIRED


def test_anonymous_gets_401_everywhere(world, api):
    for url in ["/api/v1/needs/", "/api/v1/keys/", "/api/v1/label-sets/", "/api/v1/tenants/"]:
        assert api.get(url).status_code == 401, url
