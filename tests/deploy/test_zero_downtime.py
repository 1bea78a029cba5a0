"""Operations under load on the real cluster: an instance crash, a rolling HUP, a warm worker
restart. The load is bounded (a few client threads on 127.0.0.1)."""

from __future__ import annotations

import threading
import time

import pytest
from celery import Celery

from tests.deploy.loadgen import Call, Load, describe

pytestmark = pytest.mark.cluster


def health_traffic(n: int) -> Call:
    """GETs (idempotent: nginx may retry them) mixed with POSTs (never retried once sent)."""
    if n % 2:
        return Call("POST", "/healthz", b"{}", {"Content-Type": "application/json"})
    return Call("GET", "/healthz")


def answered_by_app(outcome) -> bool:
    # GET /healthz is 200; a POST is refused by the app itself (CSRF 403 or 405): an answer.
    return outcome.status in ({200} if outcome.call.method == "GET" else {403, 405})


def test_killing_one_gunicorn_instance_fails_at_most_the_requests_in_flight(cluster):
    with Load(cluster.host, cluster.nginx_port, health_traffic, concurrency=4) as load:
        load.wait_for(40)
        kill_started = time.monotonic()
        cluster.kill_web(1)
        dead_at = time.monotonic()  # every process of web-1 is gone from here on
        load.wait_for(80)
    try:
        outcomes = load.outcomes
        after = [o for o in outcomes if o.started >= dead_at]
        failed_after = [o for o in after if not answered_by_app(o)]
        failed_in_flight = [o for o in outcomes if o.started < dead_at and o.failed]

        assert len(after) >= 80
        assert not failed_after, describe(after)
        # Only requests that were already running when the kill began may have failed.
        assert all(o.started < dead_at and o.finished >= kill_started for o in failed_in_flight)
        assert all(answered_by_app(o) for o in outcomes if not o.failed)
    finally:
        cluster.start_web(1)


def test_rolling_hup_under_load_fails_no_request(cluster):
    before = {i: set(cluster.status()[f"web-{i}"]["workers"]) for i in (1, 2)}

    with Load(cluster.host, cluster.nginx_port, health_traffic, concurrency=4) as load:
        load.wait_for(40)
        reload_started = time.monotonic()
        cluster.reload_web()
        reload_done = time.monotonic()
        load.wait_for(40)

    outcomes = load.outcomes
    during = [o for o in outcomes if reload_started <= o.started <= reload_done]
    assert not [o for o in outcomes if not answered_by_app(o)], describe(outcomes)
    assert len(during) >= 20  # the reload really happened under load
    for index in (1, 2):
        after = set(cluster.status()[f"web-{index}"]["workers"])
        assert after and not after & before[index], f"web-{index} kept old workers"


def _cluster_client(cluster) -> Celery:
    """A Celery client on the cluster's broker (the test process's own app is eager)."""
    client = Celery("cluster-client", broker=cluster.redis_url, backend=cluster.redis_url)
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
