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
    """Aggregate a day (default: each tenant's yesterday in its time zone, now complete),
    compute drift and raise alerts.

    Idempotent: the day's aggregates are replaced, drift reports upserted, alerts deduplicated.
    """
    from monitoring import services
    from monitoring.models import Period

    if day is None and need_ids is None:
        return services.monitoring_run_local_all_tenants(period=Period.DAY, days_ago=1)
    target = _parse_day(day, timezone.now().date() - timedelta(days=1))
    return services.monitoring_run(period=Period.DAY, start=target, need_ids=need_ids)


@shared_task(base=DurableTask, name="workers.tasks.monitoring.refresh_today")
def refresh_today() -> dict:
    """Hourly refresh of today's partial aggregates (each tenant's today), so dashboards and
    drift stay current; first re-cuts the days of any tenant whose time zone changed."""
    from monitoring import services
    from monitoring.models import Period

    resynced = services.tenants_days_resync()
    return {
        "resynced": resynced,
        **services.monitoring_run_local_all_tenants(period=Period.DAY, days_ago=0),
    }


@shared_task(base=DurableTask, name="workers.tasks.monitoring.run_weekly_monitoring")
def run_weekly_monitoring(week_start: str | None = None) -> dict:
    """Weekly aggregates, drift and alerts (default: the week containing each tenant's
    yesterday)."""
    from monitoring import services
    from monitoring.models import Period

    if week_start is None:
        return services.monitoring_run_local_all_tenants(period=Period.WEEK, days_ago=1)
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


@shared_task(base=DurableTask, name="workers.tasks.monitoring.resync_tenant_days")
def resync_tenant_days(tenant_id: int) -> dict:
    """Re-cut one tenant's days after its time zone changed (idempotent)."""
    from monitoring import services
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return {"skipped": "tenant not found"}
    return services.tenant_days_resync(tenant=tenant)


@shared_task(base=DurableTask, name="workers.tasks.monitoring.drain_shadow", ignore_result=True)
def drain_shadow() -> None:
    """Beat: score the shadow-mode items buffered by sync tagging with their challengers."""
    from retraining.shadow import shadow_drain_all_tenants

    shadow_drain_all_tenants()


# --- Review rounds and cases (the review app) -------------------------------------------------
@shared_task(base=DurableTask, name="workers.tasks.monitoring.review_round_sample")
@acts_for_tenant("review.ReviewRound", "round_id")
def review_round_sample(round_id: int) -> dict:
    """Draw a round's items. Idempotent: only a pending round is claimed."""
    from review import services
    from review.models import ReviewRound

    review_round = ReviewRound.objects.filter(pk=round_id).first()
    if review_round is None:
        return {"skipped": "round not found"}
    return {"items": services.round_sample(review_round=review_round)}


@shared_task(base=DurableTask, name="workers.tasks.monitoring.review_round_scheduled")
@acts_for_tenant("tenants.Need", "need_id")
def review_round_scheduled(need_id: int) -> dict:
    """A need's scheduled round (its django-celery-beat entry). A window with nothing reviewable
    is skipped, not failed."""
    from core.errors import DomainError
    from review import services
    from review.models import Trigger
    from tenants.models import Need

    need = Need.objects.filter(pk=need_id).select_related("label_set").first()
    if need is None:
        return {"skipped": "need not found"}
    try:
        review_round = services.round_start(need=need, trigger=Trigger.SCHEDULE)
    except DomainError as exc:
        return {"skipped": exc.code}
    return {"round": review_round.pk}


@shared_task(base=DurableTask, name="workers.tasks.monitoring.review_sweep", **time_limits(600))
def review_sweep() -> dict:
    """Rounds for new drift and rare-class alerts, and cases from feedback and low confidence."""
    from review import services

    rounds = services.rounds_for_alerts_all_tenants()
    return {"rounds": rounds, **services.cases_collect_all_tenants()}


@shared_task(
    base=DurableTask,
    name="workers.tasks.monitoring.purge_sync_review_texts",
    **time_limits(600),
)
def purge_sync_review_texts() -> dict:
    """Beat: clear the sync texts kept for review once past their need's retention (idempotent:
    a cleared text stays cleared; a redelivery finds nothing left to clear)."""
    from review.sync_texts import sync_texts_purge_all_tenants

    return sync_texts_purge_all_tenants()
