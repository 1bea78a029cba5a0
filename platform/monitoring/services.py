"""Writes of the monitoring area: drift reports, alerts, feedback, the daily/weekly pipelines."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from scipy import stats

from monitoring import aggregation, drift
from monitoring.models import (
    Alert,
    AlertKind,
    BaselineSource,
    DriftReport,
    FeedbackAggregate,
    FeedbackEvent,
    LabelAggregate,
    NeedMonitoringConfig,
    Period,
    PredictionAggregate,
    Severity,
)
from registry.models import ModelAlias
from serving.models import PredictionLog
from tenants.models import Need, Tenant

logger = logging.getLogger(__name__)


def config_for(need: Need) -> NeedMonitoringConfig:
    """The need's monitoring settings, or an unsaved row holding the defaults."""
    try:
        return need.monitoring_config
    except NeedMonitoringConfig.DoesNotExist:
        return NeedMonitoringConfig(need=need, tenant_id=need.tenant_id)


def period_end(period: str, start: date) -> date:
    return start if period == Period.DAY else start + timedelta(days=6)


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
            LabelAggregate.objects.unscoped()
            .filter(need=need, period=Period.DAY, period_start__range=(config.reference_start, end))
            .values("label")
            .annotate(total=Sum("count"))
        )
        counts = {row["label"]: float(row["total"]) for row in rows}
        if counts:
            return Baseline(BaselineSource.WINDOW, f"{config.reference_start}..{end}", counts)
        return None
    version = None
    if need.model_id:
        alias = (
            ModelAlias.objects.filter(registered_model_id=need.model_id, name=need.model_alias)
            .select_related("version__snapshot", "version__registered_model")
            .first()
        )
        version = alias.version if alias else None
    if version is None:
        # No production alias: fall back to the version that served most of the period.
        top = (
            PredictionAggregate.objects.unscoped()
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
        LabelAggregate.objects.unscoped()
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
        DriftReport.objects.unscoped().filter(need=need, period=period, period_start=start).delete()
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
        PredictionAggregate.objects.unscoped()
        .filter(need=need, period=period, period_start=start)
        .aggregate(total=Sum("volume"))["total"]
        or 0
    )
    report, _ = DriftReport.objects.unscoped().update_or_create(
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


# --- Alerts ---------------------------------------------------------------------------------
@dataclass
class Finding:
    kind: str
    severity: str
    message: str
    evidence: dict


def _drift_findings(report: DriftReport, config: NeedMonitoringConfig) -> list[Finding]:
    findings: list[Finding] = []
    if report.volume < config.min_volume or report.psi is None:
        return findings
    psi_hit = report.psi >= config.psi_threshold
    js_hit = (report.js_distance or 0.0) >= config.js_threshold
    if psi_hit or js_hit:
        critical = report.psi >= 2 * config.psi_threshold or (report.js_distance or 0.0) >= (
            2 * config.js_threshold
        )
        movers = ", ".join(
            f"{m['label']} {m['baseline_share']:.0%}→{m['observed_share']:.0%}"
            for m in report.top_movers[:3]
        )
        findings.append(
            Finding(
                AlertKind.DRIFT,
                Severity.CRITICAL if critical else Severity.WARNING,
                f"Label distribution drifted: PSI {report.psi:.3f}, JS {report.js_distance:.3f} "
                f"({movers}).",
                {
                    "psi": report.psi,
                    "js_distance": report.js_distance,
                    "chi2_statistic": report.chi2_statistic,
                    "chi2_p_value": report.chi2_p_value,
                    "chi2_significant": report.chi2_p_value is not None
                    and report.chi2_p_value < config.chi2_alpha,
                    "psi_threshold": config.psi_threshold,
                    "js_threshold": config.js_threshold,
                    "volume": report.volume,
                    "baseline": report.baseline_ref,
                    "top_movers": report.top_movers,
                },
            )
        )
    if report.rare_underpredicted:
        missing = [r["label"] for r in report.rare_underpredicted if r["missing"]]
        fewer = [r["label"] for r in report.rare_underpredicted if not r["missing"]]
        parts = []
        if missing:
            parts.append("not predicted at all: " + ", ".join(missing))
        if fewer:
            parts.append("predicted far less than expected: " + ", ".join(fewer))
        findings.append(
            Finding(
                AlertKind.RARE_CLASS,
                Severity.CRITICAL if missing else Severity.WARNING,
                "Expected labels " + "; ".join(parts) + ".",
                {
                    "labels": report.rare_underpredicted,
                    "rare_min_expected": config.rare_min_expected,
                    "rare_alpha": config.rare_alpha,
                    "volume": report.volume,
                },
            )
        )
    if report.dominant:
        findings.append(
            Finding(
                AlertKind.DOMINANCE,
                Severity.WARNING,
                "Labels suddenly dominate: "
                + ", ".join(f"{d['label']} ({d['observed_share']:.0%})" for d in report.dominant)
                + ".",
                {"labels": report.dominant, "volume": report.volume},
            )
        )
    return findings


def _reference_starts(period: str, start: date) -> tuple[date, date]:
    """The comparison window: the 7 previous days for a day, the previous week for a week."""
    if period == Period.DAY:
        return start - timedelta(days=7), start - timedelta(days=1)
    previous = start - timedelta(days=7)
    return previous, previous


def _volume_findings(
    *, need: Need, period: str, start: date, config: NeedMonitoringConfig
) -> list[Finding]:
    ref_from, ref_to = _reference_starts(period, start)
    per_period = list(
        PredictionAggregate.objects.unscoped()
        .filter(need=need, period=period, period_start__range=(ref_from, ref_to))
        .values("period_start")
        .annotate(total=Sum("volume"))
        .values_list("total", flat=True)
    )
    if not per_period:
        return []
    reference = sum(per_period) / len(per_period)
    current = (
        PredictionAggregate.objects.unscoped()
        .filter(need=need, period=period, period_start=start)
        .aggregate(total=Sum("volume"))["total"]
        or 0
    )
    if reference < config.min_volume:
        return []
    drop_pct = (reference - current) / reference * 100
    if drop_pct < config.volume_collapse_pct:
        return []
    return [
        Finding(
            AlertKind.VOLUME_COLLAPSE,
            Severity.CRITICAL if current == 0 else Severity.WARNING,
            f"Prediction volume fell {drop_pct:.0f}%: {current} vs {reference:.0f} on average.",
            {
                "volume": current,
                "reference_volume": reference,
                "reference_periods": len(per_period),
                "drop_pct": drop_pct,
                "threshold_pct": config.volume_collapse_pct,
            },
        )
    ]


def _feedback_rates(rows) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in rows:
        out[row["label"]] = {
            "impressions": row["impressions"] or 0,
            "clicks": row["clicks"] or 0,
            "negative": (row["not_interested"] or 0) + (row["wrong_tag"] or 0),
        }
    return out


def _feedback_findings(
    *, need: Need, period: str, start: date, config: NeedMonitoringConfig
) -> list[Finding]:
    ref_from, ref_to = _reference_starts(period, start)
    base = FeedbackAggregate.objects.unscoped().filter(need=need, period=period)
    fields = ("impressions", "clicks", "not_interested", "wrong_tag")
    current = _feedback_rates(base.filter(period_start=start).values("label", *fields))
    reference = _feedback_rates(
        base.filter(period_start__range=(ref_from, ref_to))
        .values("label")
        .annotate(**{f: Sum(f) for f in fields})
    )
    ctr_rows, negative_rows = [], []
    for label, cur in sorted(current.items()):
        ref = reference.get(label)
        if (
            not ref
            or cur["impressions"] < config.min_impressions
            or ref["impressions"] < config.min_impressions
        ):
            continue
        cur_ctr = cur["clicks"] / cur["impressions"]
        ref_ctr = ref["clicks"] / ref["impressions"]
        if ref_ctr > 0:
            drop = (ref_ctr - cur_ctr) / ref_ctr * 100
            # P(this few clicks | the reference CTR): small samples swing by chance.
            p_value = float(stats.binom.cdf(cur["clicks"], cur["impressions"], ref_ctr))
            if drop >= config.ctr_drop_pct and p_value < config.feedback_alpha:
                ctr_rows.append(
                    {
                        "label": label,
                        "ctr": cur_ctr,
                        "reference_ctr": ref_ctr,
                        "change_pct": -drop,
                        "p_value": p_value,
                        "impressions": cur["impressions"],
                    }
                )
        cur_neg = cur["negative"] / cur["impressions"]
        # A zero reference rate is smoothed to one event, so a first complaint is not "infinite".
        ref_neg = max(ref["negative"], 1) / ref["impressions"]
        rise = (cur_neg - ref_neg) / ref_neg * 100
        # P(at least this many negatives | the reference rate).
        p_value = float(stats.binom.sf(cur["negative"] - 1, cur["impressions"], ref_neg))
        if rise >= config.negative_rise_pct and p_value < config.feedback_alpha:
            negative_rows.append(
                {
                    "label": label,
                    "negative_rate": cur_neg,
                    "reference_rate": ref["negative"] / ref["impressions"],
                    "change_pct": rise,
                    "p_value": p_value,
                    "impressions": cur["impressions"],
                }
            )
    findings = []
    if ctr_rows:
        worst = max(-r["change_pct"] for r in ctr_rows)
        findings.append(
            Finding(
                AlertKind.CTR_DROP,
                Severity.CRITICAL if worst >= 2 * config.ctr_drop_pct else Severity.WARNING,
                "CTR fell for "
                + ", ".join(
                    f"{r['label']} ({r['reference_ctr']:.1%}→{r['ctr']:.1%})" for r in ctr_rows
                )
                + ".",
                {"labels": ctr_rows, "threshold_pct": config.ctr_drop_pct},
            )
        )
    if negative_rows:
        worst = max(r["change_pct"] for r in negative_rows)
        findings.append(
            Finding(
                AlertKind.NEGATIVE_RISE,
                Severity.CRITICAL if worst >= 2 * config.negative_rise_pct else Severity.WARNING,
                "Negative feedback rose for "
                + ", ".join(
                    f"{r['label']} ({r['reference_rate']:.1%}→{r['negative_rate']:.1%})"
                    for r in negative_rows
                )
                + ".",
                {"labels": negative_rows, "threshold_pct": config.negative_rise_pct},
            )
        )
    return findings


def alerts_evaluate(*, need: Need, period: str, start: date, complete: bool = True) -> list[Alert]:
    """Raise (or refresh) the period's alerts. Returns the alerts created by this call.

    Volume and feedback rules only run on complete periods: a day still in progress always looks
    like a collapse.
    """
    config = config_for(need)
    findings: list[Finding] = []
    report = (
        DriftReport.objects.unscoped().filter(need=need, period=period, period_start=start).first()
    )
    if report is not None:
        findings += _drift_findings(report, config)
    if complete:
        findings += _volume_findings(need=need, period=period, start=start, config=config)
        findings += _feedback_findings(need=need, period=period, start=start, config=config)
    created: list[Alert] = []
    now = timezone.now()
    for finding in findings:
        alert = (
            Alert.objects.unscoped()
            .filter(need=need, kind=finding.kind, period=period, period_start=start)
            .first()
        )
        if alert is None:
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        tenant_id=need.tenant_id,
                        need=need,
                        kind=finding.kind,
                        severity=finding.severity,
                        period=period,
                        period_start=start,
                        message=finding.message[:500],
                        evidence=finding.evidence,
                    )
            except IntegrityError:
                continue  # raised concurrently by another run: that one delivers it
            created.append(alert)
        elif alert.is_open:
            alert.severity = finding.severity
            alert.message = finding.message[:500]
            alert.evidence = finding.evidence
            alert.updated_at = now
            alert.save(update_fields=["severity", "message", "evidence", "updated_at"])
    if created:
        from workers.tasks.monitoring import deliver_alert

        for alert in created:
            transaction.on_commit(lambda pk=alert.pk: deliver_alert.delay(pk))
    return created


def alert_acknowledge(*, alert: Alert, user) -> Alert:
    if alert.acknowledged_at is None:
        alert.acknowledged_at = timezone.now()
        alert.acknowledged_by = user
        alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return alert


def alert_payload(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "tenant": alert.tenant.slug,
        "need": alert.need.slug,
        "kind": alert.kind,
        "severity": alert.severity,
        "period": alert.period,
        "period_start": alert.period_start.isoformat(),
        "message": alert.message,
        "evidence": alert.evidence,
        "created_at": alert.created_at.isoformat(),
    }


def alert_deliver(*, alert: Alert) -> dict:
    """Send the alert to the webhook and/or email. Failures are recorded, never raised."""
    config = config_for(alert.need)
    tenant: Tenant = alert.tenant
    webhook = config.alert_webhook_url or tenant.alert_webhook_url
    email = config.alert_email or tenant.alert_email
    payload = alert_payload(alert)
    outcome: dict[str, str] = {}
    errors: list[str] = []
    if webhook:
        try:
            request = urllib.request.Request(
                webhook,
                data=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json", "User-Agent": "tagging-platform"},
                method="POST",
            )
            with urllib.request.urlopen(  # noqa: S310 - the URL is a validated http(s) URLField
                request, timeout=settings.MONITORING_WEBHOOK_TIMEOUT
            ) as response:
                outcome["webhook"] = f"HTTP {response.status}"
        except Exception as exc:  # any failure is recorded; the task must not fail
            errors.append(f"webhook: {exc}")
            logger.warning("alert %s webhook delivery failed: %s", alert.pk, exc)
    if email:
        try:
            send_mail(
                subject=f"[{alert.severity}] {alert.need} {alert.get_kind_display()}",
                message=alert.message + "\n\n" + json.dumps(payload, indent=2, default=str),
                from_email=None,
                recipient_list=[email],
            )
            outcome["email"] = "sent"
        except Exception as exc:
            errors.append(f"email: {exc}")
            logger.warning("alert %s email delivery failed: %s", alert.pk, exc)
    alert.delivered_at = timezone.now() if outcome else alert.delivered_at
    alert.delivery_error = "; ".join(errors)[:500]
    alert.save(update_fields=["delivered_at", "delivery_error"])
    return {**outcome, **({"errors": errors} if errors else {})}


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
                day=event["at"].astimezone(UTC).date(),
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
def _needs_active_around(*, period: str, start: date) -> list[Need]:
    """Needs with data in the period or its reference window (so a collapse to 0 is seen)."""
    ref_from, _ = _reference_starts(period, start)
    need_ids = set(
        PredictionAggregate.objects.unscoped()
        .filter(period=period, period_start__range=(ref_from, start))
        .values_list("need_id", flat=True)
    ) | set(
        FeedbackAggregate.objects.unscoped()
        .filter(period=period, period_start__range=(ref_from, start))
        .values_list("need_id", flat=True)
    )
    if period == Period.DAY:
        need_ids |= set(
            PredictionLog.objects.unscoped().filter(day=start).values_list("need_id", flat=True)
        )
    return list(Need.objects.unscoped().filter(pk__in=need_ids).select_related("tenant", "model"))


def monitoring_day_run(*, day: date, need_ids: list[int] | None = None) -> dict:
    """Aggregate one day, then drift and alerts for every need with data around it."""
    counts = aggregation.aggregate_predictions_day(day=day, need_ids=need_ids)
    counts["feedback_rows"] = aggregation.aggregate_feedback_day(day=day, need_ids=need_ids)
    complete = day < timezone.now().date()
    alerts = 0
    for need in _needs_active_around(period=Period.DAY, start=day):
        if need_ids is not None and need.pk not in need_ids:
            continue
        with transaction.atomic():
            drift_report_compute(need=need, period=Period.DAY, start=day)
            alerts += len(
                alerts_evaluate(need=need, period=Period.DAY, start=day, complete=complete)
            )
    return {**counts, "alerts_created": alerts}


def monitoring_week_run(*, start: date, need_ids: list[int] | None = None) -> dict:
    """Weekly aggregates from the daily rows, then weekly drift and alerts."""
    start = aggregation.week_start(start)
    counts = aggregation.aggregate_week(start=start, need_ids=need_ids)
    complete = start + timedelta(days=7) <= timezone.now().date()
    alerts = 0
    for need in _needs_active_around(period=Period.WEEK, start=start):
        if need_ids is not None and need.pk not in need_ids:
            continue
        with transaction.atomic():
            drift_report_compute(need=need, period=Period.WEEK, start=start)
            alerts += len(
                alerts_evaluate(need=need, period=Period.WEEK, start=start, complete=complete)
            )
    return {**counts, "alerts_created": alerts}
