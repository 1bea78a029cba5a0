from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ServingConfig(AppConfig):
    name = "serving"
    verbose_name = _("Serving: sync, stream and batch tagging")
    # Its periodic chores (prediction-log flush, stream and batch-chunk sweepers) live in
    # settings.CELERY_BEAT_SCHEDULE.
