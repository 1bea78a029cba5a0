"""Task base classes for each latency class, and what every pool process does on its way out."""

from __future__ import annotations

from celery import Task
from celery.signals import worker_process_shutdown


class DurableTask(Task):
    """Batch and training work: acknowledged only after it finishes, re-queued if the worker dies.

    Safe because every such task is idempotent (claims with compare-and-set, writes with unique keys).
    """

    acks_late = True
    reject_on_worker_lost = True
    max_retries = 5
    retry_backoff = True
    retry_backoff_max = 300
    retry_jitter = True


@worker_process_shutdown.connect
def _send_held_writes(**kwargs) -> None:
    """Pool processes end with os._exit (no atexit): send the result-cache and log writes this
    process still holds for write-behind (serving.redis_pool) before it goes."""
    from serving.redis_pool import writer

    writer.flush()
