"""A slow training step for the cluster's fault tests: a window to kill a training worker while a
model is being fitted.

Production code has no such hook; the tests slow the training path down from outside. While the
file named by TEST_TRAINING_DELAY_FILE exists, every model fit in a worker that consumes the
`training` queue takes the number of seconds written in it longer (after the fit, as a bigger data
set would). The cluster's workers import this module through
`celery worker --include tests.deploy.slow_training` (CELERY_WORKER_EXTRA_ARGS); a test writes
the file before it starts the run it wants to interrupt and deletes it afterwards, so every other
run trains at its normal speed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ENV = "TEST_TRAINING_DELAY_FILE"


def _delay(path: Path) -> float:
    try:
        return float(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0.0


def install(path: Path) -> None:
    from registry.services import training

    original = training._fit

    def slow_fit(*args, **kwargs):
        model = original(*args, **kwargs)
        seconds = _delay(path)
        if seconds:
            time.sleep(seconds)
        return model

    training._fit = slow_fit


def _consumes_training(argv: list[str]) -> bool:
    for flag in ("--queues", "-Q"):
        if flag in argv[:-1] and "training" in argv[argv.index(flag) + 1].split(","):
            return True
    return any(arg.startswith("--queues=") and "training" in arg[9:].split(",") for arg in argv)


if os.environ.get(ENV) and _consumes_training(sys.argv):  # imported by `celery worker --include`
    import django

    django.setup()
    install(Path(os.environ[ENV]))
