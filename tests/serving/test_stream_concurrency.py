"""Concurrent stream submitters against a real prefork worker on PostgreSQL: every item is tagged
by its own task (no sweeper runs here), exactly once, with exactly one prediction-log line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection, connections
from django.db.models import Count

from serving.models import Item, ItemStatus, PredictionLog, WebhookDelivery
from tagging_platform.celery import app
from tests.conftest import api_client_for_key
from tests.serving.conftest import wait_for

WORKER = Path(__file__).with_name("worker_process.py")
SPORT = "football match goal striker league coach stadium penalty"
TECH = "software computer internet phone chip startup broadband gadget"

pytestmark = pytest.mark.services


def start_online_worker(tmp_path: Path, settings, *, concurrency: int = 2) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
        "TEST_WORKER_QUEUES": "online",
        "TEST_WORKER_CONCURRENCY": str(concurrency),
        "ALIAS_POLL_SECONDS": "60",
    }
    log = open(tmp_path / "online-worker.log", "wb")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, str(WORKER), "online"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def submit_concurrently(key, *, threads: int, per_thread: int) -> list[int]:
    """`threads` clients each POST `per_thread` single-item requests; returns the status codes."""
    codes: list[int] = []
    lock = threading.Lock()

    def client_loop(n: int) -> None:
        client = api_client_for_key(key)
        try:
            for i in range(per_thread):
                text = SPORT if (n + i) % 2 else TECH
                response = client.post(
                    "/api/v1/needs/news/items",
                    {"items": [{"id": f"c{n}-{i}", "text": f"{text} {n} {i}"}]},
                    format="json",
                )
                with lock:
                    codes.append(response.status_code)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=client_loop, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return codes


def test_concurrent_single_item_posts_are_all_tagged_by_their_own_tasks(
    requires_postgres,
    requires_redis,
    settings,
    transactional_db,
    tmp_path,
    key_a,
    need_a,
    webhook_tenant_a,
    receiver,
):
    app.conf.task_always_eager = False
    worker = start_online_worker(tmp_path, settings)
    try:
        # The first item after the worker starts counts too: no warm-up request is sent first.
        codes = submit_concurrently(key_a, threads=8, per_thread=8)
        assert codes == [202] * 64
        # No beat and no sweeper here: an item a task skipped would stay pending for ever.
        wait_for(
            lambda: (
                not Item.objects.dangerously_unscoped()
                .filter(need=need_a, status=ItemStatus.PENDING)
                .exists()
            ),
            timeout=90,
            interval=0.2,
        )
        wait_for(
            lambda: sum(len_items(r) for r in receiver.successful()) >= 64, timeout=60, interval=0.2
        )
    finally:
        stop(worker)
        app.conf.task_always_eager = True
        app.control.purge()

    items = Item.objects.dangerously_unscoped().filter(need=need_a)
    assert items.count() == 64
    assert set(items.values_list("status", flat=True)) == {ItemStatus.TAGGED}
    # Log lines were committed with the results: present without any flush, one per item.
    logged = PredictionLog.objects.dangerously_unscoped().filter(channel="stream", need=need_a)
    assert logged.count() == 64
    assert not logged.values("item_ref").annotate(n=Count("id")).filter(n__gt=1).exists()
    # Each item was delivered to the webhook exactly once.
    delivered = [item["id"] for r in receiver.successful() for item in payload_items(r)]
    assert sorted(delivered) == sorted(items.values_list("external_id", flat=True))
    assert (
        WebhookDelivery.objects.dangerously_unscoped()
        .filter(need=need_a)
        .aggregate(n=Count("id"))["n"]
        >= 1
    )


def payload_items(request: dict) -> list[dict]:
    import json

    return json.loads(request["body"])["items"]


def len_items(request: dict) -> int:
    return len(payload_items(request))
