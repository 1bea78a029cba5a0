"""The real cluster (nginx -> 2 gunicorn -> PostgreSQL + Redis, one Celery worker per queue, beat),
started once per test session in a temporary directory, with its own database and Redis db."""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from deploy.cluster import Cluster, ClusterError, database_name, with_database

# The cluster's upload limit: small, so the body-size test sends 1 MB instead of 20.
CLUSTER_UPLOAD_MAX_BYTES = 1024 * 1024


def require(condition: bool, reason: str) -> None:
    """Skip with the reason, or fail when the CI demands real services (REQUIRE_SERVICES=1)."""
    if condition:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def cluster_redis_url(redis_url: str) -> str:
    """A Redis db of its own (CLUSTER_REDIS_URL, else db + 8): the tests' autouse fixture
    flushes the test db after every test, which must never hit the cluster's broker queues."""
    explicit = os.environ.get("CLUSTER_REDIS_URL")
    if explicit:
        return explicit
    parts = urlsplit(redis_url)
    db = int(parts.path.lstrip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(db + 8) % 16}"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
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
    cluster = Cluster(
        tmp_path_factory.mktemp("cluster"),
        database_url=database_url,
        redis_url=cluster_redis_url(settings.REDIS_URL),
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
            "BATCH_CHUNK_DELAY_SECONDS": "0.4",
            "BATCH_CHUNK_LEASE_SECONDS": "2",
            "PREDICTION_LOG_FLUSH_SECONDS": "1",
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
