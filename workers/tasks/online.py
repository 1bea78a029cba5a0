"""Tasks on the `online` queue."""

from __future__ import annotations

from celery import shared_task

from workers.tasks.base import RETRYABLE_ERRORS, time_limits, wait_for_warm_up


@shared_task(name="workers.tasks.online.tag_sync_items", **time_limits(30))
def tag_sync_items(need_id: int, ids: list[str], texts: list[str]) -> list[dict]:
    """Synchronous tagging for needs with execution="queue" (the web process waits for this)."""
    from serving import sync
    from workers.runtime import get_runtime

    wait_for_warm_up()
    served = get_runtime().need_by_id(need_id)
    return sync.tag_inline(served, ids, texts)


@shared_task(
    name="workers.tasks.online.tag_stream_items",
    autoretry_for=RETRYABLE_ERRORS,
    max_retries=3,
    retry_backoff=1,
    retry_jitter=True,
    **time_limits(60),
)
def tag_stream_items(need_id: int, item_ids: list[int]) -> int:
    """Tag ingested stream items and queue their webhook delivery. Retried when the database or
    Redis blinked (the sweeper remains the net for a task lost with its worker)."""
    from serving import services

    wait_for_warm_up()
    return services.stream_items_tag(need_id=need_id, item_ids=item_ids)


@shared_task(name="workers.tasks.online.tag_pending_items", **time_limits(60))
def tag_pending_items() -> int:
    """Periodic safety net: re-queue stream items left pending (e.g. a worker died)."""
    from serving import services

    return services.stream_pending_requeue()


@shared_task(name="workers.tasks.online.deliver_webhook", **time_limits(30))
def deliver_webhook(delivery_id: int) -> str:
    from serving import webhooks

    return webhooks.delivery_attempt(delivery_id=delivery_id)


#: Lines one flush moves at most, so that it ends well inside its time limit (a line is popped
#: before it is inserted: a flush cut short by its hard limit would lose what it held).
FLUSH_MAX_LINES = 200_000


@shared_task(name="workers.tasks.online.flush_prediction_log", **time_limits(120))
def flush_prediction_log() -> int:
    from serving import predlog

    return predlog.flush(limit=FLUSH_MAX_LINES)
