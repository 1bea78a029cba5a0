"""Prediction-log retention: whole days older than the retention are dropped, each only after its
daily aggregates hold exactly its rows; nothing the dashboards read is lost."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Sum

from monitoring import aggregation
from monitoring.models import LabelAggregate, Period, PredictionAggregate
from monitoring.retention import prediction_log_retention_apply
from serving import partitions
from serving.models import PredictionLog, PredictionLogRetiredDay
from tests.monitoring.factories import log_predictions

TODAY = date(2026, 6, 30)


def _volume(day: date) -> int:
    rows = PredictionAggregate.objects.dangerously_unscoped().filter(
        period=Period.DAY, period_start=day
    )
    return rows.aggregate(total=Sum("volume"))["total"] or 0


def _labels(day: date) -> dict[str, int]:
    rows = LabelAggregate.objects.dangerously_unscoped().filter(period=Period.DAY, period_start=day)
    return {row.label: row.count for row in rows}


def _log_days(topics, days_back: range) -> dict[date, int]:
    need, version = topics
    written = {}
    for back in days_back:
        day = TODAY - timedelta(days=back)
        partitions.log_partition_ensure(day=day)
        written[day] = log_predictions(
            need=need, version=version, day=day, counts={"t.a": 3 + back, "t.b": back}
        )
    return written


def test_old_days_are_aggregated_then_dropped_and_no_count_is_lost(topics):
    written = _log_days(topics, range(0, 6))  # today and the five days before
    old = [day for day in written if day < TODAY - timedelta(days=3)]
    assert len(old) == 2 and not any(_volume(day) for day in old)  # never aggregated yet

    result = prediction_log_retention_apply(keep_days=3, today=TODAY)

    assert sorted(result["dropped"]) == sorted(day.isoformat() for day in old)
    for day in old:
        back = (TODAY - day).days
        assert not PredictionLog.objects.dangerously_unscoped().filter(day=day).exists()
        assert _volume(day) == written[day]
        assert _labels(day) == {"t.a": 3 + back, "t.b": back}
        assert PredictionLogRetiredDay.objects.get(day=day).rows == written[day]
    for day in set(written) - set(old):  # inside the retention: untouched
        assert PredictionLog.objects.dangerously_unscoped().filter(day=day).count() == written[day]


def test_a_retired_day_is_never_recomputed_into_empty_aggregates(topics):
    written = _log_days(topics, range(5, 6))
    day = next(iter(written))
    prediction_log_retention_apply(keep_days=3, today=TODAY)

    aggregation.aggregate_predictions_day(day=day)  # e.g. a late re-run of that day's monitoring

    assert _volume(day) == written[day]


def test_stale_aggregates_are_recomputed_before_the_day_is_dropped(topics):
    need, version = topics
    written = _log_days(topics, range(5, 6))
    day = next(iter(written))
    aggregation.aggregate_predictions_day(day=day)
    late = log_predictions(need=need, version=version, day=day, counts={"t.c": 4})
    assert _volume(day) == written[day]  # the aggregates miss the late rows

    prediction_log_retention_apply(keep_days=3, today=TODAY)

    assert _volume(day) == written[day] + late
    assert _labels(day)["t.c"] == 4


def test_retention_zero_keeps_everything(topics):
    written = _log_days(topics, range(30, 31))
    assert prediction_log_retention_apply(keep_days=0, today=TODAY) == {"dropped": [], "kept": []}
    day = next(iter(written))
    assert PredictionLog.objects.dangerously_unscoped().filter(day=day).count() == written[day]
