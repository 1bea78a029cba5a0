"""Register the monitoring beat schedules with django-celery-beat (idempotent, reversible)."""

from django.db import migrations

SCHEDULES = [
    # (name, task, crontab minute, hour, day_of_week)
    (
        "monitoring: daily aggregates, drift and alerts (yesterday)",
        "workers.tasks.monitoring.run_daily_monitoring",
        "15",
        "0",
        "*",
    ),
    (
        "monitoring: refresh today's aggregates",
        "workers.tasks.monitoring.refresh_today",
        "5",
        "*",
        "*",
    ),
    (
        "monitoring: weekly aggregates, drift and alerts",
        "workers.tasks.monitoring.run_weekly_monitoring",
        "45",
        "0",
        "*",
    ),
]


def add_schedules(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, minute, hour, day_of_week in SCHEDULES:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_week=day_of_week,
            day_of_month="*",
            month_of_year="*",
            timezone="UTC",
        )
        PeriodicTask.objects.update_or_create(
            name=name,
            defaults={"task": task, "crontab": crontab, "queue": "monitoring", "enabled": True},
        )


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedules, remove_schedules)]
