"""Sync texts kept for review: the share each need keeps (a per-process cache the serving hook
asks on the hot path) and the purge that clears kept texts after the need's retention.

Serving logs a sync prediction's text only when this app says so (serving.predlog's provider
hook): the hot path pays a dict lookup and, for a need that keeps texts, one random draw per
item; the text rides the same log line. Beat runs `sync_texts_purge_all_tenants` hourly: each
need's kept texts older than its `sync_text_retention_days` are set to NULL (through the partial
index on kept texts, never a scan of the log), and any older than the platform's cap
SYNC_REVIEW_TEXT_MAX_DAYS whatever the need says (a need whose settings are gone included). A
text sampled into a review round lives on with its review item, which reviewers need to answer.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from review.models import NeedReviewConfig
from serving.models import PredictionLog

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[int, float] = {}
_loaded_at = float("-inf")


def sync_review_shares_all_tenants() -> dict[int, float]:
    """need id -> share of sync texts kept, for the needs that keep any. One query."""
    return {
        need_id: float(share)
        for need_id, share in NeedReviewConfig.objects.dangerously_unscoped()
        .filter(sync_review_share__gt=0)
        .values_list("need_id", "sync_review_share")
    }


def share_for_need(need_id: int) -> float:
    """The serving hook's provider: re-read every SYNC_REVIEW_SHARE_REFRESH_SECONDS."""
    global _cache, _loaded_at
    if time.monotonic() - _loaded_at >= settings.SYNC_REVIEW_SHARE_REFRESH_SECONDS:
        with _lock:
            if time.monotonic() - _loaded_at >= settings.SYNC_REVIEW_SHARE_REFRESH_SECONDS:
                try:
                    _cache = sync_review_shares_all_tenants()
                except Exception:
                    # Keeping no text is the safe failure: nothing sensitive is stored.
                    logger.warning("cannot read sync review shares; none kept", exc_info=True)
                    _cache = {}
                _loaded_at = time.monotonic()
    return _cache.get(need_id, 0.0)


def forget_shares() -> None:
    """Drop the cached shares (tests; a settings change reaches processes within the refresh)."""
    global _loaded_at
    with _lock:
        _loaded_at = float("-inf")


def _clear(queryset, cutoff: datetime) -> int:
    # `day` bounds let PostgreSQL prune partitions; the partial index finds the kept texts.
    return queryset.filter(
        text__isnull=False, day__lte=cutoff.date() + timedelta(days=1), created_at__lt=cutoff
    ).update(text=None)


def sync_texts_purge_all_tenants(*, now: datetime | None = None) -> dict[str, int]:
    """Clear kept sync texts past their retention. Idempotent (a cleared text stays NULL);
    the row and its `text_share` stay, so monitoring and past rounds are unchanged."""
    now = now or timezone.now()
    cap = settings.SYNC_REVIEW_TEXT_MAX_DAYS
    cleared = 0
    configs = NeedReviewConfig.objects.dangerously_unscoped().values_list(
        "tenant_id", "need_id", "sync_text_retention_days"
    )
    for tenant_id, need_id, days in configs:
        cleared += _clear(
            PredictionLog.objects.for_tenant(tenant_id).filter(need_id=need_id),
            now - timedelta(days=min(days, cap)),
        )
    # The platform's cap, for every need (one whose review settings were deleted included).
    capped = _clear(PredictionLog.objects.dangerously_unscoped(), now - timedelta(days=cap))
    if cleared or capped:
        logger.info("sync texts purged: %d by need retention, %d by the cap", cleared, capped)
    return {"cleared": cleared + capped}
