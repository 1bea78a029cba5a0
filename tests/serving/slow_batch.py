"""A slow batch model for tests: a window to kill a worker, or cancel a job, in the middle of a chunk.

Production code has no such hook; the tests slow the batch path down from outside. Each chunk's
tagging takes `seconds` longer (after inference, before the chunk's results commit), as a slow
model would:

- in the test process (a real worker thread shares it): `install(seconds)`, undone by the callable
  it returns;
- in a worker subprocess: tests/serving/worker_process.py installs it from
  TEST_BATCH_CHUNK_DELAY_SECONDS;
- in the cluster's batch workers: `celery worker --include tests.serving.slow_batch` (through
  CELERY_WORKER_EXTRA_ARGS) installs it when imported, if TEST_BATCH_CHUNK_DELAY_SECONDS is set
  and the worker consumes the batch queue (the other queues keep their normal speed).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

ENV = "TEST_BATCH_CHUNK_DELAY_SECONDS"


def install(seconds: float) -> Callable[[], None]:
    """Make every `Runtime.tag` call in this process take `seconds` longer."""
    from serving.runtime import Runtime

    original = Runtime.tag

    def slow_tag(self, *args, **kwargs):
        results = original(self, *args, **kwargs)
        time.sleep(seconds)
        return results

    Runtime.tag = slow_tag

    def undo() -> None:
        Runtime.tag = original

    return undo


def _consumes_batch(argv: list[str]) -> bool:
    for flag in ("--queues", "-Q"):
        if flag in argv[:-1] and "batch" in argv[argv.index(flag) + 1].split(","):
            return True
    return any(arg.startswith("--queues=") and "batch" in arg[9:].split(",") for arg in argv)


if os.environ.get(ENV) and _consumes_batch(sys.argv):  # imported by `celery worker --include`
    import django

    django.setup()
    install(float(os.environ[ENV]))
