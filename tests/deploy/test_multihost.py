"""Issue 19, part 4: two "hosts" on one machine (deploy/multihost.py), each a network namespace
with its own host name, gunicorn instance, Celery workers and artifact cache, reaching the shared
PostgreSQL, Redis and S3 server (moto) over a bridge; nginx in the root namespace in front.

Shown here: nginx balances across both hosts; a batch job's chunks run on the workers of both
hosts; killing one whole host (every process in its namespace, SIGKILL) mid-job loses nothing and
the job completes on the other host by itself, with the sync API's answers for the same texts.

Bounded: every wait has a timeout, and the whole module runs under an alarm; the namespaces, the
bridge, the forwarders and every process are removed in the fixture's `finally`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections import Counter

import pytest
from django.conf import settings

from deploy.cluster import ClusterError, database_name, http_get, with_database
from deploy.multihost import MultiHost, netns_pids
from tests.deploy.conftest import RedisServer, require
from tests.deploy.test_end_to_end import wait_until
from tests.deploy.test_faults import NEED, Batch, setup_batch_platform

pytestmark = pytest.mark.cluster

#: The whole module (start, three demonstrations) must end within this; a hang fails the test
#: in progress and the fixture still tears everything down.
MODULE_SECONDS = 900
HOST_1, HOST_2 = MultiHost.hostname(1), MultiHost.hostname(2)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"the multi-host tests ran over {MODULE_SECONDS} s")


@pytest.fixture(scope="module")
def multihost(tmp_path_factory, moto_server):
    require(os.geteuid() == 0, "network namespaces need root")
    for tool in ("ip", "unshare", "nginx", "socat", "redis-server"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "the hosts need PostgreSQL (DATABASE_URL)",
    )
    import boto3

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(MODULE_SECONDS)
    redis_server = RedisServer(tmp_path_factory.mktemp("multihost-redis"))
    bucket = f"artifacts-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    multihost = None
    try:
        redis_server.start()
        multihost = MultiHost(
            tmp_path_factory.mktemp("multihost"),
            database_url=with_database(
                settings.DATABASE_URL, f"{database_name(settings.DATABASE_URL)}_multihost"
            ),
            redis_url=redis_server.url,
            s3_endpoint=moto_server,
            s3_bucket=bucket,
            hosts=2,
            web_concurrency=1,
            beat_host=2,  # host 1 is the one killed; beat's own failover is not shown here
            extra_env={
                "ALIAS_POLL_SECONDS": "0.5",
                "CELERY_ONLINE_CONCURRENCY": "1",
                "CELERY_BATCH_CONCURRENCY": "1",
                "LOG_LEVEL": "INFO",
                # Small, slowed-down chunks (tests/serving/slow_batch.py): a job lasts long
                # enough to lose a host in the middle of it; leases of seconds.
                "BATCH_CHUNK_SIZE": "10",
                "TEST_BATCH_CHUNK_DELAY_SECONDS": "0.4",
                "CELERY_WORKER_EXTRA_ARGS": "--include tests.serving.slow_batch",
                "BATCH_CHUNK_LEASE_SECONDS": "8",
                "BATCH_CHUNK_LEASE_MIN_SECONDS": "8",
                "BATCH_SWEEP_SECONDS": "2",
                "PREDICTION_LOG_FLUSH_SECONDS": "1",
            },
        )
        multihost.drop_database()  # a leftover from an interrupted run
        try:
            multihost.up(timeout=300)
        except ClusterError as exc:
            pytest.fail(f"the hosts did not start: {exc}")
        yield multihost
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if multihost is not None:
            multihost.down()
            assert not multihost.network.exists(), "the bridge was left behind"
            assert all(not netns_pids(multihost.network.netns(i)) for i in (1, 2))
            multihost.drop_database()
        redis_server.stop()


@pytest.fixture(scope="module")
def batch(multihost) -> Batch:
    """Tenant, key, need, a model trained (by whichever host's training worker takes it, into
    the S3 bucket) and promoted, all through nginx."""
    return setup_batch_platform(multihost.front)


def _healthz_host(url: str) -> str:
    status, body = http_get(f"{url}/healthz", timeout=5)
    assert status == 200, body
    return json.loads(body)["host"]


def _chunk_hosts(batch: Batch, job_id: int) -> dict[int, tuple[str, str, int]]:
    """chunk index -> (status, host of the latest claim, attempts)."""
    rows = batch.sql(
        "SELECT index, status, claimed_by, attempts FROM serving_batchchunk WHERE job_id = %s",
        [job_id],
    )
    return {
        index: (status, worker.split("@")[-1], attempts) for index, status, worker, attempts in rows
    }


def _assert_results_equal_sync_answers(batch: Batch, job_id: int) -> None:
    """Every batch result is what the sync API answers for the same text (through nginx)."""
    lines = batch.service.get(
        f"/api/v1/batch-jobs/{job_id}/results/?format=jsonl", expect=200
    ).text.splitlines()
    results = {item["id"]: item for item in map(json.loads, filter(None, lines))}
    items = [{"id": item_id, "text": item["text"]} for item_id, item in results.items()]
    for start in range(0, len(items), 50):
        answer = batch.service.post(
            f"/api/v1/needs/{NEED}/tag", json={"items": items[start : start + 50]}, expect=200
        ).json()
        for synced in answer["items"]:
            from_batch = results[synced["id"]]
            assert synced["labels"] == from_batch["labels"], synced["id"]
            assert synced["scores"] == pytest.approx(from_batch["scores"], abs=1e-6)
            assert answer["model"]["version"] == from_batch["model"]["version"]


def test_nginx_balances_across_the_web_instances_of_both_hosts(multihost):
    # Each host answers with its own host name, on its own address inside its namespace.
    for index in (1, 2):
        assert _healthz_host(multihost.host[index].web_url(1)) == MultiHost.hostname(index)

    answered = Counter(_healthz_host(multihost.url) for _ in range(20))

    assert set(answered) == {HOST_1, HOST_2}, answered
    assert min(answered.values()) >= 5, answered  # round robin, give or take a retry
    access_log = multihost.front.nginx_access_log.read_text()
    for index in (1, 2):
        assert f'ua="{multihost.network.address(index)}:8000"' in access_log


def test_a_batch_jobs_chunks_are_processed_by_workers_on_both_hosts(multihost, batch):
    job_id, ids = batch.submit("spread", 200)

    batch.wait_finished(job_id, timeout=180)

    batch.assert_exactly_once(job_id, ids)
    chunks = _chunk_hosts(batch, job_id)
    assert {status for status, _, _ in chunks.values()} == {"done"}
    by_host = Counter(host for _, host, _ in chunks.values())
    assert set(by_host) == {HOST_1, HOST_2}, by_host
    _assert_results_equal_sync_answers(batch, job_id)


def test_killing_a_whole_host_mid_job_loses_nothing_and_the_other_host_finishes(multihost, batch):
    job_id, ids = batch.submit("lost", 300)
    # Host 1 holds a chunk right now, and most of the job is still to do.
    wait_until(
        lambda: (
            batch.job(job_id)["done_items"] < 150
            and any(
                status == "running" and host == HOST_1
                for status, host, _ in _chunk_hosts(batch, job_id).values()
            )
        ),
        timeout=90,
        interval=0.05,
        what="host 1 to be working on a chunk of the job",
    )
    held = [
        index
        for index, (status, host, _) in _chunk_hosts(batch, job_id).items()
        if status == "running" and host == HOST_1
    ]

    killed = multihost.kill_host(1)

    assert len(killed) >= 4  # gunicorn master + worker, four Celery workers and their pools
    assert netns_pids(multihost.network.netns(1)) == []
    with pytest.raises(OSError):
        http_get(f"{multihost.host[1].web_url(1)}/healthz", timeout=2)
    before = batch.job(job_id)["done_items"]
    assert before < len(ids)

    finished = batch.wait_finished(job_id, timeout=180)  # nobody touches anything

    assert finished["status"] == "succeeded", finished
    batch.assert_exactly_once(job_id, ids)  # every item once, every log line once
    chunks = _chunk_hosts(batch, job_id)
    for index in held:
        status, host, attempts = chunks[index]
        # The chunk host 1 was running was taken over by host 2 once its lease ran out.
        assert (status, host) == ("done", HOST_2) and attempts >= 2, chunks[index]
    # Only host 2 is left behind nginx, and it answers everything, including the sync calls.
    assert {_healthz_host(multihost.url) for _ in range(6)} == {HOST_2}
    _assert_results_equal_sync_answers(batch, job_id)
