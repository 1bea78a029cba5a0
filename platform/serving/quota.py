"""Per-tenant request quotas, counted in Redis (a fixed one-minute window per tenant).

One pipelined INCR+EXPIRE per request; the sync hot path adds its result-cache MGET to the same
pipeline, and the process's pending write-behind operations ride in front of both, so quota,
cache lookup and the previous requests' writes cost one round trip together. Counters live on the
cache Redis (CACHE_REDIS_URL, default REDIS_URL) next to the result cache they share a pipeline
with. Without Redis the Django cache counts (embedded single-machine setup).
`Tenant.quota_requests_per_minute == 0` means "no limit".

While that Redis is down the quota cannot be counted. QUOTA_WHEN_REDIS_DOWN decides, on purpose:
`open` (default) lets the request through uncounted and logs the outage; `closed` answers 503
`quota_unavailable` with Retry-After. Either way the result cache is skipped (every lookup misses).
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from core.errors import DomainError
from serving import redis_pool, result_cache

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


def check_rate(tenant, *, lookup_keys: list[str] | None = None) -> list[bytes | None] | None:
    """Count one request for `tenant`; raise 429 `rate_limited` (with Retry-After) over quota.

    With `lookup_keys`, also fetch those result-cache entries in the same round trip (all
    misses, `[None, ...]`, while Redis is down)."""
    limit = tenant.quota_requests_per_minute
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"tp:rl:{tenant.pk}:{window}"
    client = redis_pool.get_redis("cache")
    count, found = 0, None
    misses = [None] * len(lookup_keys) if lookup_keys else None
    if client is not None and not redis_pool.available("cache"):
        _uncounted(tenant, limit)
        return misses
    if client is not None:
        drained = redis_pool.Drained(0, [])
        try:
            pipe = client.pipeline(transaction=False)
            # Replies to the ridden-along writes come first.
            drained = redis_pool.writer.drain_into(pipe, kind="cache")
            mine = drained.replies
            if limit:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS + 5)
            if lookup_keys:
                pipe.mget(lookup_keys)
            replies = pipe.execute() if len(pipe) else []
            if limit:
                count = int(replies[mine])
            if lookup_keys:
                found = replies[-1]
        except redis_pool.REDIS_ERRORS as exc:
            redis_pool.mark_down("cache", exc)
            drained.failed()  # the ridden-along writes go to their fallbacks
            _uncounted(tenant, limit)
            return misses
    else:
        if limit:
            cache.add(key, 0, WINDOW_SECONDS + 5)
            count = cache.incr(key)
        if lookup_keys:
            found = result_cache.lookup(lookup_keys)
    if limit and count > limit:
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        raise DomainError(
            "rate_limited",
            _(
                "Over this tenant's quota of %(limit)s requests per minute; retry in %(retry_after)s s."
            )
            % {"limit": limit, "retry_after": retry_after},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
    return found


def _uncounted(tenant, limit: int) -> None:
    """A request whose quota could not be counted (Redis down): fail open or closed."""
    if not limit:
        return  # no quota to enforce
    if settings.QUOTA_WHEN_REDIS_DOWN == "closed":
        retry_after = settings.REDIS_OUTAGE_RETRY_AFTER_SECONDS
        raise DomainError(
            "quota_unavailable",
            _("Request quotas cannot be checked right now; retry in %(retry_after)s s.")
            % {"retry_after": retry_after},
            status_code=503,
            headers={"Retry-After": str(retry_after)},
        )
    global _open_count, _open_logged_at
    with _open_lock:
        _open_count += 1
        due = time.monotonic() - _open_logged_at >= OPEN_LOG_SECONDS
        if due:
            count, _open_count, _open_logged_at = _open_count, 0, time.monotonic()
    if due:
        logger.warning(
            "quota not counted for %d request(s) (latest: tenant %s): Redis unavailable, "
            "failing open (QUOTA_WHEN_REDIS_DOWN=open)",
            count,
            tenant.pk,
        )


#: Fail-open requests are logged in one line per this many seconds, not one line each.
OPEN_LOG_SECONDS = 10.0
_open_lock = threading.Lock()
_open_count = 0
_open_logged_at = -OPEN_LOG_SECONDS
