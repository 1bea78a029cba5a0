"""The monitoring beat schedules now live in settings.CELERY_BEAT_SCHEDULE (one place, each with
`expires`); beat syncs them into django-celery-beat's table. Drop the rows 0002 created, so that
no stale copy without `expires` keeps firing beside them."""

from django.db import migrations

OLD_NAMES = [
    "monitoring: daily aggregates, drift and alerts (yesterday)",
    "monitoring: refresh today's aggregates",
    "monitoring: weekly aggregates, drift and alerts",
]


def drop_migration_rows(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=OLD_NAMES, expire_seconds__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0003_feedback_alpha"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(drop_migration_rows, migrations.RunPython.noop)]
