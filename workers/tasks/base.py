"""Task base classes for each latency class, their limits, and what every pool process does on
its way in (warm serving models, only where they serve) and out (send held writes)."""

from __future__ import annotations

import logging
import threading

import kombu.exceptions
import redis.exceptions
from celery import Task
from celery.signals import worker_process_init, worker_process_shutdown
from django.conf import settings
from django.db import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

#: Errors that a later attempt can get past: the database or the broker/Redis was unreachable or
#: dropped the connection. Anything else (a bug, bad data) fails at once instead of retrying.
RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
)

#: Queues whose tasks run serving models on the request path: their pool processes warm up.
SERVING_QUEUES = frozenset({"online"})


def time_limits(soft: float) -> dict[str, float]:
    """A task's soft and hard time limits: `soft` (plus a grace period for the hard one), never
    above the app-wide ceiling that the broker's visibility timeout is sized for."""
    soft = min(float(soft), float(settings.CELERY_TASK_SOFT_TIME_LIMIT))
    hard = min(soft + max(5.0, soft / 4), float(settings.CELERY_TASK_TIME_LIMIT))
    return {"soft_time_limit": soft, "time_limit": hard}


class DurableTask(Task):
    """Batch, training and monitoring work: acknowledged only after it finishes, re-queued if the
    worker dies, retried with backoff and jitter when the database or the broker was unreachable.

    Safe because every such task is idempotent (claims with compare-and-set, writes with unique keys).
    """

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = RETRYABLE_ERRORS
    max_retries = 5
    retry_backoff = True
    retry_backoff_max = 300
    retry_jitter = True


def _consumes_serving_queue(app) -> bool:
    """Whether this worker consumes a serving queue. The parent selected its queues (`-Q`) before
    it forked the pool; no selection means every queue."""
    consume_from = app.amqp.queues.consume_from
    names = set(consume_from) if consume_from else set(app.amqp.queues)
    return bool(names & SERVING_QUEUES)


#: Set while no warm-up runs in this process; serving tasks wait for it (bounded) rather than
#: load the model a second time beside the warm-up thread.
_warm = threading.Event()
_warm.set()


def wait_for_warm_up() -> None:
    _warm.wait(timeout=settings.SERVING_WARM_SECONDS)


def warm_in_background(name: str = "model-warm-up") -> threading.Thread:
    """Load the live needs' models on a daemon thread, within SERVING_WARM_SECONDS: the process
    reports ready at once (Celery kills a pool process that is not up within 4 s); a serving
    task that arrives meanwhile waits for it (`wait_for_warm_up`), other tasks run at once."""
    from workers.runtime import warm_at_process_start

    def run() -> None:
        try:
            warmed = warm_at_process_start(budget_seconds=settings.SERVING_WARM_SECONDS)
            logger.info("warmed %d live needs' models", warmed)
        finally:
            _warm.set()

    _warm.clear()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


@worker_process_init.connect
def _warm_serving_models(**kwargs) -> None:
    """Only pools that serve models on the request path warm them, and never before they report
    ready; batch pools load a model with their first chunk, training and monitoring never."""
    from tagging_platform.celery import app

    if _consumes_serving_queue(app):
        warm_in_background()


@worker_process_shutdown.connect
def _send_held_writes(**kwargs) -> None:
    """Pool processes end with os._exit (no atexit): send the result-cache and log writes this
    process still holds for write-behind (serving.redis_pool) before it goes."""
    from serving.redis_pool import writer

    writer.flush()
