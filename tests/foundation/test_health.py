import pytest
from celery.contrib.testing.worker import start_worker

from tagging_platform.celery import app


def test_healthz_answers_liveness(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.fixture
def real_worker(transactional_db):
    """A real Celery worker thread on the configured broker (Redis in CI, files when embedded)."""
    import celery.contrib.testing.tasks  # noqa: F401  (registers celery.ping for the ping check)

    app.conf.task_always_eager = False
    with start_worker(
        app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"
    ):
        yield
    app.conf.task_always_eager = True


def test_readyz_round_trips_a_task_through_the_broker(client, real_worker):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["broker"]["task_id"]
    assert body["checks"]["artifacts"]["ok"] is True


def test_readyz_is_503_when_no_worker_answers(client, settings, transactional_db):
    app.conf.task_always_eager = False
    settings.READYZ_TASK_TIMEOUT = 0.5
    try:
        response = client.get("/readyz")
    finally:
        app.conf.task_always_eager = True
        app.control.purge() if settings.REDIS_URL else None
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_readyz_is_503_when_the_artifact_store_is_unwritable(client, settings, tmp_path, db):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.ARTIFACT_ROOT = blocker / "artifacts"
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["artifacts"]["ok"] is False
    assert checks["database"]["ok"] is True
