"""Daily and weekly aggregates, computed inside the database.

A day is aggregated with `INSERT ... SELECT ... GROUP BY` over the prediction log's (day) /
(need, day) index: no raw row ever reaches Python, so the cost is one index range scan per day,
whatever the traffic. Weeks are sums of their days' rows (cheap, and exactly consistent with them).

Idempotent: each function deletes the period's rows and inserts them again in one transaction,
so recomputing a period yields the same rows (and concurrent readers never see a half-written day).
"""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection, transaction
from django.utils import timezone

from monitoring.models import (
    FeedbackAggregate,
    FeedbackEvent,
    LabelAggregate,
    NeedMonitoringConfig,
    Period,
    PredictionAggregate,
)
from serving.models import PredictionLog, PredictionLogRetiredDay
from taxonomy.models import LabelSet, LabelSetKind
from tenants.models import Need


def week_start(day: date) -> date:
    """The Monday starting `day`'s ISO week."""
    return day - timedelta(days=day.weekday())


def _tables() -> dict[str, str]:
    return {
        "log": PredictionLog._meta.db_table,
        "need": Need._meta.db_table,
        "labelset": LabelSet._meta.db_table,
        "config": NeedMonitoringConfig._meta.db_table,
        "pagg": PredictionAggregate._meta.db_table,
        "lagg": LabelAggregate._meta.db_table,
        "fev": FeedbackEvent._meta.db_table,
        "fagg": FeedbackAggregate._meta.db_table,
    }


def _need_filter(need_ids: list[int] | None, column: str) -> tuple[str, list]:
    if need_ids is None:
        return "", []
    if not need_ids:
        return " AND 1 = 0", []
    return f" AND {column} IN ({', '.join(['%s'] * len(need_ids))})", list(need_ids)


def _multilabel_needs_sql(t: dict[str, str]) -> str:
    return (
        f"SELECT n.id FROM {t['need']} n JOIN {t['labelset']} ls ON ls.id = n.label_set_id "
        f"WHERE ls.kind = '{LabelSetKind.MULTILABEL.value}'"
    )


def _label_elements_sql(t: dict[str, str]) -> tuple[str, str]:
    """FROM-clause fragment expanding the JSON `labels` array, and the per-label score expression."""
    if connection.vendor == "postgresql":
        return (
            f"{t['log']} p CROSS JOIN LATERAL jsonb_array_elements_text(p.labels) AS e(value)",
            "COALESCE((p.scores ->> e.value)::double precision, 0)",
        )
    # SQLite: json_each over the text column; quote the key so dotted label keys are one path step.
    return (
        f"{t['log']} p, json_each(p.labels) AS e",
        "COALESCE(json_extract(p.scores, '$.\"' || e.value || '\"'), 0)",
    )


def aggregate_predictions_day(*, day: date, need_ids: list[int] | None = None) -> dict[str, int]:
    """(Re)compute the day's PredictionAggregate and LabelAggregate rows for all (or some) needs.

    A day that retention dropped is never recomputed: its raw rows are gone and its stored
    aggregates are all that is left of it. The `WHERE p.day = <literal>` lets PostgreSQL prune
    the partitioned log to that one day's partition at plan time."""
    if PredictionLogRetiredDay.objects.filter(day=day).exists():
        return {"prediction_rows": 0, "label_rows": 0}
    t = _tables()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    need_sql, need_params = _need_filter(need_ids, "p.need_id")
    day_value = connection.ops.adapt_datefield_value(day)
    multilabel = _multilabel_needs_sql(t)
    elements_from, element_score = _label_elements_sql(t)
    with transaction.atomic():
        deleted_scope = PredictionAggregate.objects.dangerously_unscoped().filter(
            period=Period.DAY, period_start=day
        )
        label_scope = LabelAggregate.objects.dangerously_unscoped().filter(
            period=Period.DAY, period_start=day
        )
        if need_ids is not None:
            deleted_scope = deleted_scope.filter(need_id__in=need_ids)
            label_scope = label_scope.filter(need_id__in=need_ids)
        deleted_scope.delete()
        label_scope.delete()
        with connection.cursor() as cursor:
            # The low-confidence threshold is the monitoring override or the need's own threshold.
            cursor.execute(
                f"""
                INSERT INTO {t["pagg"]} (tenant_id, need_id, model_version_id, period,
                    period_start, volume, confidence_sum, low_confidence_count, no_label_count,
                    low_confidence_threshold, computed_at)
                SELECT p.tenant_id, p.need_id, p.model_version_id, %s, %s, COUNT(*),
                    SUM(p.top_score),
                    SUM(CASE WHEN p.top_score < thr.value THEN 1 ELSE 0 END),
                    SUM(CASE WHEN p.above_threshold THEN 0 ELSE 1 END),
                    thr.value, %s
                FROM {t["log"]} p
                JOIN (SELECT n.id AS need_id,
                             COALESCE(c.low_confidence_threshold, n.threshold) AS value
                      FROM {t["need"]} n LEFT JOIN {t["config"]} c ON c.need_id = n.id) thr
                  ON thr.need_id = p.need_id
                WHERE p.day = %s{need_sql}
                GROUP BY p.tenant_id, p.need_id, p.model_version_id, thr.value
                """,
                [Period.DAY.value, day_value, now, day_value, *need_params],
            )
            volumes = cursor.rowcount
            # Multi-class needs: the top label. Multi-label needs: every assigned label.
            cursor.execute(
                f"""
                INSERT INTO {t["lagg"]} (tenant_id, need_id, model_version_id, period,
                    period_start, label, count, score_sum, computed_at)
                SELECT p.tenant_id, p.need_id, p.model_version_id, %s, %s, p.top_label,
                    COUNT(*), SUM(p.top_score), %s
                FROM {t["log"]} p
                WHERE p.day = %s{need_sql} AND p.need_id NOT IN ({multilabel})
                GROUP BY p.tenant_id, p.need_id, p.model_version_id, p.top_label
                """,
                [Period.DAY.value, day_value, now, day_value, *need_params],
            )
            labels = cursor.rowcount
            cursor.execute(
                f"""
                INSERT INTO {t["lagg"]} (tenant_id, need_id, model_version_id, period,
                    period_start, label, count, score_sum, computed_at)
                SELECT p.tenant_id, p.need_id, p.model_version_id, %s, %s, e.value,
                    COUNT(*), SUM({element_score}), %s
                FROM {elements_from}
                WHERE p.day = %s{need_sql} AND p.need_id IN ({multilabel})
                GROUP BY p.tenant_id, p.need_id, p.model_version_id, e.value
                """,
                [Period.DAY.value, day_value, now, day_value, *need_params],
            )
            labels += cursor.rowcount
    return {"prediction_rows": volumes, "label_rows": labels}


def aggregate_feedback_day(*, day: date, need_ids: list[int] | None = None) -> int:
    """(Re)compute the day's FeedbackAggregate rows: counts per need, label and event type."""
    t = _tables()
    need_sql, need_params = _need_filter(need_ids, "f.need_id")
    day_value = connection.ops.adapt_datefield_value(day)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with transaction.atomic():
        scope = FeedbackAggregate.objects.dangerously_unscoped().filter(
            period=Period.DAY, period_start=day
        )
        if need_ids is not None:
            scope = scope.filter(need_id__in=need_ids)
        scope.delete()
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {t["fagg"]} (tenant_id, need_id, period, period_start, label,
                    impressions, clicks, not_interested, wrong_tag, computed_at)
                SELECT f.tenant_id, f.need_id, %s, %s, f.label,
                    SUM(CASE WHEN f.type = 'impression' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN f.type = 'click' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN f.type = 'not_interested' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN f.type = 'wrong_tag' THEN 1 ELSE 0 END), %s
                FROM {t["fev"]} f
                WHERE f.day = %s{need_sql}
                GROUP BY f.tenant_id, f.need_id, f.label
                """,
                [Period.DAY.value, day_value, now, day_value, *need_params],
            )
            return cursor.rowcount


def aggregate_week(*, start: date, need_ids: list[int] | None = None) -> dict[str, int]:
    """(Re)compute a week's rows of all three aggregates as sums of its daily rows."""
    start = week_start(start)
    end = start + timedelta(days=6)
    t = _tables()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    dates = [connection.ops.adapt_datefield_value(d) for d in (start, end)]
    week_value = dates[0]
    need_sql, need_params = _need_filter(need_ids, "need_id")
    counts: dict[str, int] = {}
    with transaction.atomic():
        for model in (PredictionAggregate, LabelAggregate, FeedbackAggregate):
            scope = model.objects.dangerously_unscoped().filter(
                period=Period.WEEK, period_start=start
            )
            if need_ids is not None:
                scope = scope.filter(need_id__in=need_ids)
            scope.delete()
        statements = {
            "prediction_rows": f"""
                INSERT INTO {t["pagg"]} (tenant_id, need_id, model_version_id, period,
                    period_start, volume, confidence_sum, low_confidence_count, no_label_count,
                    low_confidence_threshold, computed_at)
                SELECT tenant_id, need_id, model_version_id, %s, %s, SUM(volume),
                    SUM(confidence_sum), SUM(low_confidence_count), SUM(no_label_count),
                    MAX(low_confidence_threshold), %s
                FROM {t["pagg"]}
                WHERE period = %s AND period_start BETWEEN %s AND %s{need_sql}
                GROUP BY tenant_id, need_id, model_version_id""",
            "label_rows": f"""
                INSERT INTO {t["lagg"]} (tenant_id, need_id, model_version_id, period,
                    period_start, label, count, score_sum, computed_at)
                SELECT tenant_id, need_id, model_version_id, %s, %s, label, SUM(count),
                    SUM(score_sum), %s
                FROM {t["lagg"]}
                WHERE period = %s AND period_start BETWEEN %s AND %s{need_sql}
                GROUP BY tenant_id, need_id, model_version_id, label""",
            "feedback_rows": f"""
                INSERT INTO {t["fagg"]} (tenant_id, need_id, period, period_start, label,
                    impressions, clicks, not_interested, wrong_tag, computed_at)
                SELECT tenant_id, need_id, %s, %s, label, SUM(impressions), SUM(clicks),
                    SUM(not_interested), SUM(wrong_tag), %s
                FROM {t["fagg"]}
                WHERE period = %s AND period_start BETWEEN %s AND %s{need_sql}
                GROUP BY tenant_id, need_id, label""",
        }
        with connection.cursor() as cursor:
            for name, sql in statements.items():
                cursor.execute(
                    sql,
                    [Period.WEEK.value, week_value, now, Period.DAY.value, *dates, *need_params],
                )
                counts[name] = cursor.rowcount
    return counts
