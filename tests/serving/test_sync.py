"""POST /api/v1/needs/{need}/tag: results, label mapping, thresholds, aliases, the result cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from django.utils import timezone

from registry import ml
from serving import predlog
from serving.models import PredictionLog
from serving.runtime import get_runtime
from tenants.models import ApiKeyScope
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory
from tests.serving.factories import add_version, make_served_need, set_alias, train_classifier

SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"


def tag(client, need_slug, items, **extra):
    return client.post(f"/api/v1/needs/{need_slug}/tag", {"items": items}, format="json", **extra)


def test_tag_returns_mapped_labels_scores_and_model_version(api_a, need_a, model_version):
    response = tag(api_a, "news", [{"id": "a1", "text": SPORT}, {"id": 7, "text": TECH}])
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["need"] == "news"
    assert body["model"] == {"name": "news-topics/tfidf-logreg", "version": model_version.version}
    first, second = body["items"]
    assert first["id"] == "a1"
    assert first["labels"] == ["Sport"]  # mapped to the tenant's own name
    # JSON objects have no order: the best score is found by value, never by key position.
    assert max(first["scores"], key=first["scores"].get) == "Sport"
    assert set(first["scores"]) == {"Sport", "Money", "news.tech"}
    assert abs(sum(first["scores"].values()) - 1.0) < 0.01
    assert second["id"] == "7"
    assert second["labels"] == ["news.tech"]  # unmapped labels keep the global key
    assert second["model"]["version"] == model_version.version


def test_trailing_slash_is_accepted(api_a, need_a):
    response = api_a.post(
        "/api/v1/needs/news/tag/", {"items": [{"id": "1", "text": SPORT}]}, format="json"
    )
    assert response.status_code == 200


def test_session_user_with_requester_role_can_tag(client, alice, need_a):
    client.force_login(alice)
    response = client.post(
        "/api/v1/needs/news/tag",
        {"items": [{"id": "1", "text": SPORT}]},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["items"][0]["labels"] == ["Sport"]


def test_viewer_session_cannot_tag(client, bob, need_a):
    client.force_login(bob)
    response = client.post(
        "/api/v1/needs/news/tag",
        {"items": [{"id": "1", "text": SPORT}]},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_key_without_tag_scope_is_refused(tenant_a, need_a):
    key = ApiKeyFactory(tenant=tenant_a, name="reader", scopes=[ApiKeyScope.READ])
    response = tag(api_client_for_key(key), "news", [{"id": "1", "text": SPORT}])
    assert response.status_code == 403


def test_other_tenants_need_gets_404(api_b, need_a, need_b):
    response = tag(api_b, "news", [{"id": "1", "text": SPORT}])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "need_not_found"


def test_unknown_need_gets_404(api_a, need_a):
    response = tag(api_a, "nope", [{"id": "1", "text": SPORT}])
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "need_not_found"


def test_missing_key_gets_401(api, need_a):
    response = tag(api, "news", [{"id": "1", "text": SPORT}])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_wrong_key_gets_401(api, need_a, key_a):
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key_a.plain_key[:-3]}xyz")
    response = tag(api, "news", [{"id": "1", "text": SPORT}])
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoked_key_gets_401_within_the_key_cache_time(settings, api_a, key_a, need_a):
    settings.API_KEY_CACHE_SECONDS = 0.3
    assert tag(api_a, "news", [{"id": "1", "text": SPORT}]).status_code == 200
    key_a.revoked_at = timezone.now()
    key_a.save(update_fields=["revoked_at"])
    time.sleep(0.35)
    response = tag(api_a, "news", [{"id": "1", "text": SPORT}])
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_need_without_model_is_409(api_a, tenant_a, db):
    from tests.factories import NeedFactory

    NeedFactory(tenant=tenant_a, slug="unserved", status="approved")
    response = tag(api_a, "unserved", [{"id": "1", "text": SPORT}])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "need_not_served"


def test_threshold_top_k_and_per_label_thresholds_apply(api_a, tenant_a, model_version):
    make_served_need(tenant=tenant_a, slug="strict", version=model_version, threshold=0.999)
    make_served_need(tenant=tenant_a, slug="two", version=model_version, top_k=2)
    make_served_need(
        tenant=tenant_a,
        slug="per-label",
        version=model_version,
        label_mapping={"Sport": "news.sport"},
        per_label_thresholds={"Sport": 0.999},
    )
    item = [{"id": "1", "text": SPORT}]
    assert tag(api_a, "strict", item).json()["items"][0]["labels"] == []
    two = tag(api_a, "two", item).json()["items"][0]
    assert len(two["labels"]) == 2 and two["labels"][0] == "news.sport"
    assert tag(api_a, "per-label", item).json()["items"][0]["labels"] == []
    tech = tag(api_a, "per-label", [{"id": "2", "text": TECH}]).json()["items"][0]
    assert tech["labels"] == ["news.tech"]  # other labels keep the need's default threshold


def test_alias_move_is_picked_up_within_the_poll_interval(
    settings, monkeypatch, api_a, need_a, model_version
):
    from serving import runtime

    clock = [1000.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    settings.ALIAS_POLL_SECONDS = 2.0
    item = [{"id": "1", "text": SPORT}]
    assert tag(api_a, "news", item).json()["model"]["version"] == 1
    v2 = add_version(model_version.registered_model, train_classifier(seed=11))
    set_alias(v2)
    clock[0] += 1.0
    # Within the poll interval the process keeps serving v1 without asking the database ...
    assert tag(api_a, "news", item).json()["model"]["version"] == 1
    clock[0] += 1.5
    # ... and after it, the new version loads beside the old one (on a thread: this small model
    # may already be loaded when the request picks its model, so either may answer here; the
    # test_promotion_loads_once_per_process_beside_the_old_version... pins that deterministically)
    assert tag(api_a, "news", item).json()["model"]["version"] in (1, 2)
    assert get_runtime().wait_for_loads(timeout=60)
    # ... and the promotion is live as soon as it is loaded, without any restart.
    assert tag(api_a, "news", item).json()["model"]["version"] == 2
    set_alias(model_version)  # rollback
    clock[0] += 2.5
    assert tag(api_a, "news", item).json()["model"]["version"] == 1


def test_alias_poll_is_one_indexed_query_per_interval(
    settings, monkeypatch, api_a, need_a, django_assert_max_num_queries
):
    from serving import runtime

    clock = [1000.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    settings.ALIAS_POLL_SECONDS = 2.0
    item = [{"id": "1", "text": SPORT}]
    tag(api_a, "news", item)  # loads and caches key, need and model
    with django_assert_max_num_queries(0):
        tag(api_a, "news", item)
    clock[0] += 3
    with django_assert_max_num_queries(2):  # the need row and its alias row
        tag(api_a, "news", item)


def count_predictions(monkeypatch) -> list[list[str]]:
    """Record every batch of texts the serving runtime sends to a model."""
    calls: list[list[str]] = []
    original = ml.compile_scorer

    def compile_counting(model, *, check_texts):
        scorer, path = original(model, check_texts=check_texts)
        return (lambda texts: calls.append(list(texts)) or scorer(texts)), path

    monkeypatch.setattr(ml, "compile_scorer", compile_counting)
    return calls


def test_same_text_for_two_tenants_costs_one_prediction(monkeypatch, api_a, api_b, need_a, need_b):
    calls = count_predictions(monkeypatch)
    article = SPORT + " an article both tenants receive"
    a = tag(api_a, "news", [{"id": "x", "text": article}]).json()
    b = tag(api_b, "bravo-news", [{"id": "y", "text": article}]).json()
    assert sum(texts.count(article) for texts in calls) == 1
    assert a["items"][0]["labels"] == ["Sport"] and b["items"][0]["labels"] == ["news.sport"]
    assert a["items"][0]["scores"]["Sport"] == b["items"][0]["scores"]["news.sport"]
    # A request mixing a cached and a new text predicts only the new one, in one call.
    calls.clear()
    tag(
        api_a,
        "news",
        [{"id": "1", "text": article}, {"id": "2", "text": TECH}, {"id": "3", "text": TECH}],
    )
    assert calls == [[TECH]]


def test_tampered_artifact_is_refused(api_a, need_a, model_version, settings):
    from registry import artifacts

    path = artifacts.path_for(model_version.artifact_sha256)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    response = tag(api_a, "news", [{"id": "1", "text": SPORT}])
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    # Tenants get a plain message; the hash and the operator's fix are in the incident only.
    message = response.json()["error"]["message"]
    assert "unavailable" in message and model_version.artifact_sha256[:12] not in message
    assert "Refusing" not in message and "restore" not in message.lower()
    from registry.models import ArtifactIntegrityIncident

    incident = ArtifactIntegrityIncident.objects.get(sha256=model_version.artifact_sha256)
    assert "Refusing to load" in incident.message


def test_sync_predictions_are_logged_through_the_buffer(api_a, need_a, model_version):
    tag(api_a, "news", [{"id": "p1", "text": SPORT}, {"id": "p2", "text": TECH}])
    assert (
        PredictionLog.objects.dangerously_unscoped().count() == 0
    )  # buffered, not written on the hot path
    assert predlog.flush() == 2
    rows = {row.item_ref: row for row in PredictionLog.objects.dangerously_unscoped().all()}
    assert rows["p1"].channel == "sync"
    assert rows["p1"].labels == ["news.sport"] and rows["p1"].top_label == "news.sport"
    assert rows["p1"].model_version_id == model_version.pk
    assert rows["p1"].tenant_id == need_a.tenant_id and rows["p1"].need_id == need_a.pk
    assert rows["p2"].labels == ["news.tech"]


def test_sample_rate_zero_logs_no_sync_traffic(settings, api_a, need_a):
    settings.PREDICTION_LOG_SAMPLE_RATE = 0.0
    tag(api_a, "news", [{"id": "p1", "text": SPORT}])
    assert predlog.flush() == 0


@pytest.mark.django_db
def test_flush_command_writes_the_buffer(api_a, need_a):
    from io import StringIO

    from django.core.management import call_command

    tag(api_a, "news", [{"id": "p1", "text": SPORT}])
    out = StringIO()
    call_command("flush_prediction_log", stdout=out)
    assert "flushed 1" in out.getvalue()
    assert PredictionLog.objects.dangerously_unscoped().filter(item_ref="p1").exists()


def test_writes_ride_along_with_the_next_request_or_are_flushed_when_quiet(
    requires_redis, settings, monkeypatch, api_a, need_a
):
    from serving import result_cache
    from serving.redis_pool import get_redis, writer

    settings.SERVING_ASYNC_WRITES = True
    settings.WRITE_BEHIND_SECONDS = 60  # no flusher during the first part
    writer.flush()
    calls = count_predictions(monkeypatch)
    text = SPORT + " written later"
    key = result_cache.keys_for(
        need_a_version(need_a), [__import__("hashlib").sha256(text.encode()).hexdigest()]
    )[0]
    tag(api_a, "news", [{"id": "w1", "text": text}])
    assert not get_redis().exists(key)  # held back: nothing waited for it
    # The next request's one pipeline sends the pending write before its own cache lookup, so
    # the same text is answered from the cache at once.
    tag(api_a, "news", [{"id": "w2", "text": text}])
    assert get_redis().exists(key)
    assert sum(text in texts for texts in calls) == 1
    assert predlog.flush() == 2  # flush() sends what is still held first

    # A quiet process: the flusher sends held writes after WRITE_BEHIND_SECONDS.
    settings.WRITE_BEHIND_SECONDS = 0.05
    writer.submit(lambda pipe: pipe.set("tp:test:quiet", b"1", ex=60))
    deadline = time.monotonic() + 5
    while not get_redis().exists("tp:test:quiet") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert get_redis().get("tp:test:quiet") == b"1"


def need_a_version(need) -> int:
    return need.model.aliases.get(name="production").version_id


def test_tag_requests_and_model_loads_reach_the_metrics(client, api_a, need_a, settings):
    from prometheus_client import REGISTRY

    def sample(metric, **labels):
        return REGISTRY.get_sample_value(metric, labels) or 0.0

    before_requests = sample("tagging_requests_total", need="news", channel="sync")
    before_items = sample("tagging_items_total", need="news", channel="sync")
    response = tag(api_a, "news", [{"id": "1", "text": SPORT}, {"id": "2", "text": SPORT + " x"}])
    assert response.status_code == 200
    assert sample("tagging_requests_total", need="news", channel="sync") == before_requests + 1
    assert sample("tagging_items_total", need="news", channel="sync") == before_items + 2
    model = response.json()["model"]
    assert (
        sample(
            "tagging_model_loads_total",
            model=model["name"],
            version=str(model["version"]),
            outcome="loaded",
        )
        >= 1
    )
    assert (
        'tagging_request_duration_seconds_bucket{channel="sync"'
        in client.get("/metrics").content.decode()
    )


def test_compiled_scorer_matches_the_model_and_falls_back_when_it_cannot(need_a, model_version):
    from registry import artifacts

    classifier = artifacts.load(model_version.artifact_sha256)
    texts = [SPORT, TECH, "market shares profit", ""]
    scorer, path = ml.compile_scorer(classifier, check_texts=texts)
    assert path == "tfidf-linear"
    assert np.allclose(scorer(texts), classifier.predict_scores(texts))
    nb = ml.train(
        texts=[SPORT, TECH] * 5,
        label_lists=[["news.sport"], ["news.tech"]] * 5,
        labels=["news.sport", "news.tech"],
        multilabel=False,
        algorithm="complement-nb",
        params={"vectorizer": {"min_df": 1}},
    )
    # ComplementNB is linear too (softmax of X·log-probabilities): compiled, same scores.
    scorer, path = ml.compile_scorer(nb, check_texts=texts)
    assert path == "tfidf-linear"
    assert np.allclose(scorer(texts), nb.predict_scores(texts))
    # A model without a linear form (isotonic calibration) falls back to predict_scores.
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    nb.pipeline.steps[-1] = (
        "classifier",
        CalibratedClassifierCV(LinearSVC(), cv=2, method="isotonic"),
    )
    nb.pipeline.fit([SPORT, TECH] * 5, [0, 1] * 5)
    scorer, path = ml.compile_scorer(nb, check_texts=texts)
    assert path == "predict_scores"
    assert np.allclose(scorer(texts), nb.predict_scores(texts))


@pytest.fixture
def slow_loads(monkeypatch):
    """Loads of chosen versions block until released, and every load is counted."""
    import threading

    from serving.runtime import Runtime

    gate = threading.Event()
    blocked: set[int] = set()
    calls: list[int] = []
    real = Runtime._load_meta

    def load_meta(self, meta):
        calls.append(meta.version_id)
        if meta.version_id in blocked:
            assert gate.wait(timeout=60), "the test never released the load"
        return real(self, meta)

    monkeypatch.setattr(Runtime, "_load_meta", load_meta)
    return gate, blocked, calls


def test_promotion_loads_once_per_process_beside_the_old_version_and_switches_when_ready(
    settings, transactional_db, tenant_a, slow_loads
):
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as FuturesTimeout

    from django.db import connections

    from tests.serving.factories import make_model

    gate, blocked, calls = slow_loads
    v1 = make_model()
    need = make_served_need(tenant=tenant_a, slug="promo", version=v1)
    runtime = get_runtime()
    assert runtime.need_by_id(need.pk).model.version_id == v1.pk
    v2 = add_version(v1.registered_model, train_classifier(seed=11))
    blocked.add(v2.pk)
    set_alias(v2)

    # Many request threads see the promotion while v2 is still loading: none of them waits
    # for it (they would hang on the gate), and v2 is loaded once, not once per thread.
    def request_thread_binds():
        try:
            return runtime.need_by_id(need.pk)
        finally:
            connections.close_all()

    pool = ThreadPoolExecutor(max_workers=8)
    futures = [pool.submit(request_thread_binds) for _ in range(40)]
    try:
        served = [future.result(timeout=30) for future in futures]
    except FuturesTimeout:
        gate.set()  # let the stuck threads go, then fail
        raise AssertionError("a request thread waited for the new version's load") from None
    finally:
        pool.shutdown(wait=True)
    assert {s.model.version_id for s in served} == {v1.pk}
    assert calls.count(v2.pk) == 1

    settings.ALIAS_POLL_SECONDS = 3600  # the switch must not wait for the next poll
    gate.set()
    assert runtime.wait_for_loads(timeout=60)
    assert runtime.need_by_id(need.pk).model.version_id == v2.pk
    assert calls.count(v2.pk) == 1 and runtime.loads[v2.pk] == 1


def test_a_version_that_fails_to_load_in_the_background_leaves_the_old_one_serving(
    transactional_db, tenant_a, api_a, slow_loads
):
    import os

    from registry import artifacts
    from tests.serving.factories import make_model

    _, _, calls = slow_loads
    v1 = make_model()
    make_served_need(tenant=tenant_a, slug="news", version=v1)
    item = [{"id": "1", "text": SPORT}]
    assert tag(api_a, "news", item).json()["model"]["version"] == 1
    v2 = add_version(v1.registered_model, train_classifier(seed=11))
    path = artifacts.path_for(v2.artifact_sha256)
    os.chmod(path, 0o600)
    path.write_bytes(b"tampered")
    set_alias(v2)

    answers = [tag(api_a, "news", item) for _ in range(3)]
    get_runtime().wait_for_loads(timeout=60)
    answers.append(tag(api_a, "news", item))

    assert [a.status_code for a in answers] == [200] * 4
    assert {a.json()["model"]["version"] for a in answers} == {1}
    assert calls.count(v2.pk) == 1  # not retried on every request
