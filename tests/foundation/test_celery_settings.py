"""Celery settings that do what they say, read from the real task objects and the beat schedule."""

from __future__ import annotations

from datetime import date

import kombu.exceptions
import pytest
from celery.schedules import crontab, schedule
from django.conf import settings
from django.db import OperationalError

from tagging_platform.celery import app
from workers.tasks.base import DurableTask

OURS = ("workers.", "tagging_platform.")


def our_tasks() -> dict:
    tasks = {name: task for name, task in app.tasks.items() if name.startswith(OURS)}
    assert {
        "workers.tasks.training.train_model",
        "workers.tasks.batch.run_batch_chunk",
        "workers.tasks.online.tag_stream_items",
        "workers.tasks.monitoring.run_daily_monitoring",
        "tagging_platform.celery.ping",
    } <= set(tasks)
    return tasks


def test_every_task_has_time_limits_below_the_visibility_timeout():
    visibility = settings.CELERY_LONGEST_TASK_SECONDS * 2
    if "visibility_timeout" in settings.CELERY_BROKER_TRANSPORT_OPTIONS:  # the Redis broker
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == visibility
    for name, task in our_tasks().items():
        # What the worker applies: the task's own limits, else the app-wide ones.
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft and hard, f"{name} has no time limit"
        assert soft < hard < visibility, (name, soft, hard, visibility)


def test_online_tasks_have_short_limits_and_training_the_longest():
    tasks = our_tasks()
    assert tasks["workers.tasks.online.tag_stream_items"].time_limit <= 120
    assert tasks["workers.tasks.online.deliver_webhook"].time_limit <= 60
    assert tasks["workers.tasks.training.train_model"].time_limit == app.conf.task_time_limit
    assert app.conf.task_soft_time_limit == settings.CELERY_LONGEST_TASK_SECONDS


def test_durable_tasks_retry_database_and_broker_errors():
    durable = {n: t for n, t in our_tasks().items() if isinstance(t, DurableTask)}
    assert {"workers.tasks.training.train_model", "workers.tasks.batch.run_batch_chunk"} <= set(
        durable
    )
    for name, task in durable.items():
        assert OperationalError in task.autoretry_for, name
        assert kombu.exceptions.OperationalError in task.autoretry_for, name
        assert task.max_retries and task.retry_backoff, name


@pytest.mark.django_db
def test_a_durable_task_is_really_retried_after_a_database_error(monkeypatch):
    from monitoring import services
    from workers.tasks.monitoring import run_daily_monitoring

    calls = []

    def flaky(*, period, start, need_ids=None):
        calls.append(start)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return {"day": start.isoformat()}

    monkeypatch.setattr(services, "monitoring_run", flaky)
    result = run_daily_monitoring.apply(kwargs={"day": "2026-01-05"}, throw=False)
    assert result.get() == {"day": "2026-01-05"}
    assert calls == [date(2026, 1, 5)] * 2


@pytest.mark.django_db
def test_a_bug_is_not_retried(monkeypatch):
    from monitoring import services
    from workers.tasks.monitoring import run_daily_monitoring

    calls = []

    def broken(*, period, start, need_ids=None):
        calls.append(start)
        raise ValueError("a bug")

    monkeypatch.setattr(services, "monitoring_run", broken)
    with pytest.raises(ValueError):
        run_daily_monitoring.apply(kwargs={"day": "2026-01-05"}, throw=True)
    assert len(calls) == 1


def period_seconds(entry_schedule) -> float:
    if isinstance(entry_schedule, int | float):
        return float(entry_schedule)
    if isinstance(entry_schedule, crontab):
        return 3600.0 if entry_schedule.hour == set(range(24)) else 24 * 3600.0
    assert isinstance(entry_schedule, schedule)
    return entry_schedule.run_every.total_seconds()


def test_the_beat_schedule_is_one_dict_and_every_entry_expires():
    # Django has set up every app: none merged schedules of its own into the app's.
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    tasks = our_tasks()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in tasks, name
        expires = entry["options"]["expire_seconds"]
        assert 0 < expires <= period_seconds(entry["schedule"]), name


def test_beat_sends_every_entry_with_expires(transactional_db, tenant_a):
    """What django-celery-beat's scheduler (the one beat runs) makes of the schedule: each row has
    an expiry, and the message options it sends carry `expires`; no other copy of a platform
    task is scheduled (e.g. rows an old migration created)."""
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    from serving import services
    from tests.serving.factories import make_model, make_served_need

    need = make_served_need(tenant=tenant_a, slug="news", version=make_model())
    services.scheduled_batch_create(tenant=tenant_a, need=need, name="nightly")

    scheduler = DatabaseScheduler(app=app)
    rows = PeriodicTask.objects.filter(enabled=True)
    assert rows.exists()
    for row in rows:
        assert row.expire_seconds or row.expires, row.name
        # The scheduler's own entry type (its `schedule` dict leaves out crontab rows that are
        # not due within the hour, so reading it would make this test depend on the clock).
        assert scheduler.Entry(row, app=app).options["expires"], row.name
    # The tenant's scheduled batch is its own row; every other row is one of the platform's.
    platform_tasks = [r.task for r in rows if r.task != "workers.tasks.batch.run_scheduled_batch"]
    assert sorted(t for t in platform_tasks if t.startswith(OURS)) == sorted(
        entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    )


def test_a_task_sent_by_name_is_the_registered_task_with_its_options(monkeypatch):
    """Services below `workers/` enqueue by name (core.queues.task_send): the name resolves to
    the task object, so its routes, options and eager mode apply exactly as with `.delay()`."""
    from celery.exceptions import NotRegistered

    from core.queues import task_send
    from workers.tasks.online import deliver_webhook

    sent = []
    monkeypatch.setattr(
        deliver_webhook, "apply_async", lambda args, **options: sent.append((args, options))
    )
    task_send("workers.tasks.online.deliver_webhook", 42, countdown=3)
    assert sent == [((42,), {"countdown": 3})]
    assert app.amqp.router.route({}, "workers.tasks.online.deliver_webhook")["queue"].name == (
        "online"
    )
    assert task_send("tagging_platform.celery.ping").get() == "pong"  # eager in tests
    with pytest.raises(NotRegistered):
        task_send("workers.tasks.online.no_such_task", 1)
