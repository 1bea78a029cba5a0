"""Batch jobs heal by themselves after a worker dies (issue 12.1, 12.5, 12.8): a redelivered chunk
takes over at once, leases are sized to the measured chunk time, a sweeper re-sends stranded
chunks, a poison chunk fails after N attempts, and log lines commit with the results."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from serving import predlog, services
from serving.models import (
    BatchChunk,
    BatchJob,
    BatchResult,
    BatchStatus,
    ChunkStatus,
    PredictionLog,
)
from serving.runtime import get_runtime
from tests.serving.test_batch import SPORT, TECH, csv_file, upload


class Killed(BaseException):
    """What a SIGKILL looks like from inside the chunk: nothing after it runs, no except clause
    catches it (a BaseException, like the process simply vanishing)."""


@pytest.fixture
def queued_job(settings, api_a, need_a):
    """A job of 3 chunks whose messages were not run (no on_commit callbacks in the test)."""
    settings.BATCH_CHUNK_SIZE = 3
    rows = [(f"r{n}", SPORT if n % 2 else TECH) for n in range(9)]
    response = upload(api_a, csv_file(rows))
    assert response.status_code == 201, response.content
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert job.status == BatchStatus.QUEUED
    return job


def chunks(job) -> list[BatchChunk]:
    return list(BatchChunk.objects.filter(job=job).order_by("index"))


def kill_inside_tag(monkeypatch):
    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(type(get_runtime()), "tag", die)


def test_redelivery_of_a_dead_claimers_message_takes_the_chunk_over_at_once(
    monkeypatch, settings, queued_job
):
    settings.BATCH_CHUNK_LEASE_SECONDS = 600
    first = chunks(queued_job)[0]
    with monkeypatch.context() as patch:
        kill_inside_tag(patch)
        with pytest.raises(Killed):
            services.batch_chunk_run(chunk_id=first.pk, task_id="message-1")
    first.refresh_from_db()
    assert first.status == ChunkStatus.RUNNING and first.lease_until > timezone.now()

    # Another message for the chunk (e.g. a sweeper's copy) respects the live lease ...
    assert services.batch_chunk_run(chunk_id=first.pk, task_id="message-2") == "busy"
    # ... but the same message, redelivered (reject_on_worker_lost), means its claimer died.
    outcome = services.batch_chunk_run(chunk_id=first.pk, task_id="message-1")

    first.refresh_from_db()
    assert outcome == "done"
    assert first.status == ChunkStatus.DONE and first.attempts == 2
    assert BatchResult.objects.filter(job=queued_job).count() == 3


def test_lease_is_sized_to_the_measured_chunk_time(settings, queued_job, api_a):
    settings.BATCH_CHUNK_LEASE_SECONDS = 600
    settings.BATCH_CHUNK_LEASE_FACTOR = 3.0
    settings.BATCH_CHUNK_LEASE_MIN_SECONDS = 0.001
    settings.BATCH_CHUNK_LEASE_MAX_SECONDS = 900
    first, second, _ = chunks(queued_job)
    assert services.batch_chunk_lease_seconds(job=queued_job) == 600  # nothing measured yet

    services.batch_chunk_run(chunk_id=first.pk, task_id="a")
    queued_job.refresh_from_db()
    first.refresh_from_db()
    assert first.seconds is not None and queued_job.chunk_seconds == pytest.approx(first.seconds)
    lease = services.batch_chunk_lease_seconds(job=queued_job)
    assert lease == pytest.approx(3.0 * first.seconds)
    assert lease < 60  # seconds, not the 10 minutes a fixed lease gave

    # The claim really uses it, and a floor keeps it from being absurdly short.
    settings.BATCH_CHUNK_LEASE_MIN_SECONDS = 7.0
    services.batch_chunk_run(chunk_id=second.pk, task_id="b")
    second.refresh_from_db()
    assert second.status == ChunkStatus.DONE
    claimed_for = services.batch_chunk_lease_seconds(job=queued_job)
    assert claimed_for == 7.0

    # A new job of the same need starts from the need's last measurement.
    response = upload(api_a, csv_file([("n1", SPORT)]))
    new_job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    assert new_job.chunk_seconds is None
    assert services.batch_chunk_lease_seconds(job=new_job) == 7.0


def test_a_chunk_whose_worker_dies_every_time_fails_the_job_after_max_attempts(
    monkeypatch, settings, queued_job, api_a
):
    settings.BATCH_CHUNK_MAX_ATTEMPTS = 3
    poison = chunks(queued_job)[1]
    with monkeypatch.context() as patch:
        kill_inside_tag(patch)
        for _ in range(3):
            with pytest.raises(Killed):
                services.batch_chunk_run(chunk_id=poison.pk, task_id="poison")
    poison.refresh_from_db()
    assert poison.attempts == 3 and poison.status == ChunkStatus.RUNNING

    # The 4th delivery of the same message gives up instead of killing another worker.
    outcome = services.batch_chunk_run(chunk_id=poison.pk, task_id="poison")

    poison.refresh_from_db()
    queued_job.refresh_from_db()
    assert outcome == "failed"
    assert poison.status == ChunkStatus.FAILED and poison.attempts == 3
    assert queued_job.status == BatchStatus.FAILED
    assert "Chunk 1 (items 4-6)" in queued_job.error and "3 attempts" in queued_job.error
    assert not BatchChunk.objects.filter(
        job=queued_job, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
    ).exists()
    detail = api_a.get(f"/api/v1/batch-jobs/{queued_job.pk}/").json()
    assert detail["status"] == "failed"
    assert detail["chunks"]["failed"] == 1 and detail["chunks"]["max_attempts"] == 3
    assert "BATCH_CHUNK_MAX_ATTEMPTS" in detail["error"]


def test_log_lines_are_committed_with_the_chunks_results(settings, queued_job, need_a):
    settings.SERVING_ASYNC_WRITES = True  # the write-behind buffer must not be involved
    first = chunks(queued_job)[0]

    services.batch_chunk_run(chunk_id=first.pk, task_id="a")

    # No flush: the rows are in the database the moment the results are, and nothing waits in
    # a buffer that a SIGKILL right after the commit (or a Redis blip) could lose.
    assert predlog.pending() == 0
    logged = PredictionLog.objects.dangerously_unscoped().filter(need=need_a, channel="batch")
    assert sorted(logged.values_list("item_ref", flat=True)) == ["r0", "r1", "r2"]
    # A redelivery after such a kill finds the chunk done and writes nothing twice.
    assert services.batch_chunk_run(chunk_id=first.pk, task_id="a") == "done"
    assert logged.count() == 3


def test_a_chunk_rolled_back_leaves_no_log_lines(monkeypatch, queued_job, need_a):
    first = chunks(queued_job)[0]

    original_write = predlog.write

    def write_then_fail(**kwargs):
        original_write(**kwargs)
        raise RuntimeError("database went away mid-commit")

    monkeypatch.setattr(predlog, "write", write_then_fail)
    with pytest.raises(RuntimeError):
        services.batch_chunk_run(chunk_id=first.pk, task_id="a")

    assert not PredictionLog.objects.dangerously_unscoped().filter(need=need_a).exists()
    assert not BatchResult.objects.filter(job=queued_job).exists()
    first.refresh_from_db()
    assert first.status == ChunkStatus.RUNNING  # its lease runs out; the sweeper re-sends it


def test_sweeper_resends_expired_and_stranded_chunks_only(
    django_capture_on_commit_callbacks, settings, queued_job, need_a
):
    settings.BATCH_SWEEP_SECONDS = 30
    first, second, third = chunks(queued_job)
    long_ago = timezone.now() - timedelta(minutes=5)
    # chunk 0: claimed by a worker that died (lease ran out); 1 and 2: reserved by it (pending).
    BatchChunk.objects.filter(pk=first.pk).update(
        status=ChunkStatus.RUNNING,
        attempts=1,
        claimed_at=long_ago,
        lease_until=long_ago + timedelta(seconds=20),
        queued_at=long_ago,
    )
    BatchChunk.objects.filter(pk__in=[second.pk, third.pk]).update(queued_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        sent = services.batch_chunks_sweep()

    queued_job.refresh_from_db()
    assert sent == 3
    assert queued_job.status == BatchStatus.SUCCEEDED  # (eager Celery ran the copies)
    assert BatchResult.objects.filter(job=queued_job).count() == 9
    assert (
        PredictionLog.objects.dangerously_unscoped().filter(need=need_a, channel="batch").count()
        == 9
    )
    assert services.batch_chunks_sweep() == 0  # nothing stale is left


def test_sweeper_leaves_a_job_with_recent_activity_alone(settings, queued_job):
    settings.BATCH_SWEEP_SECONDS = 30
    first, second, third = chunks(queued_job)
    long_ago = timezone.now() - timedelta(minutes=5)
    BatchChunk.objects.filter(job=queued_job).update(queued_at=long_ago)
    # A chunk claimed a moment ago with a live lease: the job is moving, its queue is not lost.
    BatchChunk.objects.filter(pk=first.pk).update(
        status=ChunkStatus.RUNNING,
        attempts=1,
        claimed_at=timezone.now(),
        lease_until=timezone.now() + timedelta(seconds=60),
    )
    assert services.batch_chunks_sweep() == 0

    # Nor are chunks whose message was sent recently re-sent again.
    BatchChunk.objects.filter(pk=first.pk).update(
        status=ChunkStatus.PENDING, claimed_at=None, lease_until=None, queued_at=timezone.now()
    )
    BatchChunk.objects.filter(pk__in=[second.pk, third.pk]).update(queued_at=timezone.now())
    assert services.batch_chunks_sweep() == 0


def test_sweeper_is_on_the_beat_schedule(settings):
    from tagging_platform.celery import app

    entry = app.conf.beat_schedule["serving: re-queue stale batch chunks"]
    assert entry["task"] == "workers.tasks.batch.sweep_stale_chunks"
    assert entry["schedule"] == settings.BATCH_SWEEP_SECONDS
    assert entry["options"]["expire_seconds"] >= 1


def test_admin_requeues_stuck_chunks(
    django_capture_on_commit_callbacks, client, staff_user, queued_job
):
    first = chunks(queued_job)[0]
    BatchChunk.objects.filter(pk=first.pk).update(
        status=ChunkStatus.RUNNING,
        attempts=1,
        claim_task="lost",
        lease_until=timezone.now() + timedelta(minutes=10),
    )
    client.force_login(staff_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/serving/batchjob/",
            {"action": "requeue_stuck_chunks", "_selected_action": [queued_job.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert "3 unfinished chunk(s) sent again" in response.content.decode()
    queued_job.refresh_from_db()
    assert queued_job.status == BatchStatus.SUCCEEDED
    assert BatchResult.objects.filter(job=queued_job).count() == 9


def test_job_page_and_api_show_a_chunk_waiting_for_its_lease(
    client, alice, api_a, settings, queued_job
):
    settings.BATCH_CHUNK_MAX_ATTEMPTS = 5
    first, second, _ = chunks(queued_job)
    now = timezone.now()
    BatchChunk.objects.filter(pk=first.pk).update(
        status=ChunkStatus.RUNNING, attempts=2, lease_until=now + timedelta(seconds=40)
    )
    BatchChunk.objects.filter(pk=second.pk).update(
        status=ChunkStatus.RUNNING, attempts=1, lease_until=now - timedelta(seconds=5)
    )
    BatchJob.objects.dangerously_unscoped().filter(pk=queued_job.pk).update(
        status=BatchStatus.RUNNING
    )

    detail = api_a.get(f"/api/v1/batch-jobs/{queued_job.pk}/").json()
    waiting = detail["chunks"]["waiting"]
    assert detail["chunks"]["running"] == 2 and detail["chunks"]["pending"] == 1
    assert [w["index"] for w in waiting] == [0, 1]
    assert waiting[0]["attempts"] == 2 and 30 < waiting[0]["lease_seconds_left"] <= 40
    assert waiting[1]["lease_seconds_left"] < 0  # its claimer is gone: the sweeper re-sends it

    client.force_login(alice)
    row = client.get(f"/serving/batches/{queued_job.pk}/row/").content.decode()
    assert "Chunk 0 (items 1–3), attempt 2 of 5: waiting for its lease" in row
    assert "Chunk 1 (items 4–6), attempt 1 of 5: its worker stopped" in row
