"""Daily and weekly aggregates are computed in SQL, match hand counts, and are idempotent."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring import aggregation
from monitoring.models import LabelAggregate, NeedMonitoringConfig, Period, PredictionAggregate
from tests.monitoring.conftest import DAY
from tests.monitoring.factories import log_multilabel, log_predictions, make_monitored_need

pytestmark = pytest.mark.django_db


def _snapshot(model, **filters):
    return sorted(
        model.objects.dangerously_unscoped()
        .filter(**filters)
        .values_list(
            *[
                f.attname
                for f in model._meta.concrete_fields
                if f.attname not in {"id", "computed_at"}
            ]
        )
    )


def test_daily_aggregate_counts_volume_confidence_and_low_confidence(topics):
    need, version = topics
    # 4 rows of t.a with scores 0.9, 0.3, 0.8, 0.4 and 2 rows of t.b with 0.6 (threshold 0.5).
    log_predictions(
        need=need, version=version, day=DAY, counts={"t.a": 4}, scores=[0.9, 0.3, 0.8, 0.4]
    )
    log_predictions(need=need, version=version, day=DAY, counts={"t.b": 2}, score=0.6)
    log_predictions(need=need, version=version, day=DAY + timedelta(days=1), counts={"t.c": 5})

    aggregation.aggregate_predictions_day(day=DAY)

    agg = PredictionAggregate.objects.dangerously_unscoped().get(
        need=need, period=Period.DAY, period_start=DAY
    )
    assert agg.volume == 6
    assert agg.mean_confidence == pytest.approx((0.9 + 0.3 + 0.8 + 0.4 + 0.6 + 0.6) / 6)
    assert agg.low_confidence_count == 2
    assert agg.no_label_count == 2  # the two below the threshold were not assigned a label
    labels = {
        row.label: row
        for row in LabelAggregate.objects.dangerously_unscoped().filter(
            period=Period.DAY, period_start=DAY
        )
    }
    assert {k: v.count for k, v in labels.items()} == {"t.a": 4, "t.b": 2}
    assert labels["t.a"].score_sum == pytest.approx(2.4)


def test_low_confidence_threshold_can_be_overridden_per_need(topics):
    need, version = topics
    log_predictions(
        need=need, version=version, day=DAY, counts={"t.a": 4}, scores=[0.9, 0.3, 0.8, 0.4]
    )
    NeedMonitoringConfig.objects.create(
        need=need, tenant=need.tenant, low_confidence_threshold=0.85
    )
    aggregation.aggregate_predictions_day(day=DAY)
    agg = PredictionAggregate.objects.dangerously_unscoped().get(need=need, period=Period.DAY)
    assert agg.low_confidence_count == 3
    assert agg.low_confidence_threshold == 0.85


def test_multilabel_need_counts_every_assigned_label_and_the_no_label_rate(tenant_a):
    need, version = make_monitored_need(
        tenant=tenant_a, slug="flags", baseline={"f.x": 10, "f.y": 10}, kind="multilabel"
    )
    log_multilabel(
        need=need,
        version=version,
        day=DAY,
        rows=[
            {"f.x": 0.9, "f.y": 0.7},  # both
            {"f.x": 0.6, "f.y": 0.1},  # x
            {"f.x": 0.2, "f.y": 0.3},  # none above threshold
        ],
    )
    aggregation.aggregate_predictions_day(day=DAY)
    labels = {
        row.label: row for row in LabelAggregate.objects.dangerously_unscoped().filter(need=need)
    }
    assert {k: v.count for k, v in labels.items()} == {"f.x": 2, "f.y": 1}
    assert labels["f.x"].score_sum == pytest.approx(1.5)
    assert labels["f.y"].score_sum == pytest.approx(0.7)
    agg = PredictionAggregate.objects.dangerously_unscoped().get(need=need)
    assert (agg.volume, agg.no_label_count) == (3, 1)


def test_recomputing_a_day_gives_the_same_rows(topics):
    need, version = topics
    log_predictions(need=need, version=version, day=DAY, counts={"t.a": 30, "t.b": 20, "t.c": 5})
    aggregation.aggregate_predictions_day(day=DAY)
    first = (_snapshot(PredictionAggregate), _snapshot(LabelAggregate))
    aggregation.aggregate_predictions_day(day=DAY)
    aggregation.aggregate_predictions_day(day=DAY, need_ids=[need.pk])
    assert (_snapshot(PredictionAggregate), _snapshot(LabelAggregate)) == first
    assert PredictionAggregate.objects.dangerously_unscoped().count() == 1
    assert LabelAggregate.objects.dangerously_unscoped().count() == 3


def test_recomputing_a_day_picks_up_late_rows(topics):
    need, version = topics
    log_predictions(need=need, version=version, day=DAY, counts={"t.a": 3})
    aggregation.aggregate_predictions_day(day=DAY)
    log_predictions(need=need, version=version, day=DAY, counts={"t.a": 2})
    aggregation.aggregate_predictions_day(day=DAY)
    assert PredictionAggregate.objects.dangerously_unscoped().get(need=need).volume == 5


def test_aggregation_cost_in_queries_does_not_grow_with_rows(topics, django_assert_max_num_queries):
    need, version = topics
    log_predictions(need=need, version=version, day=DAY, counts={"t.a": 300, "t.b": 200})
    # Deletes and three INSERT ... SELECT statements: the rows never travel to Python.
    with django_assert_max_num_queries(8):
        aggregation.aggregate_predictions_day(day=DAY)


def test_week_is_the_sum_of_its_days(topics):
    need, version = topics
    monday = aggregation.week_start(DAY)
    assert monday.weekday() == 0 and monday <= DAY
    for offset, n in enumerate([10, 20, 30]):
        log_predictions(
            need=need,
            version=version,
            day=monday + timedelta(days=offset),
            counts={"t.a": n, "t.b": 1},
        )
        aggregation.aggregate_predictions_day(day=monday + timedelta(days=offset))
    # A day of the following week must not be counted.
    log_predictions(need=need, version=version, day=monday + timedelta(days=7), counts={"t.a": 99})
    aggregation.aggregate_predictions_day(day=monday + timedelta(days=7))

    aggregation.aggregate_week(start=DAY)
    aggregation.aggregate_week(start=DAY)  # idempotent too

    week = PredictionAggregate.objects.dangerously_unscoped().get(
        period=Period.WEEK, period_start=monday
    )
    assert week.volume == 63
    counts = dict(
        LabelAggregate.objects.dangerously_unscoped()
        .filter(period=Period.WEEK, period_start=monday)
        .values_list("label", "count")
    )
    assert counts == {"t.a": 60, "t.b": 3}
