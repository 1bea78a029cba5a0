"""Migration serving.0008 turns an existing plain prediction log into daily partitions without
losing a row or an id, and its reverse turns it back (PostgreSQL; a no-op on SQLite)."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from serving import partitions
from tests.monitoring.factories import log_predictions, make_monitored_need

PLAIN = [("serving", "0008_prediction_log_retired_days")]
PARTITIONED = [("serving", "0009_prediction_log_partitioned_by_day")]
DAYS = (date(2026, 1, 5), date(2026, 1, 6))


def _migrate(targets) -> None:
    MigrationExecutor(connection).migrate(targets)


def _log_model(targets):
    """The prediction log's model as of `targets` (later migrations add columns to it)."""
    return (
        MigrationExecutor(connection)
        .loader.project_state(targets)
        .apps.get_model("serving", "PredictionLog")
    )


def _rows() -> dict[int, tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, day, need_id, top_label, labels::text FROM {partitions.TABLE} ORDER BY id"
        )
        return {row[0]: row[1:] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_existing_rows_move_into_day_partitions_and_back(tenant_a, requires_postgres):
    need, version = make_monitored_need(tenant=tenant_a, slug="topics", baseline={"t.a": 1})
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        _migrate(PLAIN)
        assert not partitions.is_partitioned()
        for day in DAYS:
            log_predictions(
                need=need,
                version=version,
                day=day,
                counts={"t.a": 3, "t.b": 2},
                model=_log_model(PLAIN),
            )
        before = _rows()
        with connection.cursor() as cursor:  # another app's foreign key to a log row
            cursor.execute(
                "CREATE TABLE scale_test_ref (id serial PRIMARY KEY, prediction_id bigint "
                f"REFERENCES {partitions.TABLE} (id))"
            )
            cursor.execute("INSERT INTO scale_test_ref (prediction_id) VALUES (%s)", [min(before)])

        _migrate(PARTITIONED)

        assert partitions.is_partitioned()
        assert _rows() == before
        assert partitions.log_partition_days() == list(DAYS)
        with connection.cursor() as cursor:  # the reference stays, as a plain column
            cursor.execute("SELECT prediction_id FROM scale_test_ref")
            assert cursor.fetchone()[0] == min(before)
        fresh = log_predictions(
            need=need,
            version=version,
            day=DAYS[1],
            counts={"t.c": 1},
            model=_log_model(PARTITIONED),
        )
        assert fresh == 1 and max(_rows()) > max(before)  # the id sequence continues

        _migrate(PLAIN)
        assert not partitions.is_partitioned()
        assert len(_rows()) == len(before) + 1
        old_log = _log_model(PLAIN)
        old_log.objects.bulk_create([old_log(**{**_copy_of(need, version), "day": DAYS[0]})])
        assert len(set(_rows())) == len(before) + 2
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS scale_test_ref")
        _migrate(leaves)
    assert partitions.is_partitioned()


def _copy_of(need, version) -> dict:
    return {
        "tenant_id": need.tenant_id,
        "need_id": need.pk,
        "model_version_id": version.pk,
        "channel": "sync",
        "text_hash": "0" * 64,
        "top_label": "t.a",
        "top_score": 0.9,
    }
