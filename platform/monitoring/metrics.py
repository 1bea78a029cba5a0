"""Prometheus service metrics: Celery task failures, queue lengths, and the `/metrics` exposition.

    from monitoring.metrics import record_task_failure

The serving metrics (tag requests, items, latency, model loads) live in `serving.metrics`; they
register in the same default registry, so `/metrics` exposes them too.

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
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

TASK_FAILURES = Counter("celery_task_failures_total", "Celery task failures.", ["task"])


def record_task_failure(task_name: str) -> None:
    TASK_FAILURES.labels(task=task_name).inc()


def on_task_failure(sender=None, **kwargs) -> None:
    """celery.signals.task_failure receiver (connected in MonitoringConfig.ready)."""
    record_task_failure(getattr(sender, "name", None) or str(sender))


class QueueDepthCollector:
    """Celery queue lengths, read at scrape time (Redis LLEN; a folder count for the file broker)."""

    def collect(self):
        from django.conf import settings

        from core.queues import QUEUES

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
