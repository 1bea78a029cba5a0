"""Tasks on the `online` queue."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="workers.tasks.online.tag_sync_items")
def tag_sync_items(need_id: int, ids: list[str], texts: list[str]) -> list[dict]:
    """Synchronous tagging for needs with execution="queue" (the web process waits for this)."""
    from serving import sync
    from workers.runtime import get_runtime

    served = get_runtime().need_by_id(need_id)
    return sync.tag_inline(served, ids, texts)


@shared_task(name="workers.tasks.online.tag_stream_items")
def tag_stream_items(need_id: int, item_ids: list[int]) -> int:
    """Tag ingested stream items and queue their webhook delivery."""
    from serving import services

    return services.stream_items_tag(need_id=need_id, item_ids=item_ids)


@shared_task(name="workers.tasks.online.tag_pending_items")
def tag_pending_items() -> int:
    """Periodic safety net: re-queue stream items left pending (e.g. a worker died)."""
    from serving import services

    return services.stream_pending_requeue()


@shared_task(name="workers.tasks.online.deliver_webhook")
def deliver_webhook(delivery_id: int) -> str:
    from serving import webhooks

    return webhooks.delivery_attempt(delivery_id=delivery_id)


@shared_task(name="workers.tasks.online.flush_prediction_log")
def flush_prediction_log() -> int:
    from serving import predlog

    return predlog.flush()
