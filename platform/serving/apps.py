from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "serving"
    verbose_name = "Serving: sync, stream and batch tagging"
    # Its periodic chores (prediction-log flush, stream and batch-chunk sweepers) live in
    # settings.CELERY_BEAT_SCHEDULE.
