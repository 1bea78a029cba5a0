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
request; callers then take their degraded path (serving/quota.py, platform/serving/result_cache.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_clients: dict[tuple[int, str], redis.Redis] = {}

#: What a Redis outage raises (redis-py wraps most socket errors, not all).
REDIS_ERRORS = (redis.RedisError, OSError)
#: After a failure, Redis is left alone this long (per process) before the next attempt.
OUTAGE_BACKOFF_SECONDS = 1.0
_down_until: dict[str, float] = {}


# The URL per kind, read from the settings once: a sync request asks about ten times (each
# settings read is a call through Django's lazy settings object). Forgotten when a test changes
# either setting.
_urls: dict[str, str | None] = {}


def url_for(kind: str = "main") -> str | None:
    try:
        return _urls[kind]
    except KeyError:
        pass
    url = (
        (settings.CACHE_REDIS_URL or settings.REDIS_URL) if kind == "cache" else settings.REDIS_URL
    )
    _urls[kind] = url
    return url


@receiver(setting_changed)
def _forget_urls(*, setting: str, **kwargs) -> None:
    if setting in {"REDIS_URL", "CACHE_REDIS_URL"}:
        _urls.clear()


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
#: What to do with a write Redis did not take (dropped during an outage, or its pipeline failed).
Fallback = Callable[[], None]


class _Pending(NamedTuple):
    op: PipelineOp
    fallback: Fallback | None


def _fall_back(pending: list[_Pending]) -> None:
    for item in pending:
        if item.fallback is not None:
            try:
                item.fallback()
            except Exception:  # a fallback must never fail the caller either
                logger.exception("write-behind fallback failed")


class Drained(NamedTuple):
    """Operations put at the front of a caller's pipeline: `replies` replies come first, and
    `failed()` hands them to their fallbacks when the caller's pipeline failed."""

    replies: int
    pending: list[_Pending]

    def failed(self) -> None:
        _fall_back(self.pending)


class WriteBehind:
    """Pipeline operations nobody waits for, sent with the next pipeline (or by a flusher).

    Kept per Redis URL: an operation is only ever sent to the instance it was submitted for. An
    operation may name a fallback, called instead when Redis does not take it (the prediction log
    keeps such lines in the process and writes them to the database itself); others are best
    effort (cache entries, quota counts) and are dropped."""

    #: Pending operations above which the submitting thread sends them itself.
    MAX_PENDING = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[str, list[_Pending]] = {}
        self._oldest = 0.0  # monotonic time the oldest pending op was submitted
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)  # a child must not resend parent's ops

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._ops, self._thread = {}, None

    def submit(
        self, op: PipelineOp, *, kind: str = "main", fallback: Fallback | None = None
    ) -> None:
        client = get_redis(kind)
        if client is None:
            _fall_back([_Pending(op, fallback)])
            return
        url = url_for(kind) or ""
        if not settings.SERVING_ASYNC_WRITES:
            self._send(url, client, [_Pending(op, fallback)])
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
            pending.append(_Pending(op, fallback))
            full = len(pending) >= self.MAX_PENDING
        if full:
            self.flush()

    def drain_into(self, pipe: redis.client.Pipeline, *, kind: str = "main") -> Drained:
        """Put the operations pending for Redis `kind` at the front of `pipe`, which the caller
        executes; the caller's own replies come after `Drained.replies` replies, and the caller
        calls `Drained.failed()` if its pipeline fails."""
        url = url_for(kind) or ""
        with self._lock:
            pending = self._ops.pop(url, [])
        before = len(pipe)
        for item in pending:
            item.op(pipe)
        return Drained(len(pipe) - before, pending)

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
    def _send(url: str, client: redis.Redis | None, ops: list[_Pending]) -> None:
        # Never fail the caller; while a Redis is known to be down, don't even try (the outage
        # was logged once already): the operations go to their fallbacks, or are dropped.
        if client is None:
            _fall_back(ops)
            return
        until = _down_until.get(url)
        if until is not None and time.monotonic() < until:
            logger.info("Redis down: %d write operations not sent", len(ops))
            _fall_back(ops)
            return
        try:
            pipe = client.pipeline(transaction=False)
            for item in ops:
                item.op(pipe)
            pipe.execute()
        except REDIS_ERRORS as exc:
            _down_until[url] = time.monotonic() + OUTAGE_BACKOFF_SECONDS
            logger.warning("Redis write of %d operations failed: %s", len(ops), exc)
            _fall_back(ops)


def _client_for_url(url: str) -> redis.Redis | None:
    for kind in ("main", "cache"):
        if url_for(kind) == url:
            return get_redis(kind)
    return None


writer = WriteBehind()
atexit.register(writer.flush)
