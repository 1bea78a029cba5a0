"""The daily pipeline end to end: aggregates -> drift reports -> deduplicated alerts -> delivery."""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail

from monitoring import services
from monitoring.models import (
    Alert,
    AlertKind,
    BaselineSource,
    DriftReport,
    NeedMonitoringConfig,
    Period,
)
from tests.monitoring.conftest import DAY
from tests.monitoring.factories import log_predictions
from workers.tasks.monitoring import deliver_alert, run_daily_monitoring

pytestmark = pytest.mark.django_db

NORMAL = {"t.a": 100, "t.b": 80, "t.c": 20}  # exactly the 50/40/10 baseline
SHIFTED = {"t.a": 150, "t.b": 50}  # t.c vanished, t.a grew


def _replay(need, version, days: dict, *, capture=None):
    for day, counts in days.items():
        log_predictions(need=need, version=version, day=day, counts=counts)
    for day in days:
        services.monitoring_day_run(day=day)


def _kinds(need, day):
    return set(
        Alert.objects.unscoped()
        .filter(need=need, period=Period.DAY, period_start=day)
        .values_list("kind", flat=True)
    )


@pytest.fixture
def week_of_normal_then_shift(topics):
    need, version = topics
    days = {DAY - timedelta(days=i): NORMAL for i in range(7, 0, -1)}
    days[DAY] = SHIFTED
    _replay(need, version, days)
    return need, version


def test_normal_days_raise_no_alert(week_of_normal_then_shift):
    need, _ = week_of_normal_then_shift
    assert not Alert.objects.unscoped().filter(period_start__lt=DAY).exists()
    report = DriftReport.objects.unscoped().get(
        need=need, period=Period.DAY, period_start=DAY - timedelta(days=1)
    )
    assert report.psi == pytest.approx(0.0, abs=1e-12)
    assert report.baseline_source == BaselineSource.SNAPSHOT


def test_shifted_day_has_the_expected_psi_and_raises_drift_and_rare_class_alerts(
    week_of_normal_then_shift,
):
    need, _ = week_of_normal_then_shift
    report = DriftReport.objects.unscoped().get(need=need, period=Period.DAY, period_start=DAY)
    eps = 1e-4
    expected_psi = (
        (0.75 - 0.5) * math.log(0.75 / 0.5)
        + (0.25 - 0.4) * math.log(0.25 / 0.4)
        + (eps - 0.1) * math.log(eps / 0.1)
    )
    assert report.psi == pytest.approx(expected_psi, rel=1e-9)
    assert report.volume == 200
    assert report.observed == {"t.a": 0.75, "t.b": 0.25, "t.c": 0.0}
    assert _kinds(need, DAY) == {AlertKind.DRIFT, AlertKind.RARE_CLASS}
    rare = Alert.objects.unscoped().get(need=need, kind=AlertKind.RARE_CLASS)
    assert rare.severity == "critical"
    assert rare.evidence["labels"][0]["label"] == "t.c"
    assert rare.evidence["labels"][0]["expected"] == pytest.approx(20.0)
    drift_alert = Alert.objects.unscoped().get(need=need, kind=AlertKind.DRIFT)
    assert drift_alert.evidence["psi"] == pytest.approx(expected_psi, rel=1e-9)
    assert drift_alert.evidence["top_movers"][0]["label"] == "t.a"


def test_rerunning_a_day_keeps_one_alert_per_kind_and_period(week_of_normal_then_shift):
    need, _ = week_of_normal_then_shift
    before = list(Alert.objects.unscoped().order_by("pk").values_list("pk", "kind"))
    alert = Alert.objects.unscoped().get(kind=AlertKind.DRIFT)
    services.alert_acknowledge(alert=alert, user=None)
    services.monitoring_day_run(day=DAY)
    run_daily_monitoring.delay(day=DAY.isoformat())
    assert list(Alert.objects.unscoped().order_by("pk").values_list("pk", "kind")) == before
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None


def test_psi_below_threshold_does_not_alert(topics):
    need, version = topics
    NeedMonitoringConfig.objects.create(
        need=need, tenant=need.tenant, psi_threshold=5.0, js_threshold=0.9
    )
    _replay(need, version, {DAY: SHIFTED})
    assert _kinds(need, DAY) == {AlertKind.RARE_CLASS}


def test_reference_window_baseline_replaces_the_snapshot(topics):
    need, version = topics
    # The snapshot says 50/40/10, but the chosen reference window looked like the shifted day.
    NeedMonitoringConfig.objects.create(
        need=need,
        tenant=need.tenant,
        baseline_source=BaselineSource.WINDOW,
        reference_start=DAY - timedelta(days=2),
        reference_end=DAY - timedelta(days=1),
    )
    _replay(
        need,
        version,
        {DAY - timedelta(days=2): SHIFTED, DAY - timedelta(days=1): SHIFTED, DAY: SHIFTED},
    )
    report = DriftReport.objects.unscoped().get(need=need, period=Period.DAY, period_start=DAY)
    assert report.baseline_source == BaselineSource.WINDOW
    assert report.baseline == {"t.a": 0.75, "t.b": 0.25}
    assert report.psi == pytest.approx(0.0, abs=1e-12)
    assert AlertKind.DRIFT not in _kinds(need, DAY)


def test_volume_collapse_raises_an_alert_but_small_samples_do_not_drift(week_of_normal_then_shift):
    need, version = week_of_normal_then_shift
    next_day = DAY + timedelta(days=1)
    _replay(need, version, {next_day: {"t.a": 10}})
    alert = Alert.objects.unscoped().get(
        need=need, period_start=next_day, kind=AlertKind.VOLUME_COLLAPSE
    )
    assert alert.evidence["volume"] == 10
    assert alert.evidence["reference_volume"] == pytest.approx(200.0)
    assert alert.evidence["drop_pct"] == pytest.approx(95.0)
    assert AlertKind.DRIFT not in _kinds(need, next_day)  # 10 predictions < min_volume


def test_a_day_without_any_prediction_is_a_critical_collapse(week_of_normal_then_shift):
    need, _ = week_of_normal_then_shift
    empty = DAY + timedelta(days=1)
    services.monitoring_day_run(day=empty)
    alert = Alert.objects.unscoped().get(need=need, period_start=empty)
    assert (alert.kind, alert.severity) == (AlertKind.VOLUME_COLLAPSE, "critical")


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


def _ctr_scenario(need):
    events = []
    for i in range(7, 0, -1):
        day = DAY - timedelta(days=i)
        events += _feedback(need, day, "t.a", "impression", 100, "n")
        events += _feedback(need, day, "t.a", "click", 10, "n")
        events += _feedback(need, day, "t.b", "impression", 100, "n")
        events += _feedback(need, day, "t.b", "click", 10, "n")
        events += _feedback(need, day, "t.b", "wrong_tag", 1, "n")
    events += _feedback(need, DAY, "t.a", "impression", 100, "s")
    events += _feedback(need, DAY, "t.a", "click", 3, "s")  # CTR 10% -> 3%
    events += _feedback(need, DAY, "t.b", "impression", 100, "s")
    events += _feedback(need, DAY, "t.b", "click", 10, "s")
    events += _feedback(need, DAY, "t.b", "wrong_tag", 8, "s")  # 1% -> 8%
    services.feedback_record(tenant=need.tenant, events=events)
    for i in range(7, -1, -1):
        services.monitoring_day_run(day=DAY - timedelta(days=i))


def test_ctr_drop_and_negative_feedback_rise_raise_alerts(topics):
    need, _ = topics
    NeedMonitoringConfig.objects.create(need=need, tenant=need.tenant, feedback_alpha=0.01)
    _ctr_scenario(need)

    assert _kinds(need, DAY) == {AlertKind.CTR_DROP, AlertKind.NEGATIVE_RISE}
    assert not Alert.objects.unscoped().filter(period_start__lt=DAY).exists()
    ctr = Alert.objects.unscoped().get(kind=AlertKind.CTR_DROP)
    assert [r["label"] for r in ctr.evidence["labels"]] == ["t.a"]
    assert ctr.evidence["labels"][0]["ctr"] == pytest.approx(0.03)
    assert ctr.evidence["labels"][0]["reference_ctr"] == pytest.approx(0.10)
    assert ctr.evidence["labels"][0]["change_pct"] == pytest.approx(-70.0)
    # One-sided binomial test: P(X <= 3 | n = 100, p = 0.10), by hand.
    p_ctr = sum(math.comb(100, k) * 0.1**k * 0.9 ** (100 - k) for k in range(4))
    assert ctr.evidence["labels"][0]["p_value"] == pytest.approx(p_ctr, rel=1e-9)
    negative = Alert.objects.unscoped().get(kind=AlertKind.NEGATIVE_RISE)
    assert [r["label"] for r in negative.evidence["labels"]] == ["t.b"]
    assert negative.evidence["labels"][0]["change_pct"] == pytest.approx(700.0)


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_new_alerts_are_delivered_to_webhook_and_email(topics, django_capture_on_commit_callbacks):
    need, version = topics
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hook.received = []
    tenant = need.tenant
    tenant.alert_email = "oncall@alpha.example.com"
    tenant.alert_webhook_url = f"http://127.0.0.1:{server.server_port}/hook"
    tenant.save()
    try:
        log_predictions(need=need, version=version, day=DAY, counts=SHIFTED)
        with django_capture_on_commit_callbacks(execute=True):
            services.monitoring_day_run(day=DAY)
    finally:
        server.shutdown()
    assert sorted(p["kind"] for p in _Hook.received) == ["drift", "rare_class"]
    assert _Hook.received[0]["need"] == "topics"
    assert len(mail.outbox) == 2 and mail.outbox[0].to == ["oncall@alpha.example.com"]
    assert all(a.delivered_at for a in Alert.objects.unscoped().all())


def test_failed_delivery_is_recorded_and_does_not_fail_the_task(topics):
    need, version = topics
    NeedMonitoringConfig.objects.create(
        need=need, tenant=need.tenant, alert_webhook_url="http://127.0.0.1:9/unreachable"
    )
    log_predictions(need=need, version=version, day=DAY, counts=SHIFTED)
    services.monitoring_day_run(day=DAY)
    alert = Alert.objects.unscoped().get(kind=AlertKind.DRIFT)
    outcome = deliver_alert.delay(alert.pk).get()
    alert.refresh_from_db()
    assert "webhook" in outcome["errors"][0]
    assert alert.delivery_error.startswith("webhook:")
    assert alert.delivered_at is None


def test_weekly_drift_report_uses_the_week_of_daily_aggregates(week_of_normal_then_shift):
    need, _ = week_of_normal_then_shift
    week = services.monitoring_week_run(start=DAY)
    assert week["prediction_rows"] == 1
    monday = DAY - timedelta(days=DAY.weekday())
    report = DriftReport.objects.unscoped().get(need=need, period=Period.WEEK, period_start=monday)
    # Monday..Wednesday: two normal days (200 each) and the shifted day.
    assert report.volume == 600
    assert report.observed["t.c"] == pytest.approx(40 / 600)


def test_a_feedback_change_that_is_not_significant_does_not_alert(topics):
    # Same relative changes, but at the default alpha of 0.001 a 10% -> 3% CTR on 100 impressions
    # (p ~ 0.008) is not conclusive; 1% -> 8% negative (p ~ 1e-5) still is.
    need, _ = topics
    _ctr_scenario(need)
    assert _kinds(need, DAY) == {AlertKind.NEGATIVE_RISE}
