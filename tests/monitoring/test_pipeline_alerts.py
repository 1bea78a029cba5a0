"""The daily pipeline end to end: aggregates -> drift -> rule checks -> incidents -> delivery."""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from django.core import mail
from scipy import stats
from statsmodels.stats.contingency_tables import Table

from monitoring import services
from monitoring.models import (
    Alert,
    AlertKind,
    AlertStatus,
    BaselineSource,
    CheckStatus,
    DriftReport,
    NeedMonitoringConfig,
    Period,
    RuleCheck,
)
from tests.monitoring.conftest import DAY
from tests.monitoring.factories import log_predictions, make_monitored_need
from workers.tasks.monitoring import deliver_alert, run_daily_monitoring

pytestmark = pytest.mark.django_db

NORMAL = {"t.a": 200, "t.b": 160, "t.c": 40}  # exactly the 50/40/10 baseline, 400 a day
T_C_GONE = {"t.a": 220, "t.b": 180}  # t.c vanished


def _replay(need, version, days: dict):
    for day, counts in days.items():
        log_predictions(need=need, version=version, day=day, counts=counts)
    for day in days:
        services.monitoring_run(period=Period.DAY, start=day)


def _normal_days(n: int = 8) -> dict:
    return {DAY - timedelta(days=i): NORMAL for i in range(n, 0, -1)}


def _open(need, kind=None):
    qs = Alert.objects.dangerously_unscoped().filter(need=need, status=AlertStatus.OPEN)
    return list(qs.filter(kind=kind) if kind else qs)


def _check(need, day, rule, label=""):
    return RuleCheck.objects.dangerously_unscoped().get(need=need, day=day, rule=rule, label=label)


@pytest.fixture
def normal_then_gone(topics):
    need, version = topics
    _replay(need, version, {**_normal_days(), DAY: T_C_GONE})
    return need, version


def test_stable_days_raise_nothing_and_the_first_days_lack_a_reference(topics):
    need, version = topics
    _replay(need, version, _normal_days())
    assert not Alert.objects.dangerously_unscoped().exists()
    first, last = DAY - timedelta(days=8), DAY - timedelta(days=1)
    # Day 1 has no history: the share rule cannot decide, which is not the same as "fine".
    assert _check(need, first, AlertKind.LABEL_SHARE, "t.a").status == CheckStatus.INSUFFICIENT
    assert _check(need, first, AlertKind.VOLUME_COLLAPSE).status == CheckStatus.INSUFFICIENT
    assert _check(need, last, AlertKind.LABEL_SHARE, "t.a").status == CheckStatus.OK
    drift = _check(need, last, AlertKind.DRIFT)
    assert drift.status == CheckStatus.OK and drift.value == pytest.approx(0.0, abs=1e-12)


def test_a_vanished_label_opens_one_label_alert_and_drift_rides_along(normal_then_gone):
    need, _ = normal_then_gone
    report = DriftReport.objects.dangerously_unscoped().get(
        need=need, period=Period.DAY, period_start=DAY
    )
    eps = 1e-4
    expected_psi = (
        (0.55 - 0.5) * math.log(0.55 / 0.5)
        + (0.45 - 0.4) * math.log(0.45 / 0.4)
        + (eps - 0.1) * math.log(eps / 0.1)
    )
    assert report.psi == pytest.approx(expected_psi, rel=1e-9)
    assert report.baseline_source == BaselineSource.SNAPSHOT
    [alert] = _open(need)
    assert (alert.kind, alert.label, alert.first_seen, alert.last_seen) == (
        AlertKind.LABEL_SHARE,
        "t.c",
        DAY,
        DAY,
    )
    # PSI is over its threshold, but the label alert already tells the story: no second alert.
    assert _check(need, DAY, AlertKind.DRIFT).status == CheckStatus.FLAGGED
    check = _check(need, DAY, AlertKind.LABEL_SHARE, "t.c")
    # The trend test: the 7 days before yesterday as the reference (score 0), then yesterday
    # (score 1, normal) and today (score 2, none of t.c).
    table = Table(np.array([[280, 40, 0], [2800 - 280, 400 - 40, 400]]), shift_zeros=False)
    expected = table.test_ordinal_association(col_scores=np.array([0, 1, 2]))
    assert check.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert check.detail["trend"] == [[0.1, 400], [0.0, 400]]
    assert alert.evidence["observed"] == 0 and alert.evidence["expected"] == pytest.approx(40)
    assert "t.c" in alert.message and "fell from 10.0 %" in alert.message


def test_a_label_that_grows_is_one_alert_not_one_per_shrinking_label(topics):
    need, version = topics
    # t.c triples (10 % -> 30 %); t.a and t.b shrink by the same factor, as shares must.
    _replay(need, version, {**_normal_days(), DAY: {"t.a": 156, "t.b": 124, "t.c": 120}})
    assert [(a.kind, a.label) for a in _open(need)] == [(AlertKind.LABEL_SHARE, "t.c")]
    # Tested again without t.c, t.a and t.b hold their usual 5:4 split.
    assert _check(need, DAY, AlertKind.LABEL_SHARE, "t.a").detail["excluding"] == ["t.c"]


def test_incident_persists_escalates_once_and_resolves_after_clean_days(
    normal_then_gone, django_capture_on_commit_callbacks
):
    need, version = normal_then_gone
    tenant = need.tenant
    tenant.alert_email = "oncall@alpha.example.com"
    tenant.save()
    mail.outbox.clear()
    days = [DAY + timedelta(days=i) for i in range(1, 4)]
    with django_capture_on_commit_callbacks(execute=True):
        _replay(need, version, dict.fromkeys(days, T_C_GONE))
    [alert] = _open(need)
    assert (alert.first_seen, alert.last_seen) == (DAY, days[-1])
    assert alert.days_active == 4 and alert.consecutive_days == 4
    assert alert.severity == "critical"  # 3 days in a row (escalate_after_days)
    assert alert.worst_value == 0.0
    # The opening notice (still queued: the fixture's day ran without on-commit callbacks) and
    # the escalation go out in order; the other days sent nothing.
    assert [m.subject for m in mail.outbox] == [
        "[Critical] Topics: A label's share changed (opened)",
        "[Critical] Topics: A label's share changed (escalated to critical)",
    ]
    assert alert.notifications_sent == 2 and alert.notification_pending == ""
    # Re-running a day changes nothing.
    run_daily_monitoring.delay(day=days[-1].isoformat())
    alert.refresh_from_db()
    assert alert.days_active == 4 and Alert.objects.dangerously_unscoped().count() == 1

    clean = [days[-1] + timedelta(days=i) for i in range(1, 4)]
    _replay(need, version, dict.fromkeys(clean[:2], NORMAL))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN and alert.clean_days == 2
    _replay(need, version, {clean[2]: NORMAL})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.clean_days == 3
    assert alert.last_seen == days[-1]


def test_a_label_that_is_not_rare_never_gets_a_rare_class_alert(tenant_a):
    # The false alarm of the issue: a 30 % class seen 27 times where ~42 were expected.
    need, version = make_monitored_need(
        tenant=tenant_a, slug="mix", baseline={"t.a": 680, "t.b": 300, "t.r": 20}
    )
    _replay(need, version, {DAY: {"t.a": 113, "t.b": 27, "t.r": 0}})
    assert (
        not RuleCheck.objects.dangerously_unscoped()
        .filter(need=need, rule=AlertKind.RARE_CLASS, label="t.b")
        .exists()
    )
    # t.r is rare (2 %) but only 2.8 are expected from 140 predictions: too few to decide.
    assert _check(need, DAY, AlertKind.RARE_CLASS, "t.r").status == CheckStatus.INSUFFICIENT
    assert not Alert.objects.dangerously_unscoped().filter(kind=AlertKind.RARE_CLASS).exists()


def test_a_rare_class_that_stops_appearing_is_flagged_once_enough_are_expected(tenant_a):
    need, version = make_monitored_need(
        tenant=tenant_a, slug="mix", baseline={"t.a": 680, "t.b": 300, "t.r": 20}
    )
    _replay(need, version, {DAY: {"t.a": 700, "t.b": 300, "t.r": 0}})
    check = _check(need, DAY, AlertKind.RARE_CLASS, "t.r")
    assert check.expected == pytest.approx(20.0)
    assert check.p_value == pytest.approx(stats.poisson.cdf(0, 20.0))
    [alert] = _open(need, AlertKind.RARE_CLASS)
    assert alert.label == "t.r" and "rare class" in alert.message


def test_small_days_are_insufficient_data_not_drift(normal_then_gone):
    need, version = normal_then_gone
    next_day = DAY + timedelta(days=1)
    _replay(need, version, {next_day: {"t.a": 30}})
    drift = _check(need, next_day, AlertKind.DRIFT)
    assert drift.status == CheckStatus.INSUFFICIENT and drift.detail["min_volume"] == 200
    # ... while the volume rule does see the collapse against the usual 400 a day.
    [collapse] = _open(need, AlertKind.VOLUME_COLLAPSE)
    assert collapse.evidence["value"] == 30 and collapse.evidence["reference"] == 400
    assert collapse.evidence["drop_pct"] == pytest.approx(92.5)


def test_the_correction_spans_days_as_well_as_labels(topics):
    need, version = topics
    # t.c at 15 % instead of 10 % on one day: p ~ 0.006 on its own (trend over 2 days).
    moderate = {"t.a": 180, "t.b": 160, "t.c": 60}
    NeedMonitoringConfig.objects.create(need=need, tenant=need.tenant, correction_days=1)
    _replay(need, version, {**_normal_days(), DAY: moderate})
    alone = _check(need, DAY, AlertKind.LABEL_SHARE, "t.c")
    assert alone.p_value < 0.01 and alone.status == CheckStatus.FLAGGED
    # t.a (50 %) cannot move 25 % by chance in 400 predictions: it leaves the family.
    assert _check(need, DAY, AlertKind.LABEL_SHARE, "t.a").detail["in_family"] is False
    assert alone.detail["in_family"] is True and alone.detail["family_size"] <= 2

    other, other_version = make_monitored_need(
        tenant=need.tenant, slug="topics-7", baseline={"t.a": 500, "t.b": 400, "t.c": 100}
    )
    _replay(other, other_version, {**_normal_days(), DAY: moderate})
    family = _check(other, DAY, AlertKind.LABEL_SHARE, "t.c")
    assert family.p_value == pytest.approx(alone.p_value)
    # Seven days of t.c (and t.b) in the family: the same evidence is not enough any more.
    assert family.detail["family_size"] >= 7
    assert family.adjusted_p > 0.01 and family.status == CheckStatus.OK
    assert not _open(other)


def _feedback(need, day, label, kind, n, prefix):
    at = datetime.combine(day, time(9), tzinfo=UTC)
    return [
        {
            "event_id": f"{prefix}-{day}-{label}-{kind}-{i}",
            "item_id": f"i{i}",
            "label": label,
            "need": need,
            "type": kind,
            "at": at,
        }
        for i in range(n)
    ]


def _ctr_scenario(need, *, clicks_today: int, negative_today: int):
    """Six usual days, then two (the default feedback evidence window) with the change."""
    events = []
    for i in range(7, 1, -1):
        day = DAY - timedelta(days=i)
        events += _feedback(need, day, "t.a", "impression", 200, "n")
        events += _feedback(need, day, "t.a", "click", 20, "n")
        events += _feedback(need, day, "t.b", "impression", 200, "n")
        events += _feedback(need, day, "t.b", "click", 20, "n")
        events += _feedback(need, day, "t.b", "wrong_tag", 2, "n")
    for day in (DAY - timedelta(days=1), DAY):
        events += _feedback(need, day, "t.a", "impression", 200, "s")
        events += _feedback(need, day, "t.a", "click", clicks_today, "s")
        events += _feedback(need, day, "t.b", "impression", 200, "s")
        events += _feedback(need, day, "t.b", "click", 20, "s")
        events += _feedback(need, day, "t.b", "wrong_tag", negative_today, "s")
    services.feedback_record(tenant=need.tenant, events=events)
    for i in range(7, -1, -1):
        services.monitoring_run(period=Period.DAY, start=DAY - timedelta(days=i))


def test_ctr_drop_and_negative_feedback_rise_open_one_alert_per_label(topics):
    need, _ = topics
    _ctr_scenario(need, clicks_today=6, negative_today=8)  # CTR 10 % -> 3 %; negative 1 % -> 4 %
    alerts = {(a.kind, a.label) for a in _open(need)}
    assert alerts == {(AlertKind.CTR_DROP, "t.a"), (AlertKind.NEGATIVE_RISE, "t.b")}
    # Both opened on the second changed day, with the two days pooled against the six before.
    assert {a.first_seen for a in _open(need)} == {DAY}
    ctr = _check(need, DAY, AlertKind.CTR_DROP, "t.a")
    assert (ctr.value, ctr.reference) == (pytest.approx(0.03), pytest.approx(0.10))
    fisher = stats.fisher_exact([[12, 388], [120, 1080]], alternative="less").pvalue
    assert ctr.p_value == pytest.approx(fisher, rel=1e-9)
    negative = _check(need, DAY, AlertKind.NEGATIVE_RISE, "t.b")
    assert negative.detail["change_pct"] == pytest.approx(300.0)


def test_a_feedback_change_that_is_not_significant_does_not_alert(topics):
    need, _ = topics
    # CTR 10 % -> 7 % (-30 %) on 400 impressions and 1 % -> 2 % negative: large, not conclusive.
    _ctr_scenario(need, clicks_today=14, negative_today=4)
    assert not _open(need)
    assert _check(need, DAY, AlertKind.CTR_DROP, "t.a").status == CheckStatus.OK


def test_weekly_run_reports_drift_but_raises_no_second_alert(normal_then_gone):
    need, _ = normal_then_gone
    before = Alert.objects.dangerously_unscoped().count()
    week = services.monitoring_run(period=Period.WEEK, start=DAY)
    assert week["prediction_rows"] == 1
    monday = DAY - timedelta(days=DAY.weekday())
    report = DriftReport.objects.dangerously_unscoped().get(
        need=need, period=Period.WEEK, period_start=monday
    )
    assert report.volume == 1200  # Monday, Tuesday (normal) and the shifted Wednesday
    assert Alert.objects.dangerously_unscoped().count() == before


def test_reference_window_baseline_replaces_the_snapshot(topics):
    need, version = topics
    NeedMonitoringConfig.objects.create(
        need=need,
        tenant=need.tenant,
        baseline_source=BaselineSource.WINDOW,
        reference_start=DAY - timedelta(days=2),
        reference_end=DAY - timedelta(days=1),
    )
    _replay(need, version, {DAY - timedelta(days=i): T_C_GONE for i in range(2, -1, -1)})
    report = DriftReport.objects.dangerously_unscoped().get(
        need=need, period=Period.DAY, period_start=DAY
    )
    assert report.baseline_source == BaselineSource.WINDOW
    assert report.psi == pytest.approx(0.0, abs=1e-12)
    assert _check(need, DAY, AlertKind.DRIFT).status == CheckStatus.OK


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_notices_go_out_on_open_and_escalation_only(topics, django_capture_on_commit_callbacks):
    need, version = topics
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    tenant = need.tenant
    tenant.alert_email = "oncall@alpha.example.com"
    tenant.alert_webhook_url = f"http://127.0.0.1:{server.server_port}/hook"
    tenant.save()
    try:
        _replay(need, version, _normal_days())
        with django_capture_on_commit_callbacks(execute=True):
            _replay(need, version, {DAY + timedelta(days=i): T_C_GONE for i in range(5)})
    finally:
        server.shutdown()
    assert [(p["event"], p["kind"], p["label"]) for p in _Hook.received] == [
        ("opened", "label_share", "t.c"),
        ("escalated", "label_share", "t.c"),
    ]
    assert _Hook.received[0]["need"] == "topics" and "t.c" in _Hook.received[0]["summary"]
    assert [m.to for m in mail.outbox] == [["oncall@alpha.example.com"]] * 2
    [alert] = _open(need)
    assert alert.notifications_sent == 2 and alert.days_active == 5


def test_acknowledged_or_snoozed_alerts_send_no_more_notices(
    normal_then_gone, django_capture_on_commit_callbacks, alice
):
    need, version = normal_then_gone
    need.tenant.alert_email = "oncall@alpha.example.com"
    need.tenant.save()
    [alert] = _open(need)
    services.alert_acknowledge(alert=alert, user=alice, note="looking at the feed")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        _replay(need, version, {DAY + timedelta(days=i): T_C_GONE for i in range(1, 4)})
    alert.refresh_from_db()
    assert alert.severity == "critical" and alert.ack_note == "looking at the feed"
    assert mail.outbox == []


def test_failed_delivery_is_recorded_and_does_not_fail_the_task(normal_then_gone):
    need, _ = normal_then_gone
    NeedMonitoringConfig.objects.create(
        need=need, tenant=need.tenant, alert_webhook_url="http://127.0.0.1:9/unreachable"
    )
    [alert] = _open(need)
    outcome = deliver_alert.delay(alert.pk).get()
    alert.refresh_from_db()
    assert "webhook" in outcome["errors"][0]
    assert alert.delivery_error.startswith("webhook:")
    assert alert.delivered_at is None and alert.notifications_sent == 0
