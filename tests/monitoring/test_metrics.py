"""GET /metrics: Prometheus text with request, latency, model-load, task-failure and queue metrics."""

from __future__ import annotations

from celery import shared_task

from serving.metrics import observe_tag_request, record_model_load


def _sample(text: str, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{wanted}}} not found")


def test_metrics_reports_tag_requests_latency_and_model_loads(client):
    before = client.get("/metrics").content.decode()
    try:
        base = _sample(before, "tagging_requests_total", need="m-news", channel="sync")
    except AssertionError:
        base = 0.0
    observe_tag_request("m-news", "sync", 0.03, 5)
    observe_tag_request("m-news", "sync", 0.2, 1)
    record_model_load("news-topics/tfidf-logreg", 3, "loaded")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert _sample(text, "tagging_requests_total", need="m-news", channel="sync") == base + 2
    assert (
        _sample(
            text,
            "tagging_request_duration_seconds_bucket",
            need="m-news",
            channel="sync",
            le="0.05",
        )
        >= 1
    )
    assert (
        _sample(
            text,
            "tagging_model_loads_total",
            model="news-topics/tfidf-logreg",
            version="3",
            outcome="loaded",
        )
        >= 1
    )


def test_metrics_reports_queue_depths_of_the_four_queues(client):
    text = client.get("/metrics").content.decode()
    for queue in ("online", "batch", "training", "monitoring"):
        assert _sample(text, "celery_queue_length", queue=queue) >= 0


@shared_task(name="tests.monitoring.always_fails")
def always_fails():
    raise RuntimeError("boom")


def test_failed_celery_tasks_are_counted(client):
    # throw=False: like a worker, record the failure instead of re-raising it in the caller.
    assert always_fails.apply(throw=False).failed()
    text = client.get("/metrics").content.decode()
    assert _sample(text, "celery_task_failures_total", task="tests.monitoring.always_fails") >= 1


def test_metrics_can_be_restricted_by_ip(client, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_metrics_can_require_a_bearer_token(client, settings):
    settings.METRICS_BEARER_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_metrics_need_the_token_by_default_outside_debug(client, settings):
    settings.METRICS_REQUIRE_TOKEN = True  # the default when DEBUG=0
    settings.METRICS_BEARER_TOKEN = ""
    refused = client.get("/metrics")
    assert refused.status_code == 403 and b"METRICS_BEARER_TOKEN" in refused.content
    assert b"tagging_" not in refused.content
    settings.METRICS_BEARER_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_metrics_token_is_required_by_default_only_outside_debug():
    import os
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.METRICS_REQUIRE_TOKEN)"
    env_base = {"DJANGO_SETTINGS_MODULE": "tagging_platform.settings", "PYTHONPATH": "platform:."}
    outputs = {}
    for debug in ("0", "1"):
        env = {
            **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "TESTING"}},
            **env_base,
            "DEBUG": debug,
            "SECRET_KEY": "a-long-random-production-key-0123456789-abcdefghijklmnop",
        }
        result = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        outputs[debug] = result.stdout.strip() or result.stderr[-300:]
    assert outputs == {"0": "True", "1": "False"}
