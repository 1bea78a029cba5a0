"""Celery tasks, one module per queue (routes in tagging_platform.celery). Tasks stay thin:
they take ids, load rows and call a service."""

from workers.tasks import batch, monitoring, online, training  # noqa: F401
