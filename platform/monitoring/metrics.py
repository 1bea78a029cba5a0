"""Prometheus service metrics, and the functions other areas call to record them.

    from monitoring.metrics import observe_tag_request, record_model_load, record_task_failure

When PROMETHEUS_MULTIPROC_DIR is set (gunicorn with several workers, Celery workers), every process
writes its samples to files in that directory and `/metrics` aggregates them (prometheus-client's
multiprocess mode); the directory must be emptied when the service starts. Without it, the
process's own registry is served (runserver, tests).
"""

from __future__ import annotations

import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

TAG_REQUESTS = Counter(
    "tagging_requests_total", "Tagging requests served, per need and channel.", ["need", "channel"]
)
TAG_ITEMS = Counter(
    "tagging_items_total", "Texts tagged, per need and channel.", ["need", "channel"]
)
TAG_LATENCY = Histogram(
    "tagging_request_duration_seconds",
    "Tagging request latency, per need and channel.",
    ["need", "channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MODEL_LOADS = Counter(
    "tagging_model_loads_total",
    "Model loads into a serving process, by outcome (loaded, cache_hit, failed, checksum_mismatch).",
    ["model", "version", "outcome"],
)
TASK_FAILURES = Counter("celery_task_failures_total", "Celery task failures.", ["task"])


def observe_tag_request(need_slug: str, channel: str, seconds: float, items: int) -> None:
    """Record one tagging request (sync, stream or batch chunk) for a need."""
    TAG_REQUESTS.labels(need=need_slug, channel=channel).inc()
    TAG_ITEMS.labels(need=need_slug, channel=channel).inc(max(int(items), 0))
    TAG_LATENCY.labels(need=need_slug, channel=channel).observe(max(float(seconds), 0.0))


def record_model_load(model_name: str, version: int | str, outcome: str) -> None:
    MODEL_LOADS.labels(model=model_name, version=str(version), outcome=outcome).inc()


def record_task_failure(task_name: str) -> None:
    TASK_FAILURES.labels(task=task_name).inc()


def on_task_failure(sender=None, **kwargs) -> None:
    """celery.signals.task_failure receiver (connected in MonitoringConfig.ready)."""
    record_task_failure(getattr(sender, "name", None) or str(sender))


class QueueDepthCollector:
    """Celery queue lengths, read at scrape time (Redis LLEN; a folder count for the file broker)."""

    def collect(self):
        from django.conf import settings

        from tagging_platform.celery import QUEUES

        gauge = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        broker = str(settings.CELERY_BROKER_URL)
        try:
            if broker.startswith(("redis://", "rediss://", "unix://")):
                import redis

                client = redis.Redis.from_url(broker, socket_timeout=1, socket_connect_timeout=1)
                pipe = client.pipeline()
                for queue in QUEUES:
                    pipe.llen(queue)
                for queue, depth in zip(QUEUES, pipe.execute(), strict=True):
                    gauge.add_metric([queue], float(depth))
            else:
                # kombu's filesystem transport: one file per message, "<ms>_<uuid>.<queue>.msg".
                folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", "")
                names = os.listdir(folder) if folder and os.path.isdir(folder) else []
                for queue in QUEUES:
                    wanted = f"{queue}.msg"
                    depth = sum(n.partition(".")[2] == wanted for n in names)
                    gauge.add_metric([queue], float(depth))
        except Exception as exc:  # a scrape must never fail because the broker is down
            logger.warning("queue depth unavailable: %s", exc)
            return
        yield gauge


_QUEUE_REGISTRY = CollectorRegistry(auto_describe=False)
_QUEUE_REGISTRY.register(QueueDepthCollector())


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (all processes in multiprocess mode) + queue depths."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(_QUEUE_REGISTRY), CONTENT_TYPE_LATEST
