"""The content-hash result cache: (model version, sha256(text)) -> float32 scores, shared by all
tenants and channels. Raw Redis (MGET, pipelined SET EX) on the cache Redis (CACHE_REDIS_URL,
default REDIS_URL) when set, else the Django cache. Writes go through the serving write-behind
(serving.redis_pool) so they cost the request nothing.

Bounded: entries live RESULT_CACHE_SECONDS (1 day by default), and in production the cache Redis
is its own instance with `maxmemory` + `allkeys-lru` (deploy/redis/cache.conf), so it levels off
at its memory limit instead of growing with traffic. A cache is optional: while its Redis is down
every lookup is a miss and nothing is stored (predictions cost CPU, never a failed request)."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

PREFIX = "tp:res:"


def keys_for(version_id: int, hashes: list[str]) -> list[str]:
    return [f"{PREFIX}{version_id}:{h}" for h in hashes]


def lookup(keys: list[str]) -> list[bytes | None]:
    from serving import redis_pool

    client = redis_pool.get_redis("cache")
    if client is None:
        found = cache.get_many(keys)
        return [found.get(key) for key in keys]
    if not redis_pool.available("cache"):
        return [None] * len(keys)
    try:
        return client.mget(keys)
    except redis_pool.REDIS_ERRORS as exc:
        redis_pool.mark_down("cache", exc)
        return [None] * len(keys)


def store(mapping: dict[str, bytes]) -> None:
    from serving import redis_pool

    ttl = settings.RESULT_CACHE_SECONDS
    if not mapping or not ttl:
        return
    if redis_pool.get_redis("cache") is None:
        cache.set_many(mapping, timeout=ttl)
        return
    if not redis_pool.available("cache"):
        return

    def op(pipe) -> None:
        for key, value in mapping.items():
            pipe.set(key, value, ex=ttl)

    redis_pool.writer.submit(op, kind="cache")
