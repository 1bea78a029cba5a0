"""A tenant's days and weeks are cut in its own time zone, and re-cut when it changes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from core.localtime import tenant_day_bounds, tenant_local_date
from monitoring import aggregation, services
from monitoring.models import FeedbackEvent, Period, PredictionAggregate
from serving import predlog
from serving.models import PredictionLog
from tenants.services import tenant_time_zone_set

pytestmark = pytest.mark.django_db

# 23:30 and 00:30 in Beijing (UTC+8): 15:30 and 16:30 UTC on the same UTC day.
LATE = datetime(2025, 3, 12, 15, 30, tzinfo=UTC)
EARLY = datetime(2025, 3, 12, 16, 30, tzinfo=UTC)
DAY, NEXT = date(2025, 3, 12), date(2025, 3, 13)


def _log(need, version, *moments) -> None:
    """Through the prediction log's own write path (the day is computed there)."""
    lines = [
        json.dumps(
            {
                "t": moment.timestamp(),
                "tn": need.tenant_id,
                "nd": need.pk,
                "mv": version.pk,
                "ch": "sync",
                "ref": f"item-{i}",
                "h": f"{i:064d}",
                "l": ["t.a"],
                "s": {"t.a": 0.9},
                "tl": "t.a",
                "ts": 0.9,
                "a": True,
            }
        ).encode()
        for i, moment in enumerate(moments)
    ]
    predlog.write_now(lines)


def _volumes(need) -> dict[date, int]:
    return dict(
        PredictionAggregate.objects.for_tenant(need.tenant)
        .filter(need=need, period=Period.DAY)
        .values_list("period_start", "volume")
    )


def _set_zone(tenant, name: str) -> None:
    tenant.time_zone = name
    tenant.days_time_zone = name
    tenant.save(update_fields=["time_zone", "days_time_zone"])


def test_2330_and_0030_local_fall_on_different_days_for_a_utc_plus_8_tenant(topics):
    need, version = topics
    _set_zone(need.tenant, "Asia/Shanghai")
    _log(need, version, LATE, EARLY)
    for day in (DAY, NEXT):
        aggregation.aggregate_predictions_day(day=day)
    assert _volumes(need) == {DAY: 1, NEXT: 1}


def test_the_same_two_moments_fall_on_one_utc_day_for_a_utc_tenant(topics):
    need, version = topics
    _set_zone(need.tenant, "UTC")
    _log(need, version, LATE, EARLY)
    for day in (DAY, NEXT):
        aggregation.aggregate_predictions_day(day=day)
    assert _volumes(need) == {DAY: 2}


def test_feedback_days_follow_the_tenant_time_zone(topics):
    need, _version = topics
    _set_zone(need.tenant, "Asia/Shanghai")
    events = [
        {
            "event_id": "e1",
            "item_id": "i1",
            "label": "t.a",
            "need": need,
            "type": "click",
            "at": LATE,
        },
        {
            "event_id": "e2",
            "item_id": "i2",
            "label": "t.a",
            "need": need,
            "type": "click",
            "at": EARLY,
        },
    ]
    services.feedback_record(tenant=need.tenant, events=events)
    days = dict(FeedbackEvent.objects.for_tenant(need.tenant).values_list("event_id", "day"))
    assert days == {"e1": DAY, "e2": NEXT}


def test_changing_the_time_zone_recuts_stored_days_and_aggregates_idempotently(topics):
    need, version = topics
    tenant = need.tenant
    _set_zone(tenant, "UTC")
    _log(need, version, LATE, EARLY)
    services.monitoring_run(period=Period.DAY, start=DAY)
    services.monitoring_run(period=Period.WEEK, start=DAY)
    assert _volumes(need) == {DAY: 2}

    tenant_time_zone_set(tenant=tenant, time_zone="Asia/Shanghai")
    assert services.tenants_days_resync() == {tenant.slug: {"resynced": True, "days": 2}}
    assert _volumes(need) == {DAY: 1, NEXT: 1}
    days = sorted(PredictionLog.objects.for_tenant(tenant).values_list("day", flat=True))
    assert days == [DAY, NEXT]
    week = PredictionAggregate.objects.for_tenant(tenant).get(
        need=need, period=Period.WEEK, period_start=aggregation.week_start(DAY)
    )
    assert week.volume == 2

    before = sorted(
        PredictionAggregate.objects.for_tenant(tenant).values_list(
            "period", "period_start", "volume"
        )
    )
    tenant.refresh_from_db()
    assert tenant.days_time_zone == "Asia/Shanghai"
    assert services.tenants_days_resync() == {}  # nothing left to do
    assert services.tenant_days_resync(tenant=tenant) == {"resynced": False}
    after = sorted(
        PredictionAggregate.objects.for_tenant(tenant).values_list(
            "period", "period_start", "volume"
        )
    )
    assert before == after


def test_local_runs_use_each_tenants_own_today(topics, tenant_b):
    need, version = topics
    _set_zone(need.tenant, "Asia/Shanghai")
    _set_zone(tenant_b, "UTC")
    _log(need, version, EARLY)
    now = datetime(2025, 3, 12, 17, 0, tzinfo=UTC)  # 01:00 on the 13th in Beijing
    result = services.monitoring_run_local_all_tenants(period=Period.DAY, days_ago=0, now=now)
    assert set(result) == {"2025-03-12", "2025-03-13"}  # bravo's today, alpha's today
    assert _volumes(need) == {NEXT: 1}


def test_day_bounds_and_local_date_helpers():
    class Unit:
        time_zone = "Asia/Shanghai"

    start, end = tenant_day_bounds(Unit(), DAY)
    assert start == datetime(2025, 3, 11, 16, 0, tzinfo=UTC)
    assert end == datetime(2025, 3, 12, 16, 0, tzinfo=UTC)
    assert tenant_local_date(Unit(), LATE) == DAY
    assert tenant_local_date(Unit(), EARLY) == NEXT


def test_an_unknown_time_zone_is_refused(tenant_a):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        tenant_time_zone_set(tenant=tenant_a, time_zone="Mars/Olympus_Mons")


def test_scheduled_batches_run_on_the_tenants_clock_and_follow_a_change(topics):
    from django_celery_beat.models import PeriodicTask

    from serving.services import scheduled_batch_create

    need, _version = topics
    tenant = need.tenant
    _set_zone(tenant, "Asia/Shanghai")
    scheduled = scheduled_batch_create(tenant=tenant, need=need, name="nightly")
    task = PeriodicTask.objects.get(pk=scheduled.periodic_task_id)
    assert str(task.crontab.hour) == "2" and str(task.crontab.timezone) == "Asia/Shanghai"

    tenant_time_zone_set(tenant=tenant, time_zone="Europe/Berlin")
    services.tenants_days_resync()
    task.refresh_from_db()
    assert str(task.crontab.hour) == "2" and str(task.crontab.timezone) == "Europe/Berlin"
