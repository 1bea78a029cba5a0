"""The Celery app: four queues for four latency classes, JSON only."""

from __future__ import annotations

import os
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

from core.queues import QUEUES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")

app = Celery("tagging_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    event_serializer="json",
    task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
    task_default_exchange="online",
    task_default_routing_key="online",
    task_default_queue="online",
    # Route by module: workers/tasks/<queue>.py holds the tasks for that queue.
    task_routes={
        "workers.tasks.online.*": {"queue": "online"},
        "workers.tasks.batch.*": {"queue": "batch"},
        "workers.tasks.training.*": {"queue": "training"},
        "workers.tasks.monitoring.*": {"queue": "monitoring"},
        "tagging_platform.celery.ping": {"queue": "online"},
    },
    task_track_started=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    # Long batch/training tasks declare acks_late + reject_on_worker_lost themselves
    # (see workers.tasks.base.DurableTask); online tasks are cheap to lose and fast to retry.
    task_acks_late=False,
)


def _ensure_embedded_broker_folders() -> None:
    """kombu's filesystem transport needs its folders to exist before the first publish."""
    from django.conf import settings

    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "control_folder"):
            Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key]).mkdir(parents=True, exist_ok=True)


_ensure_embedded_broker_folders()
app.autodiscover_tasks(["workers"], related_name="tasks")


@app.task(
    name="tagging_platform.celery.ping", ignore_result=False, soft_time_limit=10, time_limit=15
)
def ping() -> str:
    """A no-op task used by /readyz to prove a full broker round trip."""
    return "pong"
