"""PostgreSQL: the prediction log is partitioned by day; partitions are created ahead, rows of a
day without its own partition wait in the DEFAULT one and move when it is created, dropping a day
is a DROP TABLE, and the monitoring aggregation reads only the day's partition."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monitoring import aggregation
from serving import partitions
from tests.monitoring.factories import log_predictions, make_monitored_need

DAY = date(2026, 3, 10)


@pytest.fixture
def served(tenant_a, requires_postgres):
    return make_monitored_need(tenant=tenant_a, slug="topics", baseline={"t.a": 5, "t.b": 5})


def _where(day: date) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text, COUNT(*) FROM {partitions.TABLE} "
            "WHERE day = %s GROUP BY 1",
            [day],
        )
        return dict(cursor.fetchall())


def test_the_log_is_partitioned_by_day_with_the_day_in_its_primary_key(requires_postgres, db):
    assert partitions.is_partitioned()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
            [f"{partitions.TABLE}_pkey"],
        )
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, day)"


def test_partitions_are_created_ahead_once(requires_postgres, db):
    created = partitions.log_partitions_ensure_ahead(days_ahead=3, today=DAY)
    assert created == [DAY + timedelta(days=n) for n in range(4)]
    assert partitions.log_partitions_ensure_ahead(days_ahead=3, today=DAY) == []
    assert set(created) <= set(partitions.log_partition_days())


def test_rows_wait_in_the_default_partition_and_move_when_their_day_is_created(served):
    need, version = served
    written = log_predictions(need=need, version=version, day=DAY, counts={"t.a": 7})
    assert _where(DAY) == {partitions.DEFAULT: written}

    assert partitions.log_partition_ensure(day=DAY) is True

    assert _where(DAY) == {partitions.partition_name(DAY): written}


def test_dropping_a_day_drops_its_partition_and_leaves_the_others(served):
    need, version = served
    for day in (DAY, DAY + timedelta(days=1)):
        partitions.log_partition_ensure(day=day)
        log_predictions(need=need, version=version, day=day, counts={"t.a": 2})

    partitions.log_partition_drop(day=DAY)

    assert DAY not in partitions.log_partition_days()
    assert _where(DAY) == {}
    assert _where(DAY + timedelta(days=1)) == {
        partitions.partition_name(DAY + timedelta(days=1)): 2
    }


def test_the_daily_aggregation_reads_only_that_days_partition(served):
    need, version = served
    for day in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
        partitions.log_partition_ensure(day=day)
        log_predictions(need=need, version=version, day=day, counts={"t.a": 2})
    with CaptureQueriesContext(connection) as captured:
        aggregation.aggregate_predictions_day(day=DAY)
    statements = [q["sql"] for q in captured if f"FROM {partitions.TABLE} p" in q["sql"]]
    assert len(statements) == 3
    for sql in statements:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        scanned = {
            name
            for name in partitions.log_partition_days()
            if partitions.partition_name(name) in plan
        }
        assert scanned == {DAY}, plan
        assert partitions.DEFAULT not in plan


def test_beat_creates_partitions_ahead_and_runs_retention_with_expiry():
    entries = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for task in (
        "workers.tasks.monitoring.prediction_log_partitions_ahead",
        "workers.tasks.monitoring.prediction_log_retention",
    ):
        assert entries[task]["options"]["queue"] == "monitoring"
        assert entries[task]["options"]["expire_seconds"] > 0


def test_copy_writes_lines_exactly_including_tabs_newlines_and_backslashes(served):
    import json
    import time

    from serving import predlog
    from serving.models import PredictionLog

    need, version = served
    ref = 'a\tb\\c\nd\r"e",f'
    line = {
        "t": time.time(),
        "tn": need.tenant_id,
        "nd": need.pk,
        "mv": version.pk,
        "ch": "batch",
        "ref": ref,
        "h": "f" * 64,
        "l": ["t.a", "体育\\x"],
        "s": {"t.a": 0.75, "体育\\x": 0.5},
        "tl": "t.a\ttab",
        "ts": 0.75,
        "a": False,
    }
    assert predlog.write_now([json.dumps(line).encode()]) == 1
    row = PredictionLog.objects.for_tenant(need.tenant).get(text_hash="f" * 64)
    assert (row.item_ref, row.labels, row.scores, row.top_label) == (
        ref,
        ["t.a", "体育\\x"],
        {"t.a": 0.75, "体育\\x": 0.5},
        "t.a\ttab",
    )
    assert (row.top_score, row.above_threshold, row.channel) == (0.75, False, "batch")
    assert row.day == row.created_at.date()
