"""Task base classes for each latency class."""

from __future__ import annotations

from celery import Task


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
