"""The Celery queues, one per latency class (the Celery app and the queue-depth metrics use it),
and how the apps below `workers/` send a task: by its registered name.

Tasks sit on top of the layers (a task module imports the services it calls), so a service that
enqueues work cannot import its task. It names it instead, as a Celery message does anyway:
`task_send("workers.tasks.training.train_model", run_id)`. Every Django process registers the
task modules when its apps are ready (`workers.apps`), so the name resolves to the task object
itself: its own options, the routes to its queue, eager mode in tests, exactly as `.delay()`.
A name nobody registered fails loudly (`celery.exceptions.NotRegistered`) instead of publishing
a message no worker would run.
"""

from __future__ import annotations

from typing import Any

QUEUES = ("online", "batch", "training", "monitoring")


def task_send(name: str, /, *args: Any, **options: Any) -> Any:
    """`apply_async` of the task registered as `name` with positional `args` and Celery
    `options` (countdown, expires, ...). Returns its AsyncResult. Call it inside
    `transaction.on_commit` when the task reads rows this transaction writes."""
    from celery import current_app

    return current_app.tasks[name].apply_async(args=args, **options)
