"""Per-tenant request quotas, counted in Redis (a fixed one-minute window per tenant).

One pipelined INCR+EXPIRE per request. Without Redis the Django cache counts instead (embedded
single-machine setup). `Tenant.quota_requests_per_minute == 0` means "no limit".
"""

from __future__ import annotations

import time

from django.core.cache import cache

from serving.redis_pool import get_redis
from tagging_platform.errors import ApiError

WINDOW_SECONDS = 60


def _count(tenant_id: int) -> tuple[int, int]:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
    key = f"tp:rl:{tenant_id}:{window}"
    client = get_redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_SECONDS + 5)
        count = int(pipe.execute()[0])
    else:
        cache.add(key, 0, WINDOW_SECONDS + 5)
        count = cache.incr(key)
    return count, retry_after


def check_rate(tenant) -> None:
    """Count one request for `tenant`; raise 429 `rate_limited` with Retry-After when over quota."""
    limit = tenant.quota_requests_per_minute
    if not limit:
        return
    count, retry_after = _count(tenant.pk)
    if count > limit:
        raise ApiError(
            "rate_limited",
            f"Over this tenant's quota of {limit} requests per minute; retry in {retry_after} s.",
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
