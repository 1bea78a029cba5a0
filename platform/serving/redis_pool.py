"""Raw Redis for the serving hot path: one client per process, and writes that ride along.

The sync path talks to Redis once per request, before predicting: quota INCR + result-cache MGET
in one pipeline. Its writes (result-cache entries, prediction-log lines) are not sent on their
own: `writer` keeps them and the *next* pipeline this process sends anyway carries them, ahead of
its own commands. A busy web process therefore writes with no extra round trip and no thread
hand-off (on this kind of machine a round trip costs as much as predicting a short text), and a
text written by one request is already in the cache when the next request's lookup runs. A flusher
thread sends whatever has waited WRITE_BEHIND_SECONDS in a quiet process; `writer.flush()` sends
everything at once (tests, the prediction-log drain, process exit).
Returns None / runs inline in the embedded setup (no REDIS_URL).

Two Redis roles (README "Redis outage and the result cache"): `main` (REDIS_URL: the broker's
instance, never evicts; the prediction-log buffer lives there) and `cache` (CACHE_REDIS_URL,
default REDIS_URL: result-cache entries and quota counters, which may be evicted, so production
runs it as its own instance with `maxmemory` + `allkeys-lru`). Write-behind operations are kept
per instance; when both are one URL they still share one pipeline.

Outages: a failed command marks that Redis down for OUTAGE_BACKOFF_SECONDS (`available()` is
False), so a dead Redis costs one failed connection attempt per process and second, not one per
request; callers then take their degraded path (serving/quota.py, workers/result_cache.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}

#: What a Redis outage raises (redis-py wraps most socket errors, not all).
REDIS_ERRORS = (redis.RedisError, OSError)
#: After a failure, Redis is left alone this long (per process) before the next attempt.
OUTAGE_BACKOFF_SECONDS = 1.0
_down_until: dict[str, float] = {}


def url_for(kind: str = "main") -> str | None:
    if kind == "cache":
        return settings.CACHE_REDIS_URL or settings.REDIS_URL
    return settings.REDIS_URL


def get_redis(kind: str = "main") -> redis.Redis | None:
    """The process's client for Redis `kind` ("main" or "cache"); None without REDIS_URL."""
    url = url_for(kind)
    if not url:
        return None
    key = (os.getpid(), url)  # never share a connection pool across a fork
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
                _clients[key] = client
    return client


def available(kind: str = "main") -> bool:
    """False while a recent failure of this Redis is being backed off from."""
    until = _down_until.get(url_for(kind) or "")
    return until is None or time.monotonic() >= until


def mark_down(kind: str, exc: BaseException) -> None:
    """Record a failure of Redis `kind`; logged once per backoff window, not per request."""
    url = url_for(kind) or ""
    first = available(kind)
    _down_until[url] = time.monotonic() + OUTAGE_BACKOFF_SECONDS
    if first:
        logger.warning(
            "Redis (%s) unavailable: %s; serving degraded (no result cache, quota per "
            "QUOTA_WHEN_REDIS_DOWN), next attempt in %.0f s",
            kind,
            exc,
            OUTAGE_BACKOFF_SECONDS,
        )


def reset_outages() -> None:
    """Forget recorded failures (tests, after restarting a Redis)."""
    _down_until.clear()


PipelineOp = Callable[[redis.client.Pipeline], None]


class WriteBehind:
    """Pipeline operations nobody waits for, sent with the next pipeline (or by a flusher).

    Kept per Redis URL: an operation is only ever sent to the instance it was submitted for."""

    #: Pending operations above which the submitting thread sends them itself.
    MAX_PENDING = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, list[PipelineOp]] = {}
        self._oldest = 0.0  # monotonic time the oldest pending op was submitted
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)  # a child must not resend parent's ops

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._ops, self._thread = {}, None

    def submit(self, op: PipelineOp, *, kind: str = "main") -> None:
        client = get_redis(kind)
        if client is None:
            return
        url = url_for(kind) or ""
        if not settings.SERVING_ASYNC_WRITES:
            self._send(url, client, [op])
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._flush_when_quiet, name="serving-write-behind", daemon=True
                )
                self._thread.start()
            if not any(self._ops.values()):
                self._oldest = time.monotonic()
            pending = self._ops.setdefault(url, [])
            pending.append(op)
            full = len(pending) >= self.MAX_PENDING
        if full:
            self.flush()

    def drain_into(self, pipe: redis.client.Pipeline, *, kind: str = "main") -> int:
        """Put the operations pending for Redis `kind` at the front of `pipe`, which the caller
        executes. Returns how many replies they add (the caller's own replies come after)."""
        url = url_for(kind) or ""
        with self._lock:
            ops = self._ops.pop(url, [])
        before = len(pipe)
        for op in ops:
            op(pipe)
        return len(pipe) - before

    def flush(self) -> None:
        """Send everything pending now."""
        with self._lock:
            by_url, self._ops = self._ops, {}
        for url, ops in by_url.items():
            if ops:
                self._send(url, _client_for_url(url), ops)

    def _flush_when_quiet(self) -> None:
        while True:
            interval = settings.WRITE_BEHIND_SECONDS
            time.sleep(min(interval, 0.1))
            with self._lock:
                due = any(self._ops.values()) and time.monotonic() - self._oldest >= interval
            if due:
                self.flush()

    @staticmethod
    def _send(url: str, client: redis.Redis | None, ops: list[PipelineOp]) -> None:
        # Cache and log writes are best effort: never fail the caller, and while a Redis is
        # known to be down, drop them without trying (the outage was logged once already).
        if client is None:
            return
        until = _down_until.get(url)
        if until is not None and time.monotonic() < until:
            logger.info("Redis down: %d write operations dropped", len(ops))
            return
        try:
            pipe = client.pipeline(transaction=False)
            for op in ops:
                op(pipe)
            pipe.execute()
        except REDIS_ERRORS as exc:
            _down_until[url] = time.monotonic() + OUTAGE_BACKOFF_SECONDS
            logger.warning("Redis write of %d operations failed: %s", len(ops), exc)


def _client_for_url(url: str) -> redis.Redis | None:
    for kind in ("main", "cache"):
        if url_for(kind) == url:
            return get_redis(kind)
    return None


writer = WriteBehind()
atexit.register(writer.flush)
