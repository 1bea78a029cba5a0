"""The real cluster (nginx -> 2 gunicorn -> PostgreSQL + Redis, one Celery worker per queue, beat,
and the supervisor), started once per test session in a temporary directory, with its own
database and its own redis-server on a free port (the fault tests kill and restart it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from deploy.cluster import Cluster, ClusterError, database_name, free_port, with_database

# The cluster's upload limit: small, so the body-size test sends 1 MB instead of 20.
CLUSTER_UPLOAD_MAX_BYTES = 1024 * 1024


def require(condition: bool, reason: str) -> None:
    """Skip with the reason, or fail when the CI demands real services (REQUIRE_SERVICES=1)."""
    if condition:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


class RedisServer:
    """A redis-server of the tests' own, on a free port, with AOF (like production): the fault
    tests kill and restart it, which must never touch the shared Redis others use."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.exceptions.ConnectionError):
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """SIGKILL, as a crash would (what was written to the AOF survives)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def cluster_redis(tmp_path_factory):
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("cluster-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, cluster_redis):
    require(shutil.which("nginx") is not None, "nginx is not installed (apt-get install -y nginx)")
    require(
        settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql",
        "the cluster needs PostgreSQL (DATABASE_URL)",
    )
    require(bool(settings.REDIS_URL), "the cluster needs Redis (REDIS_URL)")
    # A database of its own, next to pytest-django's test_<name>: <name>_cluster.
    database_url = with_database(
        settings.DATABASE_URL, f"{database_name(settings.DATABASE_URL)}_cluster"
    )
    directory = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(
        directory,
        database_url=database_url,
        redis_url=cluster_redis.url,
        web_instances=2,
        nginx_port=0,
        web_concurrency=2,
        upload_max_bytes=CLUSTER_UPLOAD_MAX_BYTES,
        extra_env={
            # Promotions must reach every process within a second or so under test.
            "ALIAS_POLL_SECONDS": "0.5",
            "CELERY_ONLINE_CONCURRENCY": "1",
            "CELERY_BATCH_CONCURRENCY": "2",
            "LOG_LEVEL": "INFO",
            # Small, slowed-down batch chunks: a job lasts long enough to kill a worker mid-job,
            # and a dead worker's chunk lease runs out quickly.
            "BATCH_CHUNK_SIZE": "10",
            # (a slow batch model, tests/serving/slow_batch.py; production has no such delay)
            "TEST_BATCH_CHUNK_DELAY_SECONDS": "0.4",
            "CELERY_WORKER_EXTRA_ARGS": (
                "--include tests.serving.slow_batch,tests.deploy.slow_training"
            ),
            # (a slow fit while this file exists, tests/deploy/slow_training.py)
            "TEST_TRAINING_DELAY_FILE": str(directory / "training-delay"),
            # Leases of seconds (production sizes them to the measured chunk time, 15 s at
            # least), long enough to tell a takeover on redelivery from a lease running out.
            "BATCH_CHUNK_LEASE_SECONDS": "8",
            "BATCH_CHUNK_LEASE_MIN_SECONDS": "8",
            "BATCH_SWEEP_SECONDS": "2",
            "PREDICTION_LOG_FLUSH_SECONDS": "1",
            # Stream items left pending through a Redis outage are re-queued within seconds.
            "STREAM_SWEEP_SECONDS": "3",
            # The supervisor brings a killed process back after 1 s (then 2, 4, ... s).
            "CLUSTER_RESTART_BACKOFF_SECONDS": "1",
        },
    )
    cluster.drop_database()  # a leftover from an interrupted run
    try:
        cluster.up(timeout=150)
    except ClusterError as exc:
        pytest.fail(f"the cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.down()
        cluster.drop_database()
