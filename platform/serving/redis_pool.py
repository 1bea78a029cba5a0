"""Raw Redis for the serving hot path: one client per process and a background pipeline writer.

The sync path talks to Redis in one round trip before predicting (quota INCR + result-cache MGET,
pipelined) and none after: result-cache writes and prediction-log appends are handed to a
per-process writer thread that sends whatever has accumulated as one pipeline. On a busy machine a
round trip costs a context switch or two, which is the same order as predicting one short text.
Returns None / runs inline in the embedded setup (no REDIS_URL).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
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


class BackgroundWriter:
    """Runs pipeline operations off the request thread, batching everything queued meanwhile."""

    def __init__(self) -> None:
        self._queue: queue.Queue[PipelineOp] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()

    def submit(self, op: PipelineOp) -> None:
        client = get_redis()
        if client is None:
            return
        if not settings.SERVING_ASYNC_WRITES:
            pipe = client.pipeline(transaction=False)
            op(pipe)
            pipe.execute()
            return
        self._ensure_thread()
        self._queue.put(op)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                if self._pid != os.getpid():
                    self._queue = queue.Queue()  # a forked child must not inherit queued work
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="serving-redis-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            ops = [self._queue.get()]
            while len(ops) < 1000:
                try:
                    ops.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                client = get_redis()
                if client is not None:
                    pipe = client.pipeline(transaction=False)
                    for op in ops:
                        op(pipe)
                    pipe.execute()
            except Exception:  # cache/log writes are best effort; never kill the thread
                logger.warning("background Redis write of %d ops failed", len(ops), exc_info=True)
            finally:
                for _ in ops:
                    self._queue.task_done()

    def flush(self) -> None:
        """Block until everything submitted so far has been written (tests, flush command, exit)."""
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            self._queue.join()


writer = BackgroundWriter()
atexit.register(writer.flush)
