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


def get_redis() -> redis.Redis | None:
    url = settings.REDIS_URL
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


PipelineOp = Callable[[redis.client.Pipeline], None]


class WriteBehind:
    """Pipeline operations nobody waits for, sent with the next pipeline (or by a flusher)."""

    #: Pending operations above which the submitting thread sends them itself.
    MAX_PENDING = 1000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: list[PipelineOp] = []
        self._oldest = 0.0  # monotonic time the oldest pending op was submitted
        self._thread: threading.Thread | None = None
        os.register_at_fork(after_in_child=self._forget)  # a child must not resend parent's ops

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._ops, self._thread = [], None

    def submit(self, op: PipelineOp) -> None:
        client = get_redis()
        if client is None:
            return
        if not settings.SERVING_ASYNC_WRITES:
            self._send(client, [op])
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._flush_when_quiet, name="serving-write-behind", daemon=True
                )
                self._thread.start()
            if not self._ops:
                self._oldest = time.monotonic()
            self._ops.append(op)
            full = len(self._ops) >= self.MAX_PENDING
        if full:
            self.flush()

    def drain_into(self, pipe: redis.client.Pipeline) -> int:
        """Put the pending operations at the front of `pipe`, which the caller executes.
        Returns how many replies they add (the caller's own replies come after them)."""
        with self._lock:
            ops, self._ops = self._ops, []
        before = len(pipe)
        for op in ops:
            op(pipe)
        return len(pipe) - before

    def flush(self) -> None:
        """Send everything pending now."""
        with self._lock:
            ops, self._ops = self._ops, []
        client = get_redis()
        if ops and client is not None:
            self._send(client, ops)

    def _flush_when_quiet(self) -> None:
        while True:
            interval = settings.WRITE_BEHIND_SECONDS
            time.sleep(min(interval, 0.1))
            with self._lock:
                due = bool(self._ops) and time.monotonic() - self._oldest >= interval
            if due:
                self.flush()

    @staticmethod
    def _send(client: redis.Redis, ops: list[PipelineOp]) -> None:
        try:
            pipe = client.pipeline(transaction=False)
            for op in ops:
                op(pipe)
            pipe.execute()
        except Exception:  # cache/log writes are best effort; never fail the caller
            logger.warning("Redis write of %d operations failed", len(ops), exc_info=True)


writer = WriteBehind()
atexit.register(writer.flush)
