"""Tasks on the `monitoring` queue."""

from __future__ import annotations

from datetime import date, timedelta

from celery import shared_task
from django.utils import timezone

from core.querysets import acts_for_tenant
from workers.tasks.base import DurableTask, time_limits


def _parse_day(value: str | None, default: date) -> date:
    return date.fromisoformat(value) if value else default


@shared_task(base=DurableTask, name="workers.tasks.monitoring.run_daily_monitoring")
def run_daily_monitoring(day: str | None = None, need_ids: list[int] | None = None) -> dict:
    """Aggregate a day (default: yesterday, now complete), compute drift and raise alerts.

    Idempotent: the day's aggregates are replaced, drift reports upserted, alerts deduplicated.
    """
    from monitoring import services
    from monitoring.models import Period

    target = _parse_day(day, timezone.now().date() - timedelta(days=1))
    return services.monitoring_run(period=Period.DAY, start=target, need_ids=need_ids)


@shared_task(base=DurableTask, name="workers.tasks.monitoring.refresh_today")
def refresh_today() -> dict:
    """Hourly refresh of today's partial aggregates, so dashboards and drift stay current."""
    from monitoring import services
    from monitoring.models import Period

    return services.monitoring_run(period=Period.DAY, start=timezone.now().date())


@shared_task(base=DurableTask, name="workers.tasks.monitoring.run_weekly_monitoring")
def run_weekly_monitoring(week_start: str | None = None) -> dict:
    """Weekly aggregates, drift and alerts (default: the week containing yesterday)."""
    from monitoring import services
    from monitoring.models import Period

    target = _parse_day(week_start, timezone.now().date() - timedelta(days=1))
    return services.monitoring_run(period=Period.WEEK, start=target)


@shared_task(base=DurableTask, name="workers.tasks.monitoring.prediction_log_partitions_ahead")
def prediction_log_partitions_ahead() -> list[str]:
    """PostgreSQL: create today's and the coming days' prediction-log partitions (idempotent)."""
    from django.conf import settings

    from serving.partitions import log_partitions_ensure_ahead

    days = log_partitions_ensure_ahead(days_ahead=settings.PREDICTION_LOG_PARTITIONS_AHEAD)
    return [day.isoformat() for day in days]


@shared_task(base=DurableTask, name="workers.tasks.monitoring.prediction_log_retention")
def prediction_log_retention() -> dict:
    """Drop the prediction log's days older than the retention, once they are aggregated."""
    from django.conf import settings

    from monitoring.retention import prediction_log_retention_apply

    return prediction_log_retention_apply(keep_days=settings.PREDICTION_LOG_RETENTION_DAYS)


@shared_task(name="workers.tasks.monitoring.deliver_alert", max_retries=0, **time_limits(60))
@acts_for_tenant("monitoring.Alert", "alert_id")
def deliver_alert(alert_id: int) -> dict:
    """POST the alert to the webhook and/or email it. Never raises on a delivery failure."""
    from monitoring import services
    from monitoring.models import Alert

    alert = Alert.objects.select_related("tenant", "need").filter(pk=alert_id).first()
    if alert is None:
        return {"skipped": "alert not found"}
    return services.alert_deliver(alert=alert)
