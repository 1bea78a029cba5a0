"""Synchronous tagging: inline in the web process, or on the `online` queue for heavy models."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as KombuOperationalError

from core.errors import DomainError
from core.queues import task_send
from serving import metrics, predlog, quota, result_cache, shadow
from serving.models import Channel
from serving.redis_pool import REDIS_ERRORS, get_redis
from serving.runtime import (
    ModelUnavailable,
    NeedNotFound,
    NeedNotServed,
    ServedNeed,
    get_runtime,
    servable_version_id,
    text_sha256,
)
from tenants.models import Execution

logger = logging.getLogger(__name__)


def resolve_need(*, tenant_id: int, need_slug: str) -> ServedNeed:
    """The served need, or the API error a client should see."""
    try:
        return get_runtime().need(tenant_id=tenant_id, slug=need_slug)
    except NeedNotFound:
        raise DomainError(
            "need_not_found",
            _("No need '%(need_slug)s'.") % {"need_slug": need_slug},
            status_code=404,
        ) from None
    except NeedNotServed as exc:  # incl. NeedInactive: need_not_approved / need_retired
        code = getattr(exc, "code", "need_not_served")
        raise DomainError(code, str(exc), status_code=409) from None
    except ModelUnavailable as exc:
        raise DomainError(
            "model_unavailable", str(exc), status_code=503, headers={"Retry-After": "30"}
        ) from None


def check_servable(*, need) -> None:
    """Can `need` be served? The stream and batch POSTs ask the database only (the same
    need -> alias -> version answer the runtime binds to, and whether that version's artifact
    has an open integrity incident). The worker that tags loads the model; the web process
    does not load it just to answer this, so a hot model is never evicted for it."""
    from registry.models import ArtifactIntegrityIncident

    try:
        version_id = servable_version_id(need)
    except NeedNotServed as exc:  # incl. NeedInactive: need_not_approved / need_retired
        raise DomainError(
            getattr(exc, "code", "need_not_served"), str(exc), status_code=409
        ) from None
    refused = (
        ArtifactIntegrityIncident.objects.filter(
            model_version_id=version_id, resolved_at__isnull=True
        )
        .select_related("model_version__registered_model")
        .first()
    )
    if refused is not None:
        version = refused.model_version
        raise DomainError(
            "model_unavailable",
            _(
                "The model serving this need (%(name)s v%(version)s) is unavailable; the platform team has been alerted."
            )
            % {"name": version.registered_model.name, "version": version.version},
            status_code=503,
            headers={"Retry-After": "30"},
        )


def tag_inline(
    served: ServedNeed,
    ids: list[str],
    texts: list[str],
    *,
    channel: str = Channel.SYNC,
    log: bool = True,
    hashes: list[str] | None = None,
    cached: list[bytes | None] | None = None,
) -> list[dict[str, Any]]:
    started = time.perf_counter()
    results = get_runtime().tag(served, texts, hashes=hashes, cached=cached)
    if channel != Channel.SYNC:  # sync requests are timed whole, in tag_sync
        metrics.observe_tag_request(served.slug, channel, time.perf_counter() - started, len(texts))
    if log:
        predlog.record(
            tenant_id=served.tenant_id,
            need_id=served.id,
            channel=channel,
            item_refs=ids,
            results=results,
            texts=texts,
        )
    if channel == Channel.SYNC:  # shadow mode: a sampled share goes to a challenger, off-path
        shadow.offer(tenant_id=served.tenant_id, need_id=served.id, texts=texts, results=results)
    return [result.public(item_id) for item_id, result in zip(ids, results, strict=True)]


def tag_sync(*, tenant, need_slug: str, ids: list[str], texts: list[str]) -> dict[str, Any]:
    """The body of a `POST /needs/{need}/tag` answer; counts the request against the quota."""
    started = time.perf_counter()
    served = resolve_need(tenant_id=tenant.pk, need_slug=need_slug)
    if served.execution == Execution.QUEUE:
        quota.check_rate(tenant)
        items = _tag_on_queue(served, ids, texts)
    else:
        # Quota count and result-cache lookup share one Redis round trip. With that Redis down
        # the model still serves: the quota fails open or closed (QUOTA_WHEN_REDIS_DOWN) and
        # every lookup misses.
        hashes = [text_sha256(text) for text in texts]
        keys = result_cache.keys_for(served.model.version_id, hashes)
        cached = quota.check_rate(tenant, lookup_keys=keys)
        items = tag_inline(served, ids, texts, hashes=hashes, cached=cached)
    metrics.observe_tag_request(
        served.slug, Channel.SYNC, time.perf_counter() - started, len(texts)
    )
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

    timeout = settings.SYNC_QUEUE_TIMEOUT_SECONDS
    retry_after = {"Retry-After": str(max(1, round(timeout)))}
    if _overloaded():
        raise DomainError(
            "overloaded",
            _("The online queue is overloaded; retry shortly."),
            status_code=503,
            headers=retry_after,
        )
    # A broker or result backend outage is a 503 the client may retry, never an HTML 500.
    unavailable = DomainError(
        "queue_unavailable",
        _("The online queue cannot be reached right now; retry shortly."),
        status_code=503,
        headers={"Retry-After": str(settings.REDIS_OUTAGE_RETRY_AFTER_SECONDS)},
    )
    try:
        # expires: a request we stopped waiting for must not be worked on later.
        result = task_send(
            "workers.tasks.online.tag_sync_items", served.id, ids, texts, expires=timeout
        )
    except (KombuOperationalError, *REDIS_ERRORS):
        logger.warning("cannot queue a sync request: broker unavailable", exc_info=True)
        raise unavailable from None
    try:
        return result.get(timeout=timeout, disable_sync_subtasks=False)
    except CeleryTimeout:
        raise DomainError(
            "queue_timeout",
            _("The online queue did not answer within %(timeout)g s; retry shortly.")
            % {"timeout": timeout},
            status_code=503,
            headers=retry_after,
        ) from None
    except (KombuOperationalError, *REDIS_ERRORS):
        logger.warning("no answer from the online queue: result backend unavailable")
        raise unavailable from None
    finally:
        with contextlib.suppress(Exception):  # best effort, also during an outage
            result.forget() if hasattr(result.backend, "forget") else None
