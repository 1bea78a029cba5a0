"""Reads for the monitoring dashboards. Everything comes from the (small) aggregate tables."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from django.db.models import Count, Max, Min, Q, Sum
from django.utils.translation import gettext as _

from core.localtime import tenant_today
from monitoring.models import (
    Alert,
    AlertStatus,
    BaselineSource,
    DriftReport,
    FeedbackAggregate,
    LabelAggregate,
    Period,
    PredictionAggregate,
)
from monitoring.services import baseline_for, config_for
from tenants.models import Need, Tenant


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def open_alerts(*, tenant: Tenant, need: Need | None = None, limit: int = 50):
    return _open_alerts(Alert.objects.for_tenant(tenant), need=need, limit=limit)


def open_alerts_all_tenants(*, limit: int = 50):
    """For platform staff (the admin dashboard): every tenant's open alerts."""
    return _open_alerts(Alert.objects.dangerously_unscoped(), need=None, limit=limit)


def _open_alerts(qs, *, need: Need | None, limit: int):
    if need is not None:
        qs = qs.filter(need=need)
    return list(
        qs.filter(status=AlertStatus.OPEN)
        .select_related("need", "tenant", "acknowledged_by")
        .order_by("-last_seen", "-id")[:limit]
    )


def recent_alerts(*, need: Need, limit: int = 30):
    return list(
        Alert.objects.for_tenant(need.tenant)
        .filter(need=need)
        .select_related("need", "tenant", "acknowledged_by")
        .order_by("status", "-last_seen", "-id")[:limit]
    )


def needs_overview(*, tenant: Tenant) -> list[dict]:
    """One row per need with monitoring data: latest day's volume and drift, open alerts."""
    return _needs_overview(
        Need.objects.for_tenant(tenant), lambda model: model.objects.owned_by(tenant)
    )


def needs_overview_all_tenants() -> list[dict]:
    """For platform staff (the admin dashboard): `needs_overview` over every tenant."""
    return _needs_overview(
        Need.objects.dangerously_unscoped(), lambda model: model.objects.dangerously_unscoped()
    )


def _needs_overview(needs, scope) -> list[dict]:
    needs = list(needs.select_related("tenant", "label_set").order_by("tenant__slug", "slug"))
    ids = [n.pk for n in needs]
    latest = dict(
        scope(PredictionAggregate)
        .filter(need_id__in=ids, period=Period.DAY)
        .values("need_id")
        .annotate(last=Max("period_start"))
        .values_list("need_id", "last")
    )
    volumes = {
        (row["need_id"], row["period_start"]): row
        for row in scope(PredictionAggregate)
        .filter(
            need_id__in=ids,
            period=Period.DAY,
            period_start__in=set(latest.values()) or [date.min],
        )
        .values("need_id", "period_start")
        .annotate(volume=Sum("volume"), conf=Sum("confidence_sum"))
    }
    reports = {
        (r.need_id, r.period_start): r
        for r in scope(DriftReport).filter(
            need_id__in=ids, period=Period.DAY, period_start__in=set(latest.values()) or [date.min]
        )
    }
    alerts = dict(
        scope(Alert)
        .filter(need_id__in=ids, status=AlertStatus.OPEN)
        .values("need_id")
        .annotate(n=Count("id"))
        .values_list("need_id", "n")
    )
    critical = dict(
        scope(Alert)
        .filter(need_id__in=ids, status=AlertStatus.OPEN)
        .values("need_id")
        .annotate(n=Count("id", filter=Q(severity="critical")))
        .values_list("need_id", "n")
    )
    rows = []
    for need in needs:
        day = latest.get(need.pk)
        volume = volumes.get((need.pk, day), {})
        report = reports.get((need.pk, day))
        config = config_for(need)
        rows.append(
            {
                "need": need,
                "last_day": day,
                "volume": volume.get("volume"),
                "mean_confidence": _ratio(volume.get("conf") or 0, volume.get("volume") or 0),
                "psi": report.psi if report else None,
                "js": report.js_distance if report else None,
                "psi_over": bool(report and report.psi and report.psi >= config.psi_threshold),
                "open_alerts": alerts.get(need.pk, 0),
                "critical_alerts": critical.get(need.pk, 0),
            }
        )
    return rows


def _label_order(*maps: dict) -> list[str]:
    labels: set[str] = set()
    for mapping in maps:
        labels |= set(mapping)
    return sorted(labels)


#: One colour per label, by the label's place in the need's sorted label keys, so a label keeps its
#: colour on every chart of the page (and between visits).
PALETTE = [
    "#1e88e5",
    "#e53935",
    "#43a047",
    "#fb8c00",
    "#8e24aa",
    "#00897b",
    "#6d4c41",
    "#3949ab",
    "#c0ca33",
    "#d81b60",
    "#546e7a",
    "#fdd835",
]


def label_colors(labels) -> dict[str, str]:
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def need_dashboard(*, need: Need, days: int = 28, names: dict[str, str] | None = None) -> dict:
    """Chart series for one need over the last `days` days that have data (JSON-ready)."""
    names = names or {}
    config = config_for(need)
    last = (
        PredictionAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=Period.DAY)
        .aggregate(last=Max("period_start"))["last"]
    )
    last_feedback = (
        FeedbackAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=Period.DAY)
        .aggregate(last=Max("period_start"))["last"]
    )
    last = max(filter(None, [last, last_feedback]), default=None)
    if last is None:
        return {"has_data": False}
    # Start the axis at the first day with data in the window, so a young need has no empty half.
    window_start = last - timedelta(days=days - 1)
    first = min(
        filter(
            None,
            [
                PredictionAggregate.objects.owned_by(need.tenant_id)
                .filter(need=need, period=Period.DAY, period_start__gte=window_start)
                .aggregate(m=Min("period_start"))["m"],
                FeedbackAggregate.objects.owned_by(need.tenant_id)
                .filter(need=need, period=Period.DAY, period_start__gte=window_start)
                .aggregate(m=Min("period_start"))["m"],
            ],
        ),
        default=last,
    )
    axis = _days_between(first, last)
    index = {d: i for i, d in enumerate(axis)}

    volume = [0] * len(axis)
    conf_sum = [0.0] * len(axis)
    low = [0] * len(axis)
    nolabel = [0] * len(axis)
    for row in (
        PredictionAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=Period.DAY, period_start__range=(first, last))
        .values("period_start")
        .annotate(
            v=Sum("volume"),
            c=Sum("confidence_sum"),
            low=Sum("low_confidence_count"),
            nl=Sum("no_label_count"),
        )
    ):
        i = index[row["period_start"]]
        volume[i], conf_sum[i], low[i], nolabel[i] = row["v"], row["c"], row["low"], row["nl"]

    label_counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(axis))
    day_totals = [0.0] * len(axis)
    for row in (
        LabelAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=Period.DAY, period_start__range=(first, last))
        .values("period_start", "label")
        .annotate(n=Sum("count"))
    ):
        i = index[row["period_start"]]
        label_counts[row["label"]][i] += row["n"]
        day_totals[i] += row["n"]

    baseline = baseline_for(need=need, period=Period.DAY, start=last)
    baseline_shares: dict[str, float] = {}
    if baseline:
        total = sum(baseline.counts.values()) or 1.0
        baseline_shares = {k: v / total for k, v in baseline.counts.items()}
    labels = _label_order(label_counts, baseline_shares)
    shares = {
        label: [_ratio(label_counts[label][i], day_totals[i]) for i in range(len(axis))]
        for label in labels
    }

    psi: list[float | None] = [None] * len(axis)
    js: list[float | None] = [None] * len(axis)
    for report in DriftReport.objects.owned_by(need.tenant_id).filter(
        need=need, period=Period.DAY, period_start__range=(first, last)
    ):
        psi[index[report.period_start]] = report.psi
        js[index[report.period_start]] = report.js_distance

    impressions: dict[str, list[int]] = defaultdict(lambda: [0] * len(axis))
    clicks: dict[str, list[int]] = defaultdict(lambda: [0] * len(axis))
    negative: dict[str, list[int]] = defaultdict(lambda: [0] * len(axis))
    for row in FeedbackAggregate.objects.owned_by(need.tenant_id).filter(
        need=need, period=Period.DAY, period_start__range=(first, last)
    ):
        i = index[row.period_start]
        impressions[row.label][i] += row.impressions
        clicks[row.label][i] += row.clicks
        negative[row.label][i] += row.not_interested + row.wrong_tag
    feedback_labels = sorted(impressions)
    colors = label_colors([*labels, *feedback_labels, *names])

    return {
        "has_data": True,
        "names": {label: names.get(label, label) for label in colors},
        "colors": colors,
        "days": [d.isoformat() for d in axis],
        "labels": labels,
        "shares": shares,
        "baseline": baseline_shares,
        "baseline_ref": (
            f"{BaselineSource(baseline.source).label}: {baseline.ref}" if baseline else _("none")
        ),
        "psi": psi,
        "js": js,
        "psi_threshold": config.psi_threshold,
        "js_threshold": config.js_threshold,
        "volume": volume,
        "mean_confidence": [_ratio(conf_sum[i], volume[i]) for i in range(len(axis))],
        "low_confidence_rate": [_ratio(low[i], volume[i]) for i in range(len(axis))],
        "no_label_rate": [_ratio(nolabel[i], volume[i]) for i in range(len(axis))],
        "feedback_labels": feedback_labels,
        "ctr": {
            label: [_ratio(clicks[label][i], impressions[label][i]) for i in range(len(axis))]
            for label in feedback_labels
        },
        "negative_rate": {
            label: [_ratio(negative[label][i], impressions[label][i]) for i in range(len(axis))]
            for label in feedback_labels
        },
    }


def _change(current: float | None, previous: float | None) -> float | None:
    if current is None or previous is None or previous == 0:
        return None
    return (current - previous) / previous * 100


def week_over_week(*, need: Need) -> dict:
    """Per label: share, CTR and negative rate of the latest computed week against the one before."""
    weeks = sorted(
        set(
            PredictionAggregate.objects.owned_by(need.tenant_id)
            .filter(need=need, period=Period.WEEK)
            .values_list("period_start", flat=True)
        )
        | set(
            FeedbackAggregate.objects.owned_by(need.tenant_id)
            .filter(need=need, period=Period.WEEK)
            .values_list("period_start", flat=True)
        ),
        reverse=True,
    )
    if not weeks:
        return {"rows": []}
    current, previous = weeks[0], weeks[0] - timedelta(days=7)

    def label_shares(start):
        rows = (
            LabelAggregate.objects.owned_by(need.tenant_id)
            .filter(need=need, period=Period.WEEK, period_start=start)
            .values("label")
            .annotate(n=Sum("count"))
        )
        counts = {r["label"]: r["n"] for r in rows}
        total = sum(counts.values())
        return {k: v / total for k, v in counts.items()} if total else {}

    def feedback(start):
        return {
            r.label: r
            for r in FeedbackAggregate.objects.owned_by(need.tenant_id).filter(
                need=need, period=Period.WEEK, period_start=start
            )
        }

    def volume(start):
        return (
            PredictionAggregate.objects.owned_by(need.tenant_id)
            .filter(need=need, period=Period.WEEK, period_start=start)
            .aggregate(v=Sum("volume"))["v"]
        )

    cur_shares, prev_shares = label_shares(current), label_shares(previous)
    cur_fb, prev_fb = feedback(current), feedback(previous)
    rows = []
    for label in _label_order(cur_shares, prev_shares, cur_fb, prev_fb):
        c_fb, p_fb = cur_fb.get(label), prev_fb.get(label)
        c_ctr, p_ctr = (c_fb.ctr if c_fb else None), (p_fb.ctr if p_fb else None)
        c_neg = c_fb.negative_rate if c_fb else None
        p_neg = p_fb.negative_rate if p_fb else None
        rows.append(
            {
                "label": label,
                "share": cur_shares.get(label, 0.0) if cur_shares else None,
                "share_prev": prev_shares.get(label, 0.0) if prev_shares else None,
                "share_change": _change(cur_shares.get(label), prev_shares.get(label)),
                "ctr": c_ctr,
                "ctr_prev": p_ctr,
                "ctr_change": _change(c_ctr, p_ctr),
                "negative": c_neg,
                "negative_prev": p_neg,
                "negative_change": _change(c_neg, p_neg),
            }
        )
    cur_volume, prev_volume = volume(current), volume(previous)
    return {
        "current": current,
        "previous": previous,
        "in_progress": current + timedelta(days=7) > tenant_today(need.tenant),
        "volume": cur_volume,
        "volume_prev": prev_volume,
        "volume_change": _change(cur_volume, prev_volume),
        "rows": rows,
    }


def psi_series_all_tenants(*, days: int = 28) -> dict:
    """For the admin dashboard: daily PSI of every need over the last `days` days."""
    last = (
        DriftReport.objects.dangerously_unscoped()
        .filter(period=Period.DAY)
        .aggregate(m=Max("period_start"))["m"]
    )
    if last is None:
        return {"days": [], "series": {}}
    first = (
        DriftReport.objects.dangerously_unscoped()
        .filter(period=Period.DAY, period_start__gte=last - timedelta(days=days - 1))
        .aggregate(m=Min("period_start"))["m"]
    )
    axis = _days_between(first, last)
    index = {d: i for i, d in enumerate(axis)}
    series: dict[str, list[float | None]] = defaultdict(lambda: [None] * len(axis))
    for report in (
        DriftReport.objects.dangerously_unscoped()
        .filter(period=Period.DAY, period_start__range=(first, last))
        .select_related("need__tenant")
    ):
        series[str(report.need)][index[report.period_start]] = report.psi
    return {"days": [d.isoformat() for d in axis], "series": dict(sorted(series.items()))}


# --- The monitoring REST API ----------------------------------------------------------------
def _window(period: str, last: date | None, count: int) -> tuple[date, date] | None:
    if last is None:
        return None
    step = 1 if period == Period.DAY else 7
    return last - timedelta(days=step * (count - 1)), last


def aggregates_series(*, need: Need, period: str, count: int = 28) -> list[dict]:
    """Volume, confidence and label counts/shares per period (oldest first)."""
    last = (
        PredictionAggregate.objects.for_tenant(need.tenant)
        .filter(need=need, period=period)
        .aggregate(m=Max("period_start"))["m"]
    )
    window = _window(period, last, count)
    if window is None:
        return []
    rows: dict[date, dict] = {}
    for row in (
        PredictionAggregate.objects.for_tenant(need.tenant)
        .filter(need=need, period=period, period_start__range=window)
        .values("period_start")
        .annotate(
            v=Sum("volume"),
            c=Sum("confidence_sum"),
            low=Sum("low_confidence_count"),
            nl=Sum("no_label_count"),
        )
        .order_by("period_start")
    ):
        rows[row["period_start"]] = {
            "period": period,
            "period_start": row["period_start"],
            "volume": row["v"],
            "mean_confidence": _ratio(row["c"], row["v"]),
            "low_confidence_rate": _ratio(row["low"], row["v"]),
            "no_label_rate": _ratio(row["nl"], row["v"]),
            "labels": [],
        }
    for row in (
        LabelAggregate.objects.for_tenant(need.tenant)
        .filter(need=need, period=period, period_start__range=window)
        .values("period_start", "label")
        .annotate(n=Sum("count"))
        .order_by("period_start", "label")
    ):
        target = rows.get(row["period_start"])
        if target is not None:
            target["labels"].append(
                {
                    "label": row["label"],
                    "count": row["n"],
                    "share": _ratio(row["n"], target["volume"]),
                }
            )
    return list(rows.values())


def drift_series(*, need: Need, period: str, count: int = 28) -> list[dict]:
    config = config_for(need)
    reports = list(
        DriftReport.objects.for_tenant(need.tenant)
        .filter(need=need, period=period)
        .order_by("-period_start")[:count]
    )
    out = []
    for report in reversed(reports):
        if report.psi is None or report.volume < config.min_volume:
            state = "insufficient_data"
        elif report.psi >= config.psi_threshold or (report.js_distance or 0) >= (
            config.js_threshold
        ):
            state = "drift"
        else:
            state = "stable"
        out.append(
            {
                "period": period,
                "period_start": report.period_start,
                "volume": report.volume,
                "state": state,
                "psi": report.psi,
                "js_distance": report.js_distance,
                "chi2_p_value": report.chi2_p_value,
                "psi_threshold": config.psi_threshold,
                "js_threshold": config.js_threshold,
                "min_volume": config.min_volume,
                "baseline": f"{report.baseline_source}: {report.baseline_ref}",
                "top_movers": report.top_movers,
            }
        )
    return out


def feedback_series(*, need: Need, period: str, count: int = 28) -> list[dict]:
    last = (
        FeedbackAggregate.objects.for_tenant(need.tenant)
        .filter(need=need, period=period)
        .aggregate(m=Max("period_start"))["m"]
    )
    window = _window(period, last, count)
    if window is None:
        return []
    return [
        {
            "period": period,
            "period_start": row.period_start,
            "label": row.label,
            "impressions": row.impressions,
            "clicks": row.clicks,
            "negative": row.not_interested + row.wrong_tag,
            "ctr": row.ctr,
            "negative_rate": row.negative_rate,
        }
        for row in FeedbackAggregate.objects.for_tenant(need.tenant)
        .filter(need=need, period=period, period_start__range=window)
        .order_by("period_start", "label")
    ]


def alerts_list(
    *, tenant: Tenant, status: str = "open", need: Need | None = None, recent_days: int = 30
):
    """Open alerts, or every alert seen in the last `recent_days` days ("recent")."""
    qs = Alert.objects.for_tenant(tenant).select_related("need", "tenant", "acknowledged_by")
    if need is not None:
        qs = qs.filter(need=need)
    if status == "open":
        qs = qs.filter(status=AlertStatus.OPEN)
    else:
        qs = qs.filter(last_seen__gte=tenant_today(tenant) - timedelta(days=recent_days))
    return qs.order_by("-last_seen", "-id")
