"""A need never silently stays on an older model (issue 15.3): when the tenant promotes a
different model for the need's label set, the need page and the API ask whether to follow."""

from __future__ import annotations

import pytest

from registry.services.aliases import alias_set
from taxonomy import services as taxonomy_services
from tenants import services
from tenants.models import Need
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory
from tests.taxonomy.factories import make_live_model


@pytest.fixture
def desk(tree, tenant_a):
    return taxonomy_services.label_set_create(
        tenant=tenant_a, slug="desk", name="Desk", label_keys=["news.sport", "news.tech"]
    )


@pytest.fixture
def need(desk, tenant_a):
    first = make_live_model(label_set=desk, tenant=tenant_a, name="desk/tfidf-logreg")
    need = services.need_create(
        tenant=tenant_a, slug="desk-need", name="Desk", label_set=desk, label_mapping={}
    )
    return services.need_subscribe_model(need=need, model=first)


def _promote_another(desk, tenant_a, name="desk/tfidf-svm"):
    model = make_live_model(label_set=desk, tenant=tenant_a, name=name)
    alias_set(registered_model=model, alias="production", version=model.versions.get())
    return model


@pytest.fixture
def session_api(api, alice):
    api.force_authenticate(alice)
    return api


def test_nothing_to_follow_until_another_model_is_promoted(session_api, need):
    body = session_api.get("/api/v1/needs/desk-need/model-update/").json()
    assert body == {
        "current_model": "desk/tfidf-logreg",
        "offer_ends_at": None,
        "model_update": None,
    }


def test_the_api_offers_the_newly_promoted_model_and_following_it_switches(
    session_api, need, desk, tenant_a
):
    newer = _promote_another(desk, tenant_a)
    body = session_api.get("/api/v1/needs/desk-need/model-update/").json()
    assert body["model_update"]["model"] == newer.name and body["model_update"]["version"] == 1
    follow = session_api.post(
        "/api/v1/needs/desk-need/subscribe/", {"model": newer.name}, format="json"
    )
    assert follow.status_code == 200 and follow.json()["model"] == newer.name
    after = session_api.get("/api/v1/needs/desk-need/model-update/").json()
    assert after["current_model"] == newer.name and after["model_update"] is None


def test_keeping_the_model_answers_the_question_until_the_next_promotion(
    session_api, need, desk, tenant_a
):
    _promote_another(desk, tenant_a)
    kept = session_api.post("/api/v1/needs/desk-need/keep-model/")
    assert kept.status_code == 200 and kept.json()["model"] == "desk/tfidf-logreg"
    assert session_api.get("/api/v1/needs/desk-need/model-update/").json()["model_update"] is None
    later = _promote_another(desk, tenant_a, name="desk/complement-nb")
    body = session_api.get("/api/v1/needs/desk-need/model-update/").json()
    assert body["model_update"]["model"] == later.name


def test_the_need_page_asks_whether_to_follow(client, alice, need, desk, tenant_a):
    newer = _promote_another(desk, tenant_a)
    client.force_login(alice)
    page = client.get("/tenant/needs/desk-need/").content.decode()
    assert 'id="model-update"' in page and "Should it follow the new model?" in page
    assert f'value="{newer.name}"' in page
    response = client.post("/tenant/needs/desk-need/subscribe/", {"model": newer.name})
    assert response.status_code == 302
    assert Need.objects.for_tenant(tenant_a).get(slug="desk-need").model == newer
    assert 'id="model-update"' not in client.get("/tenant/needs/desk-need/").content.decode()


def test_the_portal_keep_button_dismisses_the_question(client, alice, need, desk, tenant_a):
    _promote_another(desk, tenant_a)
    client.force_login(alice)
    assert client.post("/tenant/needs/desk-need/keep-model/").status_code == 302
    assert 'id="model-update"' not in client.get("/tenant/needs/desk-need/").content.decode()


def test_model_update_endpoints_are_tenant_scoped(api, charlie, need):
    api.force_authenticate(charlie)
    assert api.get("/api/v1/needs/desk-need/model-update/").status_code == 404
    assert api.post("/api/v1/needs/desk-need/keep-model/").status_code == 404


def test_a_viewer_or_a_tag_key_cannot_keep_a_model(api, bob, need, tenant_a):
    api.force_authenticate(bob)
    assert api.post("/api/v1/needs/desk-need/keep-model/").status_code == 403
    assert api.get("/api/v1/needs/desk-need/model-update/").status_code == 200
    key = ApiKeyFactory(tenant=tenant_a, name="tagger", scopes=["tag"])
    assert api_client_for_key(key).post("/api/v1/needs/desk-need/keep-model/").status_code == 403


def test_keeping_needs_a_model(session_api, tenant_a, desk):
    services.need_create(tenant=tenant_a, slug="bare", name="Bare", label_set=desk)
    response = session_api.post("/api/v1/needs/bare/keep-model/")
    assert response.status_code == 400 and "model" in response.json()["error"]["fields"]
