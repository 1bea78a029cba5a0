"""Per-tenant request quotas, counted in Redis (a fixed one-minute window per tenant).

One pipelined INCR+EXPIRE per request; the sync hot path adds its result-cache MGET to the same
pipeline, and the process's pending write-behind operations ride in front of both, so quota,
cache lookup and the previous requests' writes cost one round trip together. Without Redis the
Django cache counts (embedded single-machine setup). `Tenant.quota_requests_per_minute == 0` means "no limit".
"""

from __future__ import annotations

import time

from django.core.cache import cache

from serving.redis_pool import get_redis, writer
from tagging_platform.errors import ApiError
from workers import result_cache

WINDOW_SECONDS = 60


def check_rate(tenant, *, lookup_keys: list[str] | None = None) -> list[bytes | None] | None:
    """Count one request for `tenant`; raise 429 `rate_limited` (with Retry-After) over quota.

    With `lookup_keys`, also fetch those result-cache entries in the same round trip."""
    limit = tenant.quota_requests_per_minute
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"tp:rl:{tenant.pk}:{window}"
    client = get_redis()
    count, found = 0, None
    if client is not None:
        pipe = client.pipeline(transaction=False)
        mine = writer.drain_into(pipe)  # replies to the ridden-along writes come first
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
    else:
        if limit:
            cache.add(key, 0, WINDOW_SECONDS + 5)
            count = cache.incr(key)
        if lookup_keys:
            found = result_cache.lookup(lookup_keys)
    if limit and count > limit:
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        raise ApiError(
            "rate_limited",
            f"Over this tenant's quota of {limit} requests per minute; retry in {retry_after} s.",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
    return found
