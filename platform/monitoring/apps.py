from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = _("Monitoring of model outputs")

    def ready(self) -> None:
        from celery.signals import task_failure

        from monitoring import metrics

        task_failure.connect(metrics.on_task_failure, weak=False, dispatch_uid="monitoring-metrics")
