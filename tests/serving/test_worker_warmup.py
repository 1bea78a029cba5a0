"""Pool processes report ready fast, whatever the live models cost to load.

A real prefork worker where every model load takes 5 s (longer than Celery's 4 s
worker_proc_alive_timeout). After its pool process is SIGKILLed, a replacement that loaded models
before reporting ready would be killed and replaced in a loop and never run a task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tagging_platform.celery import app
from tests.serving.conftest import wait_for
from tests.serving.test_stream_concurrency import stop

WORKER = Path(__file__).with_name("worker_process.py")

pytestmark = pytest.mark.services


def start(tmp_path: Path, settings, queues: str) -> tuple[subprocess.Popen, Path]:
    db = connection.settings_dict
    log_path = tmp_path / f"{queues.replace(',', '-')}.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "ARTIFACT_ROOT": str(settings.ARTIFACT_ROOT),
        "TEST_WORKER_QUEUES": queues,
        "TEST_SLOW_MODEL_LOAD": "5",
    }
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        [sys.executable, str(WORKER), queues.replace(",", "-")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log_path


def kill_pool_process(worker: subprocess.Popen) -> int:
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    assert len(children) == 1, children  # -c 1: the one pool process
    os.kill(int(children[0]), signal.SIGKILL)
    return int(children[0])


def ping_through(queue: str) -> str:
    return app.send_task("tagging_platform.celery.ping", queue=queue).get(timeout=30)


@pytest.fixture
def live_worker_app(requires_postgres, requires_redis, transactional_db, need_a):
    app.conf.task_always_eager = False
    yield need_a
    app.conf.task_always_eager = True
    app.control.purge()


def test_training_and_monitoring_pools_never_load_serving_models(
    live_worker_app, settings, tmp_path
):
    worker, log_path = start(tmp_path, settings, "training,monitoring")
    try:
        assert ping_through("monitoring") == "pong"
        kill_pool_process(worker)
        assert ping_through("training") == "pong"  # served by the replacement pool process
        assert ping_through("monitoring") == "pong"
    finally:
        stop(worker)
    log = log_path.read_text()
    assert "Timed out waiting for UP message" not in log
    assert "loaded and warmed" not in log and "warmed" not in log


def test_online_pool_reports_ready_then_warms_in_the_background(
    live_worker_app, settings, tmp_path, api_a
):
    from serving.models import Item, ItemStatus

    worker, log_path = start(tmp_path, settings, "online")
    try:
        assert ping_through("online") == "pong"  # answered while the 5 s load is still running
        # A stream item arriving during the warm-up waits for it instead of loading the model
        # a second time beside it.
        response = api_a.post(
            "/api/v1/needs/news/items",
            {"items": [{"id": "early", "text": "football match goal striker"}]},
            format="json",
        )
        assert response.status_code == 202
        wait_for(
            lambda: Item.objects.dangerously_unscoped().filter(status=ItemStatus.TAGGED).exists(),
            timeout=30,
        )
        assert log_path.read_text().count("loaded and warmed") == 1
        # The warm-up happened after the ready signal, in the same pool process.
        wait_for(lambda: "warmed 1 live needs' models" in log_path.read_text(), timeout=30)
        kill_pool_process(worker)
        assert ping_through("online") == "pong"  # the replacement is up and serving at once
        wait_for(lambda: log_path.read_text().count("warmed 1 live needs' models") == 2, timeout=30)
    finally:
        stop(worker)
    log = log_path.read_text()
    assert "Timed out waiting for UP message" not in log
    assert log.count("loaded and warmed") == 2


@pytest.mark.django_db
def test_warm_up_starts_no_new_load_once_its_budget_is_spent(need_a, need_b, monkeypatch):
    """Bounded in time: with a spent budget, no model is loaded at start (they load on use)."""
    from serving.runtime import get_runtime, warm_live_needs

    assert warm_live_needs(budget_seconds=0) == 0
    assert get_runtime().loaded_version_ids() == []
    assert warm_live_needs(budget_seconds=60) == 2
