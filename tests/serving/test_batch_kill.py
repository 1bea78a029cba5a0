"""A batch worker SIGKILLed mid-chunk: the chunk is redelivered, nothing is lost or duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from serving import predlog
from serving.models import (
    BatchChunk,
    BatchJob,
    BatchResult,
    BatchStatus,
    ChunkStatus,
    PredictionLog,
)
from tagging_platform.celery import app
from tests.serving.conftest import wait_for
from tests.serving.test_batch import SPORT, TECH, csv_file, upload

WORKER = Path(__file__).with_name("worker_process.py")

pytestmark = pytest.mark.services


def start_worker(name: str, tmp_path: Path, settings) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        # The test database pytest-django created, so the worker sees the job and writes results there.
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
        "TEST_BATCH_CHUNK_DELAY_SECONDS": "1.0",
        "BATCH_CHUNK_LEASE_SECONDS": "3",
        "TEST_VISIBILITY_TIMEOUT": "2",
        "ALIAS_POLL_SECONDS": "60",
    }
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, str(WORKER), name],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: parent and pool child die together
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_sigkill_mid_chunk_ends_with_exactly_one_result_per_item(
    requires_postgres, requires_redis, settings, transactional_db, tmp_path, api_a, need_a
):
    settings.BATCH_CHUNK_SIZE = 4
    app.conf.task_always_eager = False
    first = second = None
    try:
        response = upload(api_a, csv_file([(f"k{n}", SPORT if n % 3 else TECH) for n in range(24)]))
        assert response.status_code == 201
        job_id = response.json()["id"]

        first = start_worker("first", tmp_path, settings)
        # Kill once one chunk is committed and the next one is in flight (claimed, not committed).
        wait_for(
            lambda: (
                BatchJob.objects.dangerously_unscoped().get(pk=job_id).done_items >= 4
                and BatchChunk.objects.filter(job_id=job_id, status=ChunkStatus.RUNNING).exists()
            ),
            timeout=60,
            interval=0.05,
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        interrupted = BatchChunk.objects.get(job_id=job_id, status=ChunkStatus.RUNNING)
        assert BatchJob.objects.dangerously_unscoped().get(pk=job_id).status == BatchStatus.RUNNING
        assert not BatchResult.objects.filter(
            job_id=job_id, position__gte=interrupted.start, position__lt=interrupted.end
        ).exists()

        second = start_worker("second", tmp_path, settings)
        wait_for(
            lambda: (
                BatchJob.objects.dangerously_unscoped().get(pk=job_id).status
                == BatchStatus.SUCCEEDED
            ),
            timeout=90,
            interval=0.2,
        )
    finally:
        for process in (first, second):
            if process is not None:
                stop(process)
        app.conf.task_always_eager = True
        app.control.purge()

    job = BatchJob.objects.dangerously_unscoped().get(pk=job_id)
    results = BatchResult.objects.filter(job_id=job_id)
    assert job.done_items == job.total_items == 24
    assert results.count() == 24
    assert not results.values("position").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert sorted(results.values_list("external_id", flat=True)) == sorted(
        f"k{n}" for n in range(24)
    )
    interrupted.refresh_from_db()
    assert interrupted.status == ChunkStatus.DONE and interrupted.attempts >= 2
    # The prediction log, buffered once per committed chunk, has no duplicates either.
    predlog.flush()
    logged = PredictionLog.objects.dangerously_unscoped().filter(channel="batch", need=need_a)
    assert logged.count() == 24
    assert set(logged.values_list("item_ref", flat=True)) == {f"k{n}" for n in range(24)}
