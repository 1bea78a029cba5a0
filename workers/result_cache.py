"""The content-hash result cache: (model version, sha256(text)) -> float32 scores, shared by all
tenants and channels. Raw Redis (MGET, pipelined SET EX) when REDIS_URL is set, else the Django
cache. Writes go through the serving write-behind (serving.redis_pool) so they cost the request
nothing."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

PREFIX = "tp:res:"


def keys_for(version_id: int, hashes: list[str]) -> list[str]:
    return [f"{PREFIX}{version_id}:{h}" for h in hashes]


def lookup(keys: list[str]) -> list[bytes | None]:
    from serving.redis_pool import get_redis

    client = get_redis()
    if client is not None:
        return client.mget(keys)
    found = cache.get_many(keys)
    return [found.get(key) for key in keys]


def store(mapping: dict[str, bytes]) -> None:
    from serving.redis_pool import get_redis, writer

    ttl = settings.RESULT_CACHE_SECONDS
    if not mapping or not ttl:
        return
    if get_redis() is None:
        cache.set_many(mapping, timeout=ttl)
        return

    def op(pipe) -> None:
        for key, value in mapping.items():
            pipe.set(key, value, ex=ttl)

    writer.submit(op)
