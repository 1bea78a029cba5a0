from __future__ import annotations

import pytest

from serving import predlog
from serving.redis_pool import writer
from serving.runtime import get_runtime
from tenants.authentication import clear_key_cache
from tests.serving.factories import make_model, make_served_need


@pytest.fixture(autouse=True)
def _fresh_runtime(settings):
    """Each test starts with an empty model cache, need bindings and key cache."""
    settings.ALIAS_POLL_SECONDS = 0  # tests change rows and expect the next request to see it
    settings.SERVING_ASYNC_WRITES = False  # deterministic; test_sync covers the background writer
    get_runtime().forget()
    clear_key_cache()
    predlog._local.clear()  # the no-Redis buffer is per process: lines must not cross tests
    yield
    writer.flush()  # nothing held for write-behind leaks into the next test
    predlog._local.clear()
    get_runtime().forget()
    clear_key_cache()


@pytest.fixture
def model_version(db):
    return make_model()


@pytest.fixture
def need_a(tenant_a, model_version):
    return make_served_need(
        tenant=tenant_a,
        slug="news",
        version=model_version,
        label_mapping={"Sport": "news.sport", "Money": "news.business"},
    )


@pytest.fixture
def need_b(tenant_b, model_version):
    return make_served_need(tenant=tenant_b, slug="bravo-news", version=model_version)


class WebhookReceiver:
    """A real local HTTP endpoint that records signed deliveries and can be told to fail."""

    def __init__(self):
        import http.server
        import threading

        self.requests: list[dict] = []
        self.fail_first = 0
        self.always_fail = False
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                failing = receiver.always_fail or len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def successful(self) -> list[dict]:
        return [
            r
            for n, r in enumerate(self.requests, start=1)
            if not self.always_fail and n > self.fail_first
        ]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def webhook_tenant_a(tenant_a, receiver, settings):
    settings.WEBHOOK_BACKOFF_SECONDS = 0.05
    tenant_a.webhook_url = receiver.url
    tenant_a.webhook_secret = "s3cret-for-tests"
    tenant_a.save()
    return tenant_a


@pytest.fixture
def real_worker(transactional_db):
    """A real Celery worker thread on the configured broker (all four queues)."""
    from celery.contrib.testing.worker import start_worker

    from tagging_platform.celery import app

    app.conf.task_always_eager = False
    try:
        with start_worker(
            app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"
        ) as worker:
            yield worker
    finally:
        app.conf.task_always_eager = True


def wait_for(condition, timeout: float = 20.0, interval: float = 0.1):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
