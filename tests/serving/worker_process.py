"""Entry point of a real prefork `celery worker` subprocess for the SIGKILL test.

Run as `python tests/serving/worker_process.py <name>`. TEST_WORKER_QUEUES (default `batch`) and
TEST_WORKER_CONCURRENCY (default 1) pick what it consumes. TEST_VISIBILITY_TIMEOUT shortens the Redis
visibility timeout so that a message left unacknowledged by a killed worker is restored within
seconds instead of hours (production keeps CELERY_LONGEST_TASK_SECONDS * 2).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")

import django  # noqa: E402

django.setup()

from tagging_platform.celery import app  # noqa: E402

visibility = float(os.environ.get("TEST_VISIBILITY_TIMEOUT", "0"))
if visibility:
    app.conf.broker_transport_options = {
        **(app.conf.broker_transport_options or {}),
        "visibility_timeout": visibility,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }

slow_load = float(os.environ.get("TEST_SLOW_MODEL_LOAD", "0"))
if slow_load:
    # Fault injection: every model load takes this long (a big model, a slow disk), longer than
    # Celery's 4 s worker_proc_alive_timeout when the test wants it to.
    import time

    from serving.runtime import Runtime

    original_load = Runtime._load

    def slow(self, version_id):
        time.sleep(slow_load)
        return original_load(self, version_id)

    Runtime._load = slow

if os.environ.get("TEST_BATCH_CHUNK_DELAY_SECONDS"):
    # A window to kill the worker in, mid-chunk (a slow model; production has no such delay).
    from tests.serving import slow_batch

    slow_batch.install(float(os.environ["TEST_BATCH_CHUNK_DELAY_SECONDS"]))

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "worker"
    app.worker_main(
        [
            "worker",
            "-Q",
            os.environ.get("TEST_WORKER_QUEUES", "batch"),
            "-P",
            "prefork",
            "-c",
            os.environ.get("TEST_WORKER_CONCURRENCY", "1"),
            "-n",
            f"{name}@%h",
            "--loglevel=INFO",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
