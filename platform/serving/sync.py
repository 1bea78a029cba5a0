"""Synchronous tagging: inline in the web process, or on the `online` queue for heavy models."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from serving import predlog
from serving.models import Channel
from serving.redis_pool import get_redis
from tagging_platform.errors import ApiError
from tenants.models import Execution
from workers.runtime import (
    ModelUnavailable,
    NeedNotFound,
    NeedNotServed,
    ServedNeed,
    get_runtime,
)


def resolve_need(*, tenant_id: int, need_slug: str) -> ServedNeed:
    """The served need, or the API error a client should see."""
    try:
        return get_runtime().need(tenant_id=tenant_id, slug=need_slug)
    except NeedNotFound:
        raise ApiError("need_not_found", f"No need '{need_slug}'.", status_code=404) from None
    except NeedNotServed as exc:
        raise ApiError("need_not_served", str(exc), status_code=409) from None
    except ModelUnavailable as exc:
        raise ApiError(
            "model_unavailable", str(exc), status_code=503, headers={"Retry-After": "30"}
        ) from None


def tag_inline(
    served: ServedNeed,
    ids: list[str],
    texts: list[str],
    *,
    channel: str = Channel.SYNC,
    log: bool = True,
) -> list[dict[str, Any]]:
    results = get_runtime().tag(served, texts)
    if log:
        predlog.record(
            tenant_id=served.tenant_id,
            need_id=served.id,
            channel=channel,
            item_refs=ids,
            results=results,
        )
    return [result.public(item_id) for item_id, result in zip(ids, results, strict=True)]


def tag_sync(*, tenant_id: int, need_slug: str, ids: list[str], texts: list[str]) -> dict[str, Any]:
    """The body of a `POST /needs/{need}/tag` answer."""
    served = resolve_need(tenant_id=tenant_id, need_slug=need_slug)
    if served.execution == Execution.QUEUE:
        items = _tag_on_queue(served, ids, texts)
    else:
        items = tag_inline(served, ids, texts)
    return {"need": served.slug, "model": served.model.ref, "items": items}


def _overloaded() -> bool:
    client = get_redis()
    if client is None:
        return False
    try:
        return client.llen("online") >= settings.SYNC_QUEUE_MAX_DEPTH
    except Exception:
        return False


def _tag_on_queue(served: ServedNeed, ids: list[str], texts: list[str]) -> list[dict[str, Any]]:
    from celery.exceptions import TimeoutError as CeleryTimeout

    from workers.tasks.online import tag_sync_items

    timeout = settings.SYNC_QUEUE_TIMEOUT_SECONDS
    retry_after = {"Retry-After": str(max(1, round(timeout)))}
    if _overloaded():
        raise ApiError(
            "overloaded",
            "The online queue is overloaded; retry shortly.",
            status_code=503,
            headers=retry_after,
        )
    # expires: a request we stopped waiting for must not be worked on later.
    result = tag_sync_items.apply_async(args=[served.id, ids, texts], expires=timeout)
    try:
        return result.get(timeout=timeout, disable_sync_subtasks=False)
    except CeleryTimeout:
        raise ApiError(
            "queue_timeout",
            f"The online queue did not answer within {timeout:g} s; retry shortly.",
            status_code=503,
            headers=retry_after,
        ) from None
    finally:
        result.forget() if hasattr(result.backend, "forget") else None
