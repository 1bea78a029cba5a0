"""One raw Redis client per process for the serving hot path (rate limits, the prediction-log buffer).

The Django cache covers the result cache; these need list and counter commands in one round trip.
Returns None in the embedded setup (no REDIS_URL): callers fall back to in-process structures.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}


def get_redis() -> redis.Redis | None:
    url = settings.REDIS_URL
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
                _clients[url] = client
    return client
