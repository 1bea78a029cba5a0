"""Retention of the prediction log: whole days older than PREDICTION_LOG_RETENTION_DAYS are
dropped, each only once its daily aggregates hold exactly its rows.

For each expired day, inside one transaction that keeps writers out of that day's partition: count
the day's rows, (re)compute its daily aggregates if their volume does not equal that count, check
again, and only then drop the day (`serving.partitions.log_partition_drop`: a `DROP TABLE` of
the partition on PostgreSQL, O(1)) and record it as retired. A day whose aggregates still do not
match is kept and reported. The aggregation never recomputes a retired day
(`aggregation.aggregate_predictions_day`), so the stored aggregates outlive the raw rows.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from monitoring import aggregation
from monitoring.models import Period, PredictionAggregate
from serving import partitions
from serving.models import PredictionLogRetiredDay

logger = logging.getLogger(__name__)


def _expired_days(cutoff: date) -> list[date]:
    table = partitions.TABLE
    days = {day for day in partitions.log_partition_days() if day < cutoff}
    # Rows outside any day partition (the DEFAULT partition), or the plain table (SQLite).
    source = partitions.DEFAULT if partitions.is_partitioned() else table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT day FROM {source} WHERE day < %s", [cutoff])
        days |= {
            row[0] if isinstance(row[0], date) else date.fromisoformat(row[0])
            for row in cursor.fetchall()
        }
    return sorted(days)


def _aggregated_volume_all_tenants(day: date) -> int:
    total = (
        PredictionAggregate.objects.dangerously_unscoped()
        .filter(period=Period.DAY, period_start=day)
        .aggregate(total=Sum("volume"))["total"]
    )
    return int(total or 0)


def _lock_day(day: date) -> None:
    """Keep inserts out of the day until the transaction ends (PostgreSQL)."""
    if not partitions.is_partitioned():
        return
    name = partitions.partition_name(day)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        target = name if cursor.fetchone()[0] is not None else partitions.DEFAULT
        cursor.execute(f"LOCK TABLE {target} IN SHARE ROW EXCLUSIVE MODE")


def prediction_log_retention_apply(*, keep_days: int, today: date | None = None) -> dict:
    """Drop the log's days older than `keep_days` whose aggregates are stored. 0 keeps all."""
    if keep_days <= 0:
        return {"dropped": [], "kept": []}
    today = today or timezone.now().date()
    dropped: list[str] = []
    kept: list[str] = []
    for day in _expired_days(today - timedelta(days=keep_days)):
        with transaction.atomic():
            _lock_day(day)
            rows = partitions.log_day_rows(day=day)
            if _aggregated_volume_all_tenants(day) != rows:
                aggregation.aggregate_predictions_day(day=day)
            if _aggregated_volume_all_tenants(day) != rows:
                logger.error(
                    "prediction log retention: %s keeps its %d rows, its aggregates do not "
                    "match them",
                    day,
                    rows,
                )
                kept.append(day.isoformat())
                continue
            partitions.log_partition_drop(day=day)
            PredictionLogRetiredDay.objects.update_or_create(day=day, defaults={"rows": rows})
            dropped.append(day.isoformat())
    return {"dropped": dropped, "kept": kept}
