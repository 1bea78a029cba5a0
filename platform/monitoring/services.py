"""Writes of the monitoring area: drift reports, alerts, feedback, the daily/weekly pipelines."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from core.localtime import tenant_local_date, tenant_today, zone
from core.queues import task_send
from monitoring import aggregation, drift, rules
from monitoring.evidence import label_names, name_of, plain_sentence
from monitoring.models import (
    Alert,
    AlertKind,
    AlertStatus,
    BaselineSource,
    CheckStatus,
    DriftReport,
    FeedbackAggregate,
    FeedbackEvent,
    LabelAggregate,
    NeedMonitoringConfig,
    Period,
    PredictionAggregate,
    RuleCheck,
    Severity,
)
from registry.selectors import serving_version
from serving.models import PredictionLog
from serving.services import scheduled_batches_time_zone_sync
from tenants.models import Need, Tenant
from tenants.services import recipient_language

logger = logging.getLogger(__name__)


def config_for(need: Need) -> NeedMonitoringConfig:
    """The need's monitoring settings, or an unsaved row holding the defaults."""
    try:
        return need.monitoring_config
    except NeedMonitoringConfig.DoesNotExist:
        return NeedMonitoringConfig(need=need, tenant_id=need.tenant_id)


# --- Baseline -------------------------------------------------------------------------------
@dataclass
class Baseline:
    source: str
    ref: str
    counts: dict[str, float]


def baseline_for(*, need: Need, period: str, start: date) -> Baseline | None:
    """The training snapshot's label distribution (production model), or the reference window."""
    config = config_for(need)
    if config.baseline_source == BaselineSource.WINDOW and config.reference_start:
        end = config.reference_end or config.reference_start
        rows = (
            LabelAggregate.objects.owned_by(need.tenant_id)
            .filter(need=need, period=Period.DAY, period_start__range=(config.reference_start, end))
            .values("label")
            .annotate(total=Sum("count"))
        )
        counts = {row["label"]: float(row["total"]) for row in rows}
        if counts:
            return Baseline(BaselineSource.WINDOW, f"{config.reference_start}..{end}", counts)
        return None
    version = serving_version(need)
    if version is None:
        # No production alias: fall back to the version that served most of the period.
        top = (
            PredictionAggregate.objects.owned_by(need.tenant_id)
            .filter(need=need, period=period, period_start=start)
            .order_by("-volume")
            .select_related("model_version__snapshot", "model_version__registered_model")
            .first()
        )
        version = top.model_version if top else None
    if version is None or not version.snapshot.label_distribution:
        return None
    counts = {k: float(v) for k, v in version.snapshot.label_distribution.items()}
    return Baseline(BaselineSource.SNAPSHOT, str(version), counts)


# --- Drift ----------------------------------------------------------------------------------
def observed_label_counts(*, need: Need, period: str, start: date) -> dict[str, float]:
    rows = (
        LabelAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=period, period_start=start)
        .values("label")
        .annotate(total=Sum("count"))
    )
    return {row["label"]: float(row["total"]) for row in rows}


def drift_report_compute(*, need: Need, period: str, start: date) -> DriftReport | None:
    """Compare the period's label counts with the baseline and store the report (upsert)."""
    observed = observed_label_counts(need=need, period=period, start=start)
    baseline = baseline_for(need=need, period=period, start=start)
    if not observed or baseline is None:
        DriftReport.objects.owned_by(need.tenant_id).filter(
            need=need, period=period, period_start=start
        ).delete()
        return None
    config = config_for(need)
    result = drift.compare(
        baseline_counts=baseline.counts,
        observed_counts=observed,
        params=drift.DriftParams(
            rare_min_expected=config.rare_min_expected,
            rare_alpha=config.rare_alpha,
            dominance_share=config.dominance_share,
            dominance_ratio=config.dominance_ratio,
        ),
    )
    volume = (
        PredictionAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=period, period_start=start)
        .aggregate(total=Sum("volume"))["total"]
        or 0
    )
    report, _created = DriftReport.objects.owned_by(need.tenant_id).update_or_create(
        need=need,
        period=period,
        period_start=start,
        defaults={
            "tenant_id": need.tenant_id,
            "volume": volume,
            "baseline_source": baseline.source,
            "baseline_ref": baseline.ref[:200],
            "baseline": result.baseline,
            "observed": result.observed,
            "psi": result.psi,
            "js_distance": result.js_distance,
            "chi2_statistic": result.chi2_statistic,
            "chi2_p_value": result.chi2_p_value,
            "top_movers": result.top_movers,
            "rare_underpredicted": result.rare_underpredicted,
            "dominant": result.dominant,
            "computed_at": timezone.now(),
        },
    )
    return report


# --- Alerts: daily rule checks grouped into incidents ------------------------------------------
#: Rules whose firing is part of a label's distribution story; drift is "explained" by them.
_DISTRIBUTION_RULES = (AlertKind.LABEL_SHARE, AlertKind.RARE_CLASS)


def _baseline_counts(need: Need, day: date) -> dict[str, float] | None:
    baseline = baseline_for(need=need, period=Period.DAY, start=day)
    return baseline.counts if baseline else None


def _save_checks(*, need: Need, day: date, checks: list[rules.Check]) -> None:
    RuleCheck.objects.owned_by(need.tenant_id).filter(need=need, day=day).delete()
    RuleCheck.objects.bulk_create(
        [
            RuleCheck(
                tenant_id=need.tenant_id,
                need=need,
                day=day,
                rule=c.rule,
                label=c.label,
                status=c.status,
                value=c.value,
                reference=c.reference,
                observed=c.observed,
                expected=c.expected,
                sample=c.sample,
                p_value=c.p_value,
                adjusted_p=c.adjusted_p,
                detail=c.detail,
            )
            for c in checks
        ]
    )


def _history(*, need: Need, rule: str, label: str, day: date, days: int = 14) -> list[dict]:
    rows = (
        RuleCheck.objects.owned_by(need.tenant_id)
        .filter(need=need, rule=rule, label=label, day__range=(day - timedelta(days=days - 1), day))
        .order_by("day")
        .values("day", "status", "value", "reference", "observed", "expected")
    )
    return [{**row, "day": row["day"].isoformat()} for row in rows]


def _evidence(check: rules.Check, *, need: Need, day: date, config) -> dict:
    return {
        "rule": check.rule,
        "label": check.label,
        "day": day.isoformat(),
        "value": check.value,
        "reference": check.reference,
        "observed": check.observed,
        "expected": check.expected,
        "sample": check.sample,
        "p_value": check.p_value,
        "adjusted_p": check.adjusted_p,
        "evidence_days": config.evidence_days if check.rule not in _DAY_RULES else 1,
        **check.detail,
        "days": _history(need=need, rule=check.rule, label=check.label, day=day),
    }


#: Need-wide rules that look at one day, not the pooled evidence window.
_DAY_RULES = (AlertKind.DRIFT, AlertKind.VOLUME_COLLAPSE)


def _worse(rule: str, new: float | None, old: float | None, reference: float | None) -> bool:
    if new is None:
        return False
    if old is None:
        return True
    if rule in (AlertKind.DRIFT, AlertKind.NEGATIVE_RISE):
        return new > old
    if rule == AlertKind.LABEL_SHARE and reference is not None and new > reference:
        return new > old
    return new < old


def _run_lengths(*, need: Need, rule: str, label: str, since: date, day: date) -> tuple[int, int]:
    """(days flagged since `since`, flagged days in a row ending at `day`), from the checks."""
    flagged = set(
        RuleCheck.objects.owned_by(need.tenant_id)
        .filter(
            need=need, rule=rule, label=label, day__range=(since, day), status=CheckStatus.FLAGGED
        )
        .values_list("day", flat=True)
    )
    run, cursor = 0, day
    while cursor in flagged:
        run += 1
        cursor -= timedelta(days=1)
    return len(flagged), run


def _clean_days_since(*, need: Need, rule: str, label: str, last_seen: date, day: date) -> int:
    return (
        RuleCheck.objects.owned_by(need.tenant_id)
        .filter(
            need=need,
            rule=rule,
            label=label,
            day__gt=last_seen,
            day__lte=day,
            status=CheckStatus.OK,
        )
        .count()
    )


def _notify(alert: Alert, event: str, day: date) -> bool:
    """Mark a notification as due unless the alert is snoozed (or acknowledged, for escalation)."""
    if alert.is_snoozed(day) or (event == "escalated" and alert.is_acknowledged):
        return False
    # A queue, not a slot: an "opened" not yet delivered must not be replaced by "escalated".
    alert.notification_pending = " ".join([*alert.notification_pending.split(), event])[:40]
    return True


def incidents_update(*, need: Need, day: date, checks: list[rules.Check]) -> list[Alert]:
    """Open, extend, escalate or resolve the need's alerts with the day's checks.

    Idempotent for a day: counts are derived from the stored checks, not incremented. Returns the
    alerts whose notification became due.
    """
    config = config_for(need)
    names = label_names(need)
    now = timezone.now()
    open_alerts = {
        (a.kind, a.label): a
        for a in Alert.objects.owned_by(need.tenant_id).filter(need=need, status=AlertStatus.OPEN)
    }
    distribution_flagged = any(
        c.status == CheckStatus.FLAGGED and c.rule in _DISTRIBUTION_RULES for c in checks
    ) or any(kind in _DISTRIBUTION_RULES for kind, _label in open_alerts)
    due: list[Alert] = []
    for check in checks:
        alert = open_alerts.get((check.rule, check.label))
        if check.status == CheckStatus.FLAGGED:
            if alert is None and check.rule == AlertKind.DRIFT and distribution_flagged:
                # A label-level alert already tells this story; the drift figures go with it.
                check.detail["explained_by_label_alert"] = True
                continue
            evidence = _evidence(check, need=need, day=day, config=config)
            if alert is None:
                alert = Alert(
                    tenant_id=need.tenant_id,
                    need=need,
                    kind=check.rule,
                    label=check.label,
                    status=AlertStatus.OPEN,
                    severity=Severity.WARNING,
                    first_seen=day,
                    last_seen=day,
                    worst_value=check.value,
                    worst_day=day,
                    created_at=now,
                )
                alert.need = need
                event = "opened"
            else:
                event = ""
                if _worse(check.rule, check.value, alert.worst_value, check.reference):
                    alert.worst_value, alert.worst_day = check.value, day
            alert.last_seen = max(alert.last_seen, day)
            alert.days_active, alert.consecutive_days = _run_lengths(
                need=need, rule=check.rule, label=check.label, since=alert.first_seen, day=day
            )
            alert.clean_days = 0
            alert.evidence = evidence
            if (
                alert.severity == Severity.WARNING
                and alert.consecutive_days >= config.escalate_after_days
            ):
                alert.severity = Severity.CRITICAL
                alert.escalated_at = now
                event = event or "escalated"
            alert.message = plain_sentence(alert, names)[:500]
            alert.updated_at = now
            notify = bool(event) and _notify(alert, event, day)
            try:
                with transaction.atomic():
                    alert.save()
            except IntegrityError:
                continue  # opened concurrently by another run of the same day: that one notifies
            open_alerts[(check.rule, check.label)] = alert
            if notify:
                due.append(alert)
        elif alert is not None and check.status == CheckStatus.OK and day > alert.last_seen:
            alert.clean_days = _clean_days_since(
                need=need, rule=check.rule, label=check.label, last_seen=alert.last_seen, day=day
            )
            alert.consecutive_days = 0
            fields = ["clean_days", "consecutive_days", "updated_at"]
            if alert.clean_days >= config.resolve_after_clean_days:
                alert.status = AlertStatus.RESOLVED
                alert.resolved_at = now
                fields += ["status", "resolved_at"]
            alert.updated_at = now
            alert.save(update_fields=fields)
    for alert in due:
        transaction.on_commit(lambda pk=alert.pk: _enqueue_delivery(pk))
    return due


def _enqueue_delivery(alert_id: int) -> None:
    task_send("workers.tasks.monitoring.deliver_alert", alert_id)


def alerts_evaluate(*, need: Need, day: date) -> list[Alert]:
    """Run every rule for a complete day, store the checks, update the incidents."""
    config = config_for(need)
    checks = rules.evaluate_day(
        need=need, day=day, config=config, baseline=_baseline_counts(need, day)
    )
    _save_checks(need=need, day=day, checks=checks)
    return incidents_update(need=need, day=day, checks=checks)


def alert_acknowledge(*, alert: Alert, user, note: str = "") -> Alert:
    """Someone is on it: no escalation notice goes out; the alert still updates and resolves."""
    alert.acknowledged_at = alert.acknowledged_at or timezone.now()
    alert.acknowledged_by = alert.acknowledged_by or user
    if note:
        alert.ack_note = note[:500]
    alert.save(update_fields=["acknowledged_at", "acknowledged_by", "ack_note"])
    return alert


def alert_snooze(*, alert: Alert, until: date, note: str = "", user=None) -> Alert:
    """No notifications until `until` (inclusive); the alert keeps collecting evidence."""
    if until < timezone.now().date():
        raise ValidationError({"until": [_("Snooze until today or a later day.")]})
    alert.snoozed_until = until
    alert.snooze_note = note[:500]
    alert.save(update_fields=["snoozed_until", "snooze_note"])
    return alert


def alert_summary(alert: Alert, *, language: str) -> str:
    """The alert in one sentence, in `language` (label names too)."""
    with translation.override(language):
        return plain_sentence(alert, label_names(alert.need))


def alert_payload(alert: Alert, *, event: str = "") -> dict:
    """The webhook body. Only `summary` is human text, in the tenant's language; every other
    field is the same whatever the language (machine fields: keys, codes, ISO dates)."""
    names = label_names(alert.need)
    return {
        "id": alert.pk,
        "event": event or alert.notification_pending or "update",
        "tenant": alert.tenant.slug,
        "need": alert.need.slug,
        "kind": alert.kind,
        "label": alert.label,
        "label_name": name_of(alert.label, names) if alert.label else "",
        "severity": alert.severity,
        "status": alert.status,
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
        "days_active": alert.days_active,
        "summary": alert_summary(alert, language=alert.tenant.language),
        "evidence": alert.evidence,
    }


def alert_deliver(*, alert: Alert) -> dict:
    """Send the due notifications ("opened", "escalated", in order) to the webhook and/or e-mail.

    Nothing due, nothing sent (a second delivery task for the same alert is a no-op). Failures
    are recorded, never raised.
    """
    events = alert.notification_pending.split()
    if not events:
        return {"skipped": "nothing due"}
    config = config_for(alert.need)
    tenant: Tenant = alert.tenant
    webhook = config.alert_webhook_url or tenant.alert_webhook_url
    email = config.alert_email or tenant.alert_email
    outcome: dict[str, str] = {}
    errors: list[str] = []
    sent = 0
    for event in events:
        payload = alert_payload(alert, event=event)
        delivered = False
        if webhook:
            try:
                request = urllib.request.Request(
                    webhook,
                    data=json.dumps(payload).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "User-Agent": "tagging-platform",
                    },
                    method="POST",
                )
                with urllib.request.urlopen(  # noqa: S310 - a validated http(s) URLField
                    request, timeout=settings.MONITORING_WEBHOOK_TIMEOUT
                ) as response:
                    outcome["webhook"] = f"HTTP {response.status}"
                    delivered = True
            except Exception as exc:  # any failure is recorded; the task must not fail
                errors.append(f"webhook: {exc}")
                logger.warning("alert %s webhook delivery failed: %s", alert.pk, exc)
        if email:
            try:
                # Workers have no request: the recipient's portal language, else the tenant's.
                language = recipient_language(tenant=tenant, email=email)
                with translation.override(language):
                    _alert_email_send(alert, event=event, email=email)
                outcome["email"] = "sent"
                delivered = True
            except Exception as exc:
                errors.append(f"email: {exc}")
                logger.warning("alert %s email delivery failed: %s", alert.pk, exc)
        sent += delivered
    if sent:
        alert.delivered_at = timezone.now()
        alert.notifications_sent += sent
    alert.notification_pending = ""
    alert.delivery_error = "; ".join(errors)[:500]
    alert.save(
        update_fields=[
            "delivered_at",
            "notifications_sent",
            "notification_pending",
            "delivery_error",
        ]
    )
    return {"events": events, **outcome, **({"errors": errors} if errors else {})}


def _alert_email_send(alert: Alert, *, event: str, email: str) -> None:
    """One alert e-mail, in the active language (alert_deliver overrides it per recipient)."""
    verb = {"escalated": _("escalated to critical"), "opened": _("opened")}.get(
        event, _("reminder")
    )
    send_mail(
        subject=_("[%(severity)s] %(need)s: %(kind)s (%(event)s)")
        % {
            "severity": alert.get_severity_display(),
            "need": alert.need.name,
            "kind": alert.get_kind_display(),
            "event": verb,
        },
        message=_(
            "%(summary)s\n\nFirst seen %(first)s, last seen %(last)s, %(days)s day(s) active.\n"
        )
        % {
            "summary": plain_sentence(alert, label_names(alert.need)),
            "first": alert.first_seen.isoformat(),
            "last": alert.last_seen.isoformat(),
            "days": alert.days_active,
        },
        from_email=None,
        recipient_list=[email],
    )


# --- Feedback -------------------------------------------------------------------------------
def feedback_record(*, tenant: Tenant, events: list[dict]) -> dict[str, int]:
    """Store validated events; an event id already seen for the tenant is counted as duplicate.

    `events` items: {event_id, item_id, label (global key), need (Need), type, at (aware datetime)}.
    """
    rows = []
    seen: set[str] = set()
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        rows.append(
            FeedbackEvent(
                tenant=tenant,
                need=event["need"],
                event_id=event["event_id"],
                item_id=event["item_id"],
                label=event["label"],
                type=event["type"],
                at=event["at"],
                day=tenant_local_date(tenant, event["at"]),
            )
        )
    ids = [row.event_id for row in rows]
    existing = FeedbackEvent.objects.for_tenant(tenant).filter(event_id__in=ids)
    with transaction.atomic():
        before = existing.count()
        FeedbackEvent.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        after = existing.count()
    accepted = after - before
    return {"received": len(events), "accepted": accepted, "duplicates": len(events) - accepted}


# --- Pipelines (what the beat tasks run) ----------------------------------------------------
def _needs_active_around_all_tenants(*, period: str, start: date) -> list[Need]:
    """Needs with data in the period or its reference window (so a collapse to 0 is seen)."""
    # A day looks back over the reference window of the rules (up to 16 days by default), so a
    # need whose traffic stopped still gets its volume rule evaluated.
    ref_from = start - timedelta(days=21) if period == Period.DAY else start - timedelta(days=7)
    need_ids = set(
        PredictionAggregate.objects.dangerously_unscoped()
        .filter(period=period, period_start__range=(ref_from, start))
        .values_list("need_id", flat=True)
    ) | set(
        FeedbackAggregate.objects.dangerously_unscoped()
        .filter(period=period, period_start__range=(ref_from, start))
        .values_list("need_id", flat=True)
    )
    if period == Period.DAY:
        need_ids |= set(
            PredictionLog.objects.dangerously_unscoped()
            .filter(day=start)
            .values_list("need_id", flat=True)
        )
    return list(
        Need.objects.dangerously_unscoped()
        .filter(pk__in=need_ids)
        .select_related("tenant", "model")
    )


def monitoring_run(*, period: str, start: date, need_ids: list[int] | None = None) -> dict:
    """The monitoring pipeline of one day or one week (`start`: any day in it): aggregate, then
    drift for every need with data around it, then (complete days only) the alert rules."""
    if period == Period.DAY:
        counts = aggregation.aggregate_predictions_day(day=start, need_ids=need_ids)
        counts["feedback_rows"] = aggregation.aggregate_feedback_day(day=start, need_ids=need_ids)
        # Rules only judge complete days (in the need's tenant's time zone, below): a day in
        # progress always looks like a collapse.
        judge = True
    else:
        start = aggregation.week_start(start)
        counts = aggregation.aggregate_week(start=start, need_ids=need_ids)
        # Weeks feed the dashboards and the API; alerts come from the daily rules only (a weekly
        # copy of the same finding would be a second alert for one problem).
        judge = False
    notified = 0
    for need in _needs_active_around_all_tenants(period=period, start=start):
        if need_ids is not None and need.pk not in need_ids:
            continue
        with transaction.atomic():
            drift_report_compute(need=need, period=period, start=start)
            if judge and start < tenant_today(need.tenant):
                notified += len(alerts_evaluate(need=need, day=start))
    return {**counts, "notifications": notified} if period == Period.DAY else counts


def monitoring_run_local_all_tenants(
    *, period: str, days_ago: int, now: datetime | None = None
) -> dict:
    """The pipeline of each tenant's own day (or the week containing it): `days_ago=1` is every
    tenant's yesterday, 0 its today. Tenants sharing that local date run together."""
    now = now or timezone.now()
    groups: dict[date, list[int]] = {}
    for tenant in Tenant.objects.filter(is_active=True).only("pk", "time_zone"):
        local = tenant_local_date(tenant, now) - timedelta(days=days_ago)
        if period == Period.WEEK:
            local = aggregation.week_start(local)
        groups.setdefault(local, []).append(tenant.pk)
    results = {}
    for local, tenant_ids in sorted(groups.items()):
        need_ids = list(
            Need.objects.dangerously_unscoped()
            .filter(tenant_id__in=tenant_ids)
            .values_list("pk", flat=True)
        )
        results[local.isoformat()] = monitoring_run(period=period, start=local, need_ids=need_ids)
    return results


def tenant_days_resync(*, tenant: Tenant) -> dict:
    """Re-cut a tenant's stored days after its time zone changed, and recompute every affected
    day and week. Idempotent: a tenant whose days are already cut in its zone is left alone,
    and each period's aggregates are replaced, never added to."""
    cut_in = tenant.days_time_zone or "UTC"
    if cut_in == tenant.time_zone:
        return {"resynced": False}
    tz = zone(tenant.time_zone)
    touched: set[date] = set()
    for model, moment in ((PredictionLog, "created_at"), (FeedbackEvent, "at")):
        rows = model.objects.for_tenant(tenant)
        touched |= set(rows.values_list("day", flat=True).distinct())
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {model._meta.db_table} SET day = ({moment} AT TIME ZONE %s)::date "
                    f"WHERE tenant_id = %s AND day <> ({moment} AT TIME ZONE %s)::date",
                    [tenant.time_zone, tenant.pk, tenant.time_zone],
                )
        else:
            changed = []
            for pk, at, day in rows.values_list("pk", moment, "day").iterator(chunk_size=5000):
                local = at.astimezone(tz).date()
                if local != day:
                    changed.append(model(pk=pk, day=local))
            rows.bulk_update(changed, ["day"], batch_size=1000)
        touched |= set(rows.values_list("day", flat=True).distinct())
    need_ids = list(Need.objects.for_tenant(tenant).values_list("pk", flat=True))
    days = sorted(touched)
    # Old days whose rows all moved away are emptied too: recompute them before the weeks.
    for day in days:
        monitoring_run(period=Period.DAY, start=day, need_ids=need_ids)
    for week in sorted({aggregation.week_start(day) for day in days}):
        monitoring_run(period=Period.WEEK, start=week, need_ids=need_ids)
    scheduled_batches_time_zone_sync(tenant=tenant)
    Tenant.objects.filter(pk=tenant.pk, time_zone=tenant.time_zone).update(
        days_time_zone=tenant.time_zone
    )
    return {"resynced": True, "days": len(days)}


def tenants_days_resync() -> dict:
    """Resync every tenant whose time zone changed since its days were cut (hourly, by beat)."""
    done = {}
    for tenant in Tenant.objects.exclude(days_time_zone=F("time_zone")):
        if (tenant.days_time_zone or "UTC") != tenant.time_zone:
            done[tenant.slug] = tenant_days_resync(tenant=tenant)
        else:
            Tenant.objects.filter(pk=tenant.pk).update(days_time_zone=tenant.time_zone)
    return done
