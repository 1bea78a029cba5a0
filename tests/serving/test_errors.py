"""Every limit and input error answers a JSON error with a stable code, and writes nothing."""

from __future__ import annotations

import pytest

from serving.models import Item, PredictionLog
from serving.redis_pool import get_redis
from tagging_platform.celery import app

SPORT = "football match goal striker league coach stadium penalty"


def post_raw(client, url, body: bytes):
    return client.generic("POST", url, body, content_type="application/json")


def error(response):
    return response.json()["error"]


@pytest.fixture(params=["tag", "items"])
def endpoint(request):
    """The same validation guards the sync and the stream endpoints."""
    return f"/api/v1/needs/news/{request.param}"


def assert_nothing_written():
    assert not Item.objects.dangerously_unscoped().exists()
    from serving import predlog

    assert predlog.flush() == 0
    assert not PredictionLog.objects.dangerously_unscoped().exists()


def test_too_many_items(settings, api_a, need_a, endpoint):
    settings.TAG_MAX_ITEMS = settings.STREAM_MAX_ITEMS = 3
    items = [{"id": str(i), "text": SPORT} for i in range(4)]
    response = api_a.post(endpoint, {"items": items}, format="json")
    assert response.status_code == 413
    assert error(response)["code"] == "too_many_items"
    assert_nothing_written()


def test_text_too_long(settings, api_a, need_a, endpoint):
    settings.TAG_MAX_TEXT_CHARS = 50
    items = [{"id": "ok", "text": SPORT[:40]}, {"id": "long", "text": "x" * 51}]
    response = api_a.post(endpoint, {"items": items}, format="json")
    assert response.status_code == 413
    assert error(response)["code"] == "text_too_long"
    assert "items[1].text" in error(response)["fields"]
    assert_nothing_written()


def test_malformed_json(api_a, need_a, endpoint):
    response = post_raw(api_a, endpoint, b'{"items": [')
    assert response.status_code == 400
    assert error(response)["code"] == "malformed_json"
    assert_nothing_written()


def test_invalid_utf8_body(api_a, need_a, endpoint):
    response = post_raw(api_a, endpoint, b'{"items": [{"id": "1", "text": "caf\xe9"}]}')
    assert response.status_code == 400
    assert error(response)["code"] == "invalid_utf8"
    assert_nothing_written()


def test_lone_surrogate_is_invalid_utf8(api_a, need_a, endpoint):
    response = post_raw(api_a, endpoint, b'{"items": [{"id": "1", "text": "bad \\ud800 text"}]}')
    assert response.status_code == 400
    assert error(response)["code"] == "invalid_utf8"
    assert_nothing_written()


@pytest.mark.parametrize(
    "body, field",
    [
        ([{"id": "1", "text": SPORT}], "items"),  # not an object
        ({"items": "text"}, "items"),
        ({"items": []}, "items"),
        ({"items": ["just text"]}, "items[0]"),
        ({"items": [{"id": "1", "text": 42}]}, "items[0].text"),
        ({"items": [{"text": SPORT}]}, "items[0].id"),
        ({"items": [{"id": ["1"], "text": SPORT}]}, "items[0].id"),
    ],
)
def test_wrong_types_are_400_with_fields(api_a, need_a, endpoint, body, field):
    response = api_a.post(endpoint, body, format="json")
    assert response.status_code == 400
    assert error(response)["code"] == "invalid"
    assert field in error(response)["fields"]
    assert_nothing_written()


def test_nul_characters_are_400_with_fields(api_a, need_a, endpoint):
    items = [{"id": "good", "text": SPORT}, {"id": "b\x00d", "text": "goal\x00 scored"}]
    response = api_a.post(endpoint, {"items": items}, format="json")
    assert response.status_code == 400
    assert error(response)["code"] == "invalid"
    assert set(error(response)["fields"]) == {"items[1].id", "items[1].text"}
    assert_nothing_written()


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_or_whitespace_text(api_a, need_a, endpoint, text):
    items = [{"id": "good", "text": SPORT}, {"id": "bad", "text": text}]
    response = api_a.post(endpoint, {"items": items}, format="json")
    assert response.status_code == 400
    assert error(response)["code"] == "empty_text"
    assert list(error(response)["fields"]) == ["items[1].text"]
    assert_nothing_written()


def test_request_body_over_the_upload_limit(settings, api_a, need_a, endpoint):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    response = api_a.post(endpoint, {"items": [{"id": "1", "text": "y" * 300}]}, format="json")
    assert response.status_code == 413
    assert error(response)["code"] == "request_too_large"
    assert_nothing_written()


def test_over_quota_is_429_with_retry_after(api_a, tenant_a, need_a, endpoint):
    tenant_a.quota_requests_per_minute = 2
    tenant_a.save()
    for n in range(2):
        response = api_a.post(endpoint, {"items": [{"id": str(n), "text": SPORT}]}, format="json")
        assert response.status_code in (200, 202)
    items_before = Item.objects.dangerously_unscoped().count()
    response = api_a.post(endpoint, {"items": [{"id": "over", "text": SPORT}]}, format="json")
    assert response.status_code == 429
    assert error(response)["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Item.objects.dangerously_unscoped().count() == items_before


def test_quota_is_per_tenant(api_a, api_b, tenant_a, need_a, need_b):
    tenant_a.quota_requests_per_minute = 1
    tenant_a.save()
    assert (
        api_a.post(
            "/api/v1/needs/news/tag", {"items": [{"id": "1", "text": SPORT}]}, format="json"
        ).status_code
        == 200
    )
    assert (
        api_a.post(
            "/api/v1/needs/news/tag", {"items": [{"id": "1", "text": SPORT}]}, format="json"
        ).status_code
        == 429
    )
    ok = api_b.post(
        "/api/v1/needs/bravo-news/tag", {"items": [{"id": "1", "text": SPORT}]}, format="json"
    )
    assert ok.status_code == 200


def test_quota_counter_lives_in_redis(requires_redis, api_a, tenant_a, need_a):
    api_a.post("/api/v1/needs/news/tag", {"items": [{"id": "1", "text": SPORT}]}, format="json")
    keys = get_redis().keys(f"tp:rl:{tenant_a.pk}:*")
    assert len(keys) == 1 and int(get_redis().get(keys[0])) == 1


# --- execution="queue" ------------------------------------------------------------------------
def test_queue_execution_answers_through_the_online_task(api_a, need_a):
    need_a.execution = "queue"
    need_a.save()
    response = api_a.post(
        "/api/v1/needs/news/tag", {"items": [{"id": "q", "text": SPORT}]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["items"][0]["labels"] == ["Sport"]


def test_queue_timeout_is_503_with_retry_after(
    requires_redis, settings, api_a, need_a, transactional_db
):
    need_a.execution = "queue"
    need_a.save()
    settings.SYNC_QUEUE_TIMEOUT_SECONDS = 0.5
    app.conf.task_always_eager = False  # no worker is running: the task is never picked up
    try:
        response = api_a.post(
            "/api/v1/needs/news/tag", {"items": [{"id": "q", "text": SPORT}]}, format="json"
        )
    finally:
        app.conf.task_always_eager = True
        app.control.purge()
    assert response.status_code == 503
    assert error(response)["code"] == "queue_timeout"
    assert response["Retry-After"] == "1"


def test_queue_overload_is_503_without_enqueueing(requires_redis, settings, api_a, need_a):
    need_a.execution = "queue"
    need_a.save()
    settings.SYNC_QUEUE_MAX_DEPTH = 2
    client = get_redis()
    client.rpush("online", b"backlog-1", b"backlog-2")
    try:
        response = api_a.post(
            "/api/v1/needs/news/tag", {"items": [{"id": "q", "text": SPORT}]}, format="json"
        )
        assert client.llen("online") == 2
    finally:
        client.delete("online")
    assert response.status_code == 503
    assert error(response)["code"] == "overloaded"
    assert int(response["Retry-After"]) >= 1
