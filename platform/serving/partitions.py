"""Daily partitions of the prediction log.

On PostgreSQL `serving_predictionlog` is partitioned by RANGE (day) (migration 0008): one table
per day, `serving_predictionlog_pYYYYMMDD`, plus a DEFAULT partition that catches rows for a day
without its own table yet (a replay of old days, or before beat first ran). Beat creates the
coming days ahead (`log_partitions_ensure_ahead`); creating a day that already has rows in the
DEFAULT partition moves them into the new table first. A day is dropped whole
(`log_partition_drop`, a `DROP TABLE`: O(1), no `DELETE`, no bloat) by the retention in
`monitoring.retention`, which checks the day's aggregates first.

On SQLite (the embedded default) the log is a plain table: there is nothing to create, and
dropping a day is a `DELETE` of that day (small embedded volumes).
"""

from __future__ import annotations

import re
import zlib
from datetime import date, timedelta

from django.db import connection, transaction
from django.utils import timezone

from serving.models import PredictionLog

TABLE = PredictionLog._meta.db_table
DEFAULT = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")


def is_partitioned() -> bool:
    """True when the log is a partitioned table (PostgreSQL after migration 0008)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
            [TABLE],
        )
        return cursor.fetchone() is not None


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def log_partition_days() -> list[date]:
    """The days that have their own partition, oldest first (empty when not partitioned)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = []
    for name in names:
        match = _NAME.match(name)
        if match:
            raw = match.group(1)
            days.append(date(int(raw[:4]), int(raw[4:6]), int(raw[6:])))
    return sorted(days)


def log_partition_ensure(*, day: date) -> bool:
    """Create the day's partition if it is missing. Returns True when it was created.

    Rows of that day already in the DEFAULT partition are moved into the new table before it is
    attached (PostgreSQL refuses to attach a range the DEFAULT partition still holds rows of).
    Concurrent callers serialise on an advisory lock per day."""
    if not is_partitioned():
        return False
    name = partition_name(day)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(name.encode())])
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is not None:
            return False
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE day = %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [day],
        )
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [day, day + timedelta(days=1)],
        )
    return True


def log_partitions_ensure_ahead(*, days_ahead: int, today: date | None = None) -> list[date]:
    """Create the partitions of today and the next `days_ahead` days. Returns those created."""
    today = today or timezone.now().date()
    return [
        today + timedelta(days=n)
        for n in range(days_ahead + 1)
        if log_partition_ensure(day=today + timedelta(days=n))
    ]


def log_day_rows(*, day: date) -> int:
    """How many log rows the day holds (the partition alone when it has one: pruned)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {TABLE} WHERE day = %s", [day])
        return cursor.fetchone()[0]


def log_partition_drop(*, day: date) -> None:
    """Drop the whole day: `DROP TABLE` of its partition on PostgreSQL (O(1), no `DELETE`); a
    `DELETE` of the day on the plain table (SQLite). Callers check the aggregates first."""
    if is_partitioned():
        name = partition_name(day)
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [name])
            if cursor.fetchone()[0] is not None:
                # Deferred FK checks of rows written in this transaction must run before DROP.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"DROP TABLE {name}")
            # Rows of that day may sit in the DEFAULT partition (a day that never got its own).
            cursor.execute(f"DELETE FROM {DEFAULT} WHERE day = %s", [day])
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE day = %s", [day])
