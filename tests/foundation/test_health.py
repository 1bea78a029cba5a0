import socket

import pytest
from celery.contrib.testing.worker import start_worker

from tagging_platform import health
from tagging_platform.celery import QUEUES, app


@pytest.fixture(autouse=True)
def fresh_queue_answers():
    """Each test asks the workers it started, not an answer cached by the test before it."""
    health._queues_cache = (0.0, {})
    yield
    health._queues_cache = (0.0, {})


def test_healthz_answers_liveness(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "host": socket.gethostname()}


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


def test_readyz_round_trips_a_task_through_the_broker(client, real_worker, staff_user):
    client.force_login(staff_user)  # details are for staff (and the metrics token)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["broker"]["task_id"]
    assert body["checks"]["artifacts"]["ok"] is True
    assert all(body["checks"]["queues"][q]["consumers"] == 1 for q in QUEUES)


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


# --- What /readyz tells whom, per queue, and about refused production models ---------------------
@pytest.fixture
def no_worker(settings):
    """No worker runs: don't wait the full window for workers' answers that cannot come."""
    settings.READYZ_INSPECT_TIMEOUT = 0.1


def test_anonymous_readyz_shows_verdicts_but_no_details(client, settings, tmp_path, db, no_worker):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings.ARTIFACT_ROOT = blocker / "artifacts"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert str(tmp_path).encode() not in response.content
    assert response.json()["checks"]["artifacts"] == {"ok": False}
    assert set(response.json()["checks"]) == {
        "database",
        "broker",
        "queues",
        "artifacts",
        "serving",
    }


def test_readyz_details_for_staff_and_for_the_metrics_token(client, settings, db, no_worker):
    from tests.factories import UserFactory

    settings.METRICS_BEARER_TOKEN = "scrape-token"
    with_token = client.get("/readyz", HTTP_AUTHORIZATION="Bearer scrape-token").json()
    assert with_token["checks"]["artifacts"]["path"] == str(settings.ARTIFACT_ROOT)
    assert (
        "path"
        not in client.get("/readyz", HTTP_AUTHORIZATION="Bearer wrong").json()["checks"][
            "artifacts"
        ]
    )
    client.force_login(UserFactory(username="ops", is_staff=True))
    staff = client.get("/readyz").json()
    assert staff["checks"]["artifacts"]["path"] == str(settings.ARTIFACT_ROOT)
    client.force_login(UserFactory(username="member"))
    assert "path" not in client.get("/readyz").json()["checks"]["artifacts"]


@pytest.fixture
def online_only_worker(transactional_db):
    """A real worker that consumes only the online queue: batch, training and monitoring have
    no consumer, as when their workers died."""
    import celery.contrib.testing.tasks  # noqa: F401

    app.conf.task_always_eager = False
    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        shutdown_timeout=10,
        loglevel="WARNING",
        queues=["online"],
    ):
        yield
    app.amqp.queues._consume_from = None  # the worker narrowed the app's queues: undo it
    app.conf.task_always_eager = True


def test_readyz_reports_each_queue_and_is_503_without_a_batch_consumer(
    client, settings, online_only_worker, staff_user
):
    client.force_login(staff_user)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503, body
    assert body["checks"]["broker"]["ok"] is True  # the online round trip still works
    queues = body["checks"]["queues"]
    assert queues["ok"] is False
    assert queues["online"] == {"ok": True, "consumers": 1}
    assert queues["batch"] == {"ok": False, "consumers": 0}
    assert "batch" in queues["error"]


def test_readyz_reports_degraded_serving_when_a_production_model_is_refused(client, staff_user, db):
    from registry.incidents import incident_record
    from tests.serving.factories import make_model

    version = make_model()  # at the production alias
    ok = client.get("/readyz").json()
    assert ok["checks"]["serving"] == {"ok": True}
    incident_record(sha256=version.artifact_sha256, kind="mismatch", message="tampered")
    client.force_login(staff_user)
    body = client.get("/readyz").json()
    assert body["status"] in ("degraded", "unavailable")  # no worker runs in this test
    refused = body["checks"]["serving"]["refused_production_models"]
    assert refused[0]["model"] == version.registered_model.name
    assert refused[0]["version"] == version.version


def test_readyz_is_ok_degraded_with_healthy_services_and_a_refused_model(
    client, staff_user, real_worker
):
    from registry.incidents import incident_record
    from tests.serving.factories import make_model

    client.force_login(staff_user)
    first = client.get("/readyz").json()
    assert first["status"] == "ok", first["checks"]
    version = make_model()
    incident_record(sha256=version.artifact_sha256, kind="mismatch", message="tampered")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"


def test_readyz_reuses_the_workers_queue_answer_for_a_few_seconds(
    client, settings, monkeypatch, db
):
    """A probe every second must not broadcast (and wait READYZ_INSPECT_TIMEOUT) every time."""
    calls = []

    class Inspect:
        def active_queues(self):
            calls.append(1)
            return {"w@host": [{"name": queue} for queue in QUEUES]}

    monkeypatch.setattr(app.control, "inspect", lambda timeout: Inspect())
    settings.READYZ_QUEUES_CACHE_SECONDS = 60
    for _ in range(3):
        health._check_queues()
    assert len(calls) == 1
    settings.READYZ_QUEUES_CACHE_SECONDS = 0
    health._queues_cache = (0.0, {})
    health._check_queues()
    health._check_queues()
    assert len(calls) == 3
