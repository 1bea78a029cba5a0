"""A warm restart of a Celery worker while tasks keep coming (the rolling web restart, the
instance crash and the promotion run under tag load in test_end_to_end.py)."""

from __future__ import annotations

import threading
import time

import pytest
from celery import Celery

pytestmark = pytest.mark.cluster


def _cluster_client(cluster) -> Celery:
    """A Celery client on the cluster's broker (the test process's own app is eager). Not made
    Celery's current app: `core.queues.task_send` resolves tasks on the current app, and a later
    test would then send to this cluster's stopped broker and wait for ever."""
    client = Celery(
        "cluster-client",
        broker=cluster.redis_url,
        backend=cluster.redis_url,
        set_as_current=False,
    )
    client.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_extended=True,
        broker_connection_retry_on_startup=True,
    )
    return client


def test_warm_worker_restart_mid_stream_loses_no_task(cluster):
    client = _cluster_client(cluster)
    old_node = cluster.worker_node("online")
    results = []
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            results.append(client.send_task("tagging_platform.celery.ping", queue="online"))
            time.sleep(0.02)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        time.sleep(1.0)
        cluster.restart_worker("online")
        time.sleep(1.0)
    finally:
        stop.set()
        publisher.join()
    new_node = cluster.worker_node("online")

    answers = [result.get(timeout=60) for result in results]
    nodes = {result.worker.split("@")[0] + "@" for result in results}

    assert answers == ["pong"] * len(results)
    assert len(results) >= 50
    assert old_node != new_node
    assert {old_node, new_node} <= nodes  # the stream really crossed the restart
    client.close()
