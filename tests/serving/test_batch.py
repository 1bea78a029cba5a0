"""Batch jobs: uploads, stored-item selections, progress, cancel, downloads, limits, schedules."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from serving import predlog
from serving.models import (
    BatchChunk,
    BatchJob,
    BatchResult,
    BatchStatus,
    ChunkStatus,
    PredictionLog,
)
from tests.serving import slow_batch
from tests.serving.conftest import wait_for

SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"


def csv_file(rows, name="items.csv"):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "text"])
    writer.writerows(rows)
    return SimpleUploadedFile(name, buffer.getvalue().encode(), content_type="text/csv")


def jsonl_file(rows, name="items.jsonl"):
    body = "\n".join(json.dumps({"id": i, "text": t}) for i, t in rows) + "\n"
    return SimpleUploadedFile(name, body.encode(), content_type="application/x-ndjson")


def upload(client, file, need="news"):
    return client.post("/api/v1/batch-jobs", {"need": need, "file": file}, format="multipart")


@pytest.fixture
def small_chunks(settings):
    settings.BATCH_CHUNK_SIZE = 3


def test_csv_upload_runs_in_chunks_and_downloads(
    django_capture_on_commit_callbacks, small_chunks, api_a, need_a
):
    rows = [(f"c{n}", SPORT if n % 2 else TECH) for n in range(8)]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api_a, csv_file(rows))
    assert response.status_code == 201, response.content
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert job.status == BatchStatus.SUCCEEDED
    assert job.chunks.count() == 3 and not job.chunks.exclude(status=ChunkStatus.DONE).exists()
    detail = api_a.get(f"/api/v1/batch-jobs/{job.pk}/").json()
    assert detail["progress"]["done"] == detail["progress"]["total"] == 8
    assert detail["progress"]["percent"] == 100.0

    download = api_a.get(f"/api/v1/batch-jobs/{job.pk}/results?format=csv")
    assert download["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert [row["id"] for row in table] == [r[0] for r in rows]
    assert table[1]["labels"] == "Sport" and table[0]["labels"] == "news.tech"
    assert table[0]["model"] == "news-topics/tfidf-logreg" and table[0]["model_version"] == "1"

    jsonl = api_a.get(f"/api/v1/batch-jobs/{job.pk}/results?format=jsonl")
    lines = [json.loads(line) for line in b"".join(jsonl.streaming_content).decode().splitlines()]
    assert len(lines) == 8 and lines[1]["labels"] == ["Sport"]
    assert set(lines[1]["scores"]) == {"Sport", "Money", "news.tech"}
    # Batch predictions are logged exactly once each.
    predlog.flush()
    assert PredictionLog.objects.dangerously_unscoped().filter(channel="batch").count() == 8


def test_jsonl_upload(django_capture_on_commit_callbacks, api_a, need_a):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(api_a, jsonl_file([("j1", SPORT), ("j2", TECH)]))
    assert response.status_code == 201
    assert BatchResult.objects.filter(job_id=response.json()["id"]).count() == 2


def test_batch_of_stored_items(django_capture_on_commit_callbacks, api_a, need_a):
    with django_capture_on_commit_callbacks(execute=True):
        api_a.post(
            "/api/v1/needs/news/items",
            {"items": [{"id": "x1", "text": SPORT}, {"id": "x2", "text": TECH}]},
            format="json",
        )
        response = api_a.post(
            "/api/v1/batch-jobs", {"need": "news", "item_ids": ["x2"]}, format="json"
        )
    assert response.status_code == 201, response.content
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert job.source == "items" and job.total_items == 1
    assert list(job.results.values_list("external_id", "labels")) == [("x2", ["news.tech"])]


def test_cancel_stops_pending_chunks(
    django_capture_on_commit_callbacks, small_chunks, api_a, need_a
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(api_a, csv_file([(f"c{n}", SPORT) for n in range(9)]))
    job_id = response.json()["id"]
    cancel = api_a.post(f"/api/v1/batch-jobs/{job_id}/cancel")
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    for callback in callbacks:  # the queued chunk tasks run after the cancel
        callback()
    assert not BatchResult.objects.filter(job_id=job_id).exists()
    assert set(BatchChunk.objects.filter(job_id=job_id).values_list("status", flat=True)) == {
        "cancelled"
    }
    assert api_a.post(f"/api/v1/batch-jobs/{job_id}/cancel").status_code == 409


def test_cancel_mid_run_with_a_real_worker(
    requires_redis, settings, request, real_worker, api_a, need_a
):
    settings.BATCH_CHUNK_SIZE = 2
    undo = slow_batch.install(0.3)  # the worker thread shares this process
    request.addfinalizer(undo)
    response = upload(api_a, csv_file([(f"c{n}", SPORT) for n in range(20)]))
    job_id = response.json()["id"]
    wait_for(lambda: BatchJob.objects.dangerously_unscoped().get(pk=job_id).done_items >= 2)
    assert api_a.post(f"/api/v1/batch-jobs/{job_id}/cancel").status_code == 200
    wait_for(
        lambda: (
            not BatchChunk.objects.filter(job_id=job_id, status__in=["pending", "running"]).exists()
        )
    )
    job = BatchJob.objects.dangerously_unscoped().get(pk=job_id)
    assert job.status == BatchStatus.CANCELLED
    results = BatchResult.objects.filter(job_id=job_id).count()
    assert 2 <= results < 20
    assert results == job.done_items  # progress and results agree


def test_other_tenants_jobs_are_404(django_capture_on_commit_callbacks, api_a, api_b, need_a):
    with django_capture_on_commit_callbacks(execute=True):
        job_id = upload(api_a, csv_file([("c1", SPORT)])).json()["id"]
    assert api_b.get(f"/api/v1/batch-jobs/{job_id}/").status_code == 404
    assert api_b.get(f"/api/v1/batch-jobs/{job_id}/results?format=csv").status_code == 404
    assert api_b.post(f"/api/v1/batch-jobs/{job_id}/cancel").status_code == 404
    assert api_b.get("/api/v1/batch-jobs").json()["count"] == 0
    assert upload(api_b, csv_file([("c1", SPORT)]), need="news").status_code == 404


def assert_refused(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not BatchJob.objects.dangerously_unscoped().exists()


def test_upload_too_large_is_413(settings, api_a, need_a):
    settings.UPLOAD_MAX_BYTES = 100
    assert_refused(upload(api_a, csv_file([("c1", SPORT * 3)])), 413, "upload_too_large")


def test_upload_with_invalid_utf8_is_400(api_a, need_a):
    bad = SimpleUploadedFile("x.csv", b"id,text\n1,caf\xe9 au lait\n", content_type="text/csv")
    response = upload(api_a, bad)
    assert_refused(response, 400, "invalid_utf8")
    assert "line 2" in response.json()["error"]["fields"]


def test_upload_with_a_malformed_jsonl_line_is_400(api_a, need_a):
    bad = SimpleUploadedFile(
        "x.jsonl",
        b'{"id": "1", "text": "ok text"}\n{"id": 2, "text": \n',
        content_type="application/x-ndjson",
    )
    response = upload(api_a, bad)
    assert_refused(response, 400, "malformed_json")
    assert "line 2" in response.json()["error"]["fields"]


def test_upload_with_empty_text_is_400(api_a, need_a):
    assert_refused(upload(api_a, csv_file([("1", SPORT), ("2", "   ")])), 400, "empty_text")


def test_upload_with_too_long_text_is_413(settings, api_a, need_a):
    settings.TAG_MAX_TEXT_CHARS = 20
    assert_refused(upload(api_a, csv_file([("1", SPORT)])), 413, "text_too_long")


def test_upload_with_a_nul_character_is_400(api_a, need_a):
    response = upload(api_a, jsonl_file([("1", SPORT), ("2", "bad\x00text")]))
    assert_refused(response, 400, "invalid")
    assert "line 2" in response.json()["error"]["fields"]


def test_stored_items_keep_every_character_of_the_upload(api_a, need_a):
    """Quoting, separators, escapes and a literal NULL survive the upload and the database."""
    from serving.models import BatchItem

    rows = [
        ("q1", 'He said "goal", twice; then left.'),
        ("nl", "line one\nline two\r\nline three"),
        ("tab", "a\tb\\N c\\ d"),
        ("uni", "Café — 新闻 ✓ \u00a0nbsp"),
        ("edge,id", ' "" , '),
        ("null", "NULL"),
    ]
    response = upload(api_a, jsonl_file(rows))
    assert response.status_code == 201, response.content
    stored = BatchItem.objects.filter(job_id=response.json()["id"]).order_by("position")
    assert [(item.position, item.external_id, item.text) for item in stored] == [
        (n, item_id, text) for n, (item_id, text) in enumerate(rows)
    ]


def test_csv_without_text_column_is_400(api_a, need_a):
    bad = SimpleUploadedFile("x.csv", b"id,body\n1,hello\n", content_type="text/csv")
    assert_refused(upload(api_a, bad), 400, "invalid")


def test_missing_need_or_file_is_400(api_a, need_a):
    assert_refused(
        api_a.post("/api/v1/batch-jobs", {"file": csv_file([("1", SPORT)])}, format="multipart"),
        400,
        "invalid",
    )
    assert_refused(
        api_a.post("/api/v1/batch-jobs", {"need": "news"}, format="json"), 400, "invalid"
    )


def test_batch_larger_than_the_tenants_item_quota_is_413(tenant_a, api_a, need_a):
    """Waiting can never make it fit, so it is not a 429 with a Retry-After."""
    tenant_a.quota_max_batch_items = 3
    tenant_a.save()
    response = upload(api_a, csv_file([(str(n), SPORT) for n in range(4)]))
    assert_refused(response, 413, "too_many_items")
    assert "Retry-After" not in response
    assert "at most 3" in response.json()["error"]["message"]


def test_batch_over_the_quota_with_jobs_in_flight_is_429(
    django_capture_on_commit_callbacks, tenant_a, api_a, need_a
):
    tenant_a.quota_max_batch_items = 3
    tenant_a.save()
    with django_capture_on_commit_callbacks(execute=False):  # the first job stays queued
        first = upload(api_a, csv_file([("a", SPORT), ("b", SPORT)]))
    assert first.status_code == 201
    response = upload(api_a, csv_file([("c", SPORT), ("d", SPORT)]))
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "batch_quota_exceeded"
    assert response["Retry-After"] == "60"
    assert BatchJob.objects.dangerously_unscoped().count() == 1


def test_batch_needs_the_batch_scope(tenant_a, need_a):
    from tenants.models import ApiKeyScope
    from tests.conftest import api_client_for_key
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory(tenant=tenant_a, name="tag-only", scopes=[ApiKeyScope.TAG])
    assert_refused(
        upload(api_client_for_key(key), csv_file([("1", SPORT)])), 403, "permission_denied"
    )


def test_scheduled_batch_tags_only_items_new_since_the_last_run(
    django_capture_on_commit_callbacks, api_a, tenant_a, need_a
):
    from django_celery_beat.models import PeriodicTask

    from serving import services
    from workers.tasks.batch import run_scheduled_batch

    scheduled = services.scheduled_batch_create(tenant=tenant_a, need=need_a, name="nightly")
    task = PeriodicTask.objects.get(pk=scheduled.periodic_task_id)
    assert task.task == "workers.tasks.batch.run_scheduled_batch" and json.loads(task.args) == [
        scheduled.pk
    ]
    assert str(task.crontab.minute) == "0" and str(task.crontab.hour) == "2"

    def ingest(ids):
        api_a.post(
            "/api/v1/needs/news/items",
            {"items": [{"id": i, "text": SPORT} for i in ids]},
            format="json",
        )

    with django_capture_on_commit_callbacks(execute=True):
        ingest(["a", "b"])
        first = run_scheduled_batch.delay(scheduled.pk).get()
    with django_capture_on_commit_callbacks(execute=True):
        ingest(["c"])
        second = run_scheduled_batch.delay(scheduled.pk).get()
    with django_capture_on_commit_callbacks(execute=True):
        third = run_scheduled_batch.delay(scheduled.pk).get()
    assert sorted(
        BatchResult.objects.filter(job_id=first).values_list("external_id", flat=True)
    ) == ["a", "b"]
    assert list(
        BatchResult.objects.filter(job_id=second).values_list("external_id", flat=True)
    ) == ["c"]
    assert third is None  # nothing new: no empty job
    assert BatchJob.objects.dangerously_unscoped().get(pk=second).source == "schedule"
