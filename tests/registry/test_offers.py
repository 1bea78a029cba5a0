"""Offering a tenant's own model to other units (issue 15.6): offer with a description, others are
suggested it and subscribe read-only (answers, never training data), the owner withdraws with a
date subscribers keep it until, and sees every subscription."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from registry import selectors
from registry.models import RegisteredModel
from registry.services.training import training_run_create
from serving.runtime import get_runtime
from tenants import services as tenant_services
from tenants.authentication import clear_key_cache
from tenants.models import Need, NeedStatus
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory


@pytest.fixture(autouse=True)
def _fresh_runtime(settings):
    settings.ALIAS_POLL_SECONDS = 0
    settings.SERVING_ASYNC_WRITES = False
    get_runtime().forget()
    clear_key_cache()
    yield
    get_runtime().forget()


@pytest.fixture
def own_model(topic_samples, tenant_a, django_capture_on_commit_callbacks) -> RegisteredModel:
    """Tenant A's own live model of the news topics."""
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_create(label_set=topic_samples, tenant=tenant_a, promote_to="production")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run.registered_model


@pytest.fixture
def owner(api, alice):
    api.force_authenticate(alice)
    return api


@pytest.fixture
def other(charlie):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(charlie)
    return client


def _offer(owner, model, description="Sorts English news into business, sport and tech."):
    return owner.post(
        f"/api/v1/models/{model.pk}/offer/", {"description": description}, format="json"
    )


def _subscribe(other, model, slug="desk"):
    created = other.post(
        "/api/v1/needs/",
        {"name": "Desk", "slug": slug, "requested_labels": ["news.sport", "news.tech"]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    return other.post(f"/api/v1/needs/{slug}/subscribe/", {"model": model.name}, format="json")


def test_another_units_own_model_is_neither_suggested_nor_subscribable_until_offered(
    other, tenant_b, own_model
):
    found = other.post("/api/v1/reuse-suggestions/", {"labels": ["news.sport"]}, format="json")
    assert found.json()["models"] == []
    assert _subscribe(other, own_model).status_code == 400


def test_an_offered_model_is_suggested_with_its_description_and_answers_subscribers(
    owner, other, tenant_b, own_model
):
    offered = _offer(owner, own_model)
    assert offered.status_code == 200 and offered.json()["offered"] is True
    found = other.post(
        "/api/v1/reuse-suggestions/", {"labels": ["news.sport", "news.tech"]}, format="json"
    ).json()["models"]
    assert [m["model"] for m in found] == [own_model.name]
    assert found[0]["offered"] is True and found[0]["owner"] == "alpha"
    assert found[0]["offer_description"].startswith("Sorts English news")
    assert found[0]["overlap"]["fits"] is True and found[0]["quality"]["macro_f1"] is not None

    assert _subscribe(other, own_model).status_code == 200
    need = Need.objects.for_tenant(tenant_b).get(slug="desk")
    Need.objects.for_tenant(tenant_b).filter(pk=need.pk).update(status=NeedStatus.APPROVED)
    key = ApiKeyFactory(tenant=tenant_b, name="bravo-tagger")
    tagged = api_client_for_key(key).post(
        "/api/v1/needs/desk/tag",
        {"items": [{"id": "1", "text": "the team scored a goal and the coach praised the player"}]},
        format="json",
    )
    assert tagged.status_code == 200, tagged.json()
    [item] = tagged.json()["items"]
    assert len(item["labels"]) == 1
    assert item["labels"][0] in {"news.sport", "news.tech", "news.business"}


def test_subscribers_never_see_the_owners_versions_runs_or_data(owner, other, own_model):
    _offer(owner, own_model)
    _subscribe(other, own_model)
    version = own_model.versions.get()
    for path in (
        f"/api/v1/models/{own_model.pk}/",
        f"/api/v1/models/{own_model.pk}/versions/",
        f"/api/v1/versions/{version.pk}/",
        f"/api/v1/versions/{version.pk}/card/",
        f"/api/v1/training-runs/{version.training_run_id}/",
    ):
        assert other.get(path).status_code == 404, path
    assert own_model.name not in other.get("/api/v1/models/").content.decode()


def test_the_owner_sees_every_subscription(owner, other, tenant_a, own_model):
    _offer(owner, own_model)
    _subscribe(other, own_model)
    rows = owner.get(f"/api/v1/models/{own_model.pk}/subscriptions/").json()
    assert [(r["tenant"], r["need"], r["own"]) for r in rows] == [("bravo", "desk", False)]
    assert "contact_email" not in rows[0]
    assert other.get(f"/api/v1/models/{own_model.pk}/subscriptions/").status_code == 404


def test_withdrawing_tells_subscribers_and_they_keep_the_model_until_the_date(
    owner, other, tenant_b, own_model, django_capture_on_commit_callbacks
):
    tenant_b.contact_email = "desk@bravo.example.com"
    tenant_b.save()
    _offer(owner, own_model)
    _subscribe(other, own_model)
    keep_until = timezone.now() + timedelta(days=30)
    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(
            f"/api/v1/models/{own_model.pk}/withdraw-offer/",
            {"keep_until": keep_until.isoformat()},
            format="json",
        )
    assert response.status_code == 200 and response.json()["offered"] is False
    assert [m.to for m in mail.outbox] == [["desk@bravo.example.com"]]
    assert own_model.name in mail.outbox[0].subject
    # Told in the API and on the need page; still served until then.
    update = other.get("/api/v1/needs/desk/model-update/").json()
    assert update["offer_ends_at"] is not None
    need = Need.objects.for_tenant(tenant_b).get(slug="desk")
    assert selectors.serving_versions(need).exists()
    # No one new may subscribe, and it is no longer suggested.
    assert _subscribe(other, own_model, slug="late").status_code == 400
    assert (
        other.post("/api/v1/reuse-suggestions/", {"labels": ["news.sport"]}, format="json").json()[
            "models"
        ]
        == []
    )
    # After the date the need is no longer served by it.
    RegisteredModel.objects.owned_by(own_model.tenant).filter(pk=own_model.pk).update(
        offer_ends_at=timezone.now() - timedelta(seconds=1)
    )
    assert not selectors.serving_versions(need).exists()


def test_the_subscriber_need_page_says_the_offer_was_withdrawn(
    client, owner, other, charlie, own_model
):
    _offer(owner, own_model)
    _subscribe(other, own_model)
    owner.post(
        f"/api/v1/models/{own_model.pk}/withdraw-offer/",
        {"keep_until": (timezone.now() + timedelta(days=10)).isoformat()},
        format="json",
    )
    client.force_login(charlie)
    page = client.get("/tenant/needs/desk/").content.decode()
    assert 'id="offer-withdrawn"' in page and "withdrew its offer" in page


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("offer", {"description": ""}, 400),
        ("offer", {"description": "x" * 2001}, 400),
        ("offer", {}, 400),
        ("withdraw-offer", {"keep_until": "2000-01-01T00:00:00Z"}, 400),
        ("withdraw-offer", {"keep_until": "not a date"}, 400),
    ],
)
def test_bad_offer_input_is_a_400(owner, own_model, path, body, code):
    if path == "withdraw-offer":
        _offer(owner, own_model)
    response = owner.post(f"/api/v1/models/{own_model.pk}/{path}/", body, format="json")
    assert response.status_code == code, response.content


def test_withdrawing_a_model_not_offered_is_a_409(owner, own_model):
    response = owner.post(
        f"/api/v1/models/{own_model.pk}/withdraw-offer/",
        {"keep_until": (timezone.now() + timedelta(days=5)).isoformat()},
        format="json",
    )
    assert response.status_code == 409


def test_only_an_admin_of_the_owner_offers_never_a_key_or_a_viewer(
    api, bob, key_a, own_model, other
):
    api.force_authenticate(bob)
    assert _offer(api, own_model).status_code == 403
    assert _offer(api_client_for_key(key_a), own_model).status_code == 403
    assert _offer(other, own_model).status_code == 404  # another tenant's model: not found
    assert not RegisteredModel.objects.owned_by(own_model.tenant).get(pk=own_model.pk).offered


def test_a_shared_model_cannot_be_offered_by_a_tenant(owner, trained_version):
    response = _offer(owner, trained_version.registered_model)
    assert response.status_code == 403


def test_the_portal_owner_offers_withdraws_and_sees_subscriptions(
    client, alice, other, tenant_a, own_model
):
    client.force_login(alice)
    page = client.get(f"/models/{own_model.pk}/").content.decode()
    assert 'id="offer-model"' in page and "No need uses this model yet." in page
    client.post(
        f"/models/{own_model.pk}/", {"action": "offer", "description": "English news topics."}
    )
    assert RegisteredModel.objects.owned_by(tenant_a).get(pk=own_model.pk).offered
    _subscribe(other, own_model)
    page = client.get(f"/models/{own_model.pk}/").content.decode()
    assert "Bravo Finance" in page and 'id="withdraw-offer"' in page
    keep = (timezone.now() + timedelta(days=20)).strftime("%Y-%m-%d")
    client.post(f"/models/{own_model.pk}/", {"action": "withdraw-offer", "keep_until": keep})
    model = RegisteredModel.objects.owned_by(tenant_a).get(pk=own_model.pk)
    assert not model.offered and model.offer_ends_at.strftime("%Y-%m-%d") == keep


def test_subscribing_stays_a_need_write(tenant_b, own_model, owner):
    _offer(owner, own_model)
    need = tenant_services.need_create(
        tenant=tenant_b, slug="n", name="N", requested_labels=["news.sport"]
    )
    need = tenant_services.need_subscribe_model(need=need, model=own_model)
    assert need.model == own_model and need.tenant == tenant_b
