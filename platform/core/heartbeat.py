"""A heartbeat for long work on a worker: a daemon thread that stamps the work's row every few
seconds while the work runs, so that a sweeper can tell a run whose worker died (its stamp goes
stale) from a run that is merely slow (one long `fit` call writes nothing for minutes)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def beating(stamp: Callable[[], object], *, every: float) -> Iterator[None]:
    """Call `stamp()` every `every` seconds in a background thread while the block runs.

    The thread runs in a copy of the caller's context (its tenant scope), uses its own database
    connection and closes it when the block ends. A failed stamp is logged and retried at the
    next beat: a database blip must not kill the work it is watching."""
    stop = threading.Event()
    context = contextvars.copy_context()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    stamp()
                except Exception:  # the next beat tries again; the work itself goes on
                    logger.warning("heartbeat stamp failed", exc_info=True)
                    close_old_connections()
        finally:
            connection.close()

    thread = threading.Thread(target=context.run, args=(beat,), name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)
