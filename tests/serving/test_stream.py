"""The stream: ingest, tag on the online queue, signed webhook with retries, dead letters, replay."""

from __future__ import annotations

import json

import pytest

from serving import predlog, webhooks
from serving.models import DeliveryStatus, Item, ItemStatus, WebhookDelivery
from tests.serving.conftest import wait_for

SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"


def ingest(client, items, slug="news"):
    return client.post(f"/api/v1/needs/{slug}/items", {"items": items}, format="json")


def test_stream_end_to_end_with_a_real_worker_and_webhook(
    requires_redis, real_worker, api_a, need_a, webhook_tenant_a, receiver
):
    response = ingest(api_a, [{"id": "s1", "text": SPORT}, {"id": "t1", "text": TECH}])
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 2, "duplicates": []}

    wait_for(lambda: receiver.requests)
    delivered = receiver.requests[0]
    headers = {k.lower(): v for k, v in delivered["headers"].items()}
    assert webhooks.verify(
        secret="s3cret-for-tests",
        timestamp=headers["x-tp-timestamp"],
        body=delivered["body"],
        signature=headers["x-tp-signature"],
    )
    assert not webhooks.verify(
        secret="wrong",
        timestamp=headers["x-tp-timestamp"],
        body=delivered["body"],
        signature=headers["x-tp-signature"],
    )
    payload = json.loads(delivered["body"])
    assert payload["need"] == "news"
    labels = {item["id"]: item["labels"] for item in payload["items"]}
    assert labels == {"s1": ["Sport"], "t1": ["news.tech"]}

    # Results read back with GET, filtered by ids.
    listing = api_a.get("/api/v1/needs/news/items?ids=s1").json()
    assert listing["count"] == 1
    assert listing["results"][0]["labels"] == ["Sport"]
    assert listing["results"][0]["status"] == "tagged"
    assert listing["results"][0]["model"]["name"] == "news-topics/tfidf-logreg"

    # A duplicate id is not re-ingested and not re-delivered.
    again = ingest(api_a, [{"id": "s1", "text": SPORT}, {"id": "s2", "text": SPORT}])
    assert again.json() == {"accepted": 1, "duplicates": ["s1"]}
    wait_for(lambda: len(receiver.requests) == 2)
    assert [i["id"] for i in json.loads(receiver.requests[1]["body"])["items"]] == ["s2"]
    assert Item.objects.dangerously_unscoped().filter(need=need_a).count() == 3
    wait_for(
        lambda: (
            WebhookDelivery.objects.dangerously_unscoped()
            .filter(status=DeliveryStatus.DELIVERED)
            .count()
            == 2
        )
    )

    # Every stream prediction reaches the log, read through the predictions API.
    predlog.flush()
    log = api_a.get("/api/v1/predictions/?channel=stream&need=news").json()
    assert sorted(row["item_ref"] for row in log["results"]) == ["s1", "s2", "t1"]


def test_failed_deliveries_are_retried_with_backoff(
    requires_redis, real_worker, api_a, need_a, webhook_tenant_a, receiver
):
    receiver.fail_first = 2
    ingest(api_a, [{"id": "r1", "text": SPORT}])
    wait_for(
        lambda: (
            WebhookDelivery.objects.dangerously_unscoped()
            .filter(status=DeliveryStatus.DELIVERED)
            .exists()
        )
    )
    delivery = WebhookDelivery.objects.dangerously_unscoped().get()
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3
    assert receiver.requests[0]["body"] == receiver.requests[2]["body"]


def test_exhausted_deliveries_become_dead_letters_and_can_be_replayed(
    settings,
    django_capture_on_commit_callbacks,
    api_a,
    need_a,
    webhook_tenant_a,
    receiver,
    client,
    alice,
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.always_fail = True
    with django_capture_on_commit_callbacks(execute=True):
        ingest(api_a, [{"id": "d1", "text": SPORT}])
    delivery = WebhookDelivery.objects.dangerously_unscoped().get()
    assert delivery.status == DeliveryStatus.DEAD
    assert delivery.attempts == 3 and delivery.last_status_code == 500
    assert len(receiver.requests) == 3
    # The items themselves are tagged: only the delivery failed.
    assert Item.objects.dangerously_unscoped().get(external_id="d1").status == ItemStatus.TAGGED

    dead = api_a.get("/api/v1/dead-letters/").json()
    assert [row["id"] for row in dead["results"]] == [delivery.pk]
    assert dead["results"][0]["payload"]["items"][0]["id"] == "d1"

    client.force_login(alice)
    page = client.get("/serving/dead-letters/").content.decode()
    assert f"#{delivery.pk}" in page and "HTTP 500" in page

    receiver.always_fail = False
    receiver.requests.clear()
    with django_capture_on_commit_callbacks(execute=True):
        replay = api_a.post(f"/api/v1/dead-letters/{delivery.pk}/replay")
    assert replay.status_code == 202
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.replays == 1
    assert len(receiver.requests) == 1
    assert api_a.get("/api/v1/dead-letters/").json()["count"] == 0
    assert api_a.post(f"/api/v1/dead-letters/{delivery.pk}/replay").status_code == 409


def test_other_tenants_dead_letters_are_invisible(
    settings, django_capture_on_commit_callbacks, api_a, api_b, need_a, webhook_tenant_a, receiver
):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.always_fail = True
    with django_capture_on_commit_callbacks(execute=True):
        ingest(api_a, [{"id": "d1", "text": SPORT}])
    delivery = WebhookDelivery.objects.dangerously_unscoped().get()
    assert api_b.get("/api/v1/dead-letters/").json()["count"] == 0
    assert api_b.post(f"/api/v1/dead-letters/{delivery.pk}/replay").status_code == 404


def test_stream_needs_the_tag_scope_and_own_need(api_b, need_a, need_b):
    assert ingest(api_b, [{"id": "1", "text": SPORT}], slug="news").status_code == 404
    assert api_b.get("/api/v1/needs/news/items").status_code == 404


def test_items_get_filters_by_since_and_paginates(
    django_capture_on_commit_callbacks, api_a, need_a
):
    with django_capture_on_commit_callbacks(execute=True):
        ingest(api_a, [{"id": f"i{n}", "text": f"{SPORT} {n}"} for n in range(5)])
    page = api_a.get("/api/v1/needs/news/items?limit=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2 and page["next"]
    assert all(row["status"] == "tagged" for row in page["results"])
    assert api_a.get("/api/v1/needs/news/items?since=2999-01-01T00:00:00Z").json()["count"] == 0
    bad = api_a.get("/api/v1/needs/news/items?since=yesterday")
    assert bad.status_code == 400 and bad.json()["error"]["fields"]["since"]


def test_pending_items_are_requeued_by_the_sweeper(
    django_capture_on_commit_callbacks, api_a, need_a
):
    from datetime import timedelta

    from django.utils import timezone

    from workers.tasks.online import tag_pending_items

    with django_capture_on_commit_callbacks(execute=False):  # the tagging task is "lost"
        ingest(api_a, [{"id": "lost", "text": SPORT}])
    item = Item.objects.dangerously_unscoped().get(external_id="lost")
    assert item.status == ItemStatus.PENDING
    Item.objects.dangerously_unscoped().filter(pk=item.pk).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )
    assert tag_pending_items.delay().get() == 1
    item.refresh_from_db()
    assert item.status == ItemStatus.TAGGED and item.result["labels"] == ["Sport"]


@pytest.mark.django_db
def test_signature_rejects_stale_timestamps():
    body = b"{}"
    old = "1000000000"
    signature = webhooks.sign(secret="k", timestamp=old, body=body)
    assert not webhooks.verify(secret="k", timestamp=old, body=body, signature=signature)


def test_stream_log_lines_commit_with_their_results_and_never_without(
    monkeypatch, django_capture_on_commit_callbacks, api_a, need_a, webhook_tenant_a
):
    """No buffer between results and log lines: a failure before the commit leaves neither (the
    redelivery writes both), and a commit holds both, before any flush and without Redis."""
    from serving import services
    from serving.models import PredictionLog

    with django_capture_on_commit_callbacks(execute=False):  # the tagging task runs by hand
        ingest(api_a, [{"id": "a1", "text": SPORT}, {"id": "a2", "text": TECH}])
    pks = list(Item.objects.dangerously_unscoped().filter(need=need_a).values_list("pk", flat=True))

    def killed(**kwargs):
        raise RuntimeError("worker died before the commit")

    monkeypatch.setattr(webhooks, "delivery_create", killed)
    with pytest.raises(RuntimeError):
        services.stream_items_tag(need_id=need_a.pk, item_ids=pks)
    assert not PredictionLog.objects.dangerously_unscoped().exists()
    assert set(Item.objects.dangerously_unscoped().values_list("status", flat=True)) == {
        ItemStatus.PENDING
    }

    monkeypatch.undo()
    monkeypatch.setattr(predlog, "get_redis", lambda: pytest.fail("stream lines go to the DB"))
    with django_capture_on_commit_callbacks(execute=False):
        assert services.stream_items_tag(need_id=need_a.pk, item_ids=pks) == 2
        # A redelivery of the same task writes nothing twice.
        assert services.stream_items_tag(need_id=need_a.pk, item_ids=pks) == 0
    logged = PredictionLog.objects.dangerously_unscoped().filter(channel="stream", need=need_a)
    assert sorted(logged.values_list("item_ref", flat=True)) == ["a1", "a2"]
    assert set(Item.objects.dangerously_unscoped().values_list("status", flat=True)) == {
        ItemStatus.TAGGED
    }
