"""The monitoring REST API: series, drift, feedback rates, alerts, acknowledge and snooze."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from monitoring import services
from monitoring.models import Alert, AlertKind, AlertStatus, Period, Severity
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory, set_need_labels
from tests.monitoring.conftest import DAY
from tests.monitoring.factories import log_predictions

pytestmark = pytest.mark.django_db


@pytest.fixture
def monitored(topics):
    """Two days of 400 predictions and one of 50 (too few for drift), with some feedback."""
    need, version = topics
    set_need_labels(need, label_mapping={"Alpha": "t.a", "Beta": "t.b", "Gamma": "t.c"})
    days = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    counts = [{"t.a": 200, "t.b": 160, "t.c": 40}] * 2 + [{"t.a": 30, "t.b": 20}]
    for day, c in zip(days, counts, strict=True):
        log_predictions(need=need, version=version, day=day, counts=c)
    at = datetime.combine(DAY, time(9), tzinfo=UTC)
    events = [
        {"event_id": f"e{i}", "item_id": f"i{i}", "label": "t.a", "need": need, "type": t, "at": at}
        for i, t in enumerate(["impression"] * 10 + ["click"] * 2 + ["wrong_tag"])
    ]
    services.feedback_record(tenant=need.tenant, events=events)
    for day in days:
        services.monitoring_run(period=Period.DAY, start=day)
    services.monitoring_run(period=Period.WEEK, start=DAY)
    alert = Alert.objects.create(
        tenant=need.tenant,
        need=need,
        kind=AlertKind.LABEL_SHARE,
        label="t.c",
        severity=Severity.WARNING,
        first_seen=DAY,
        last_seen=DAY,
        message="t.c fell",
        evidence={
            "value": 0.0,
            "reference": 0.1,
            "observed": 0,
            "expected": 40,
            "sample": 400,
            "p_value": 1e-9,
            "adjusted_p": 3e-8,
            "evidence_days": 1,
            "reference_days": 14,
            "days": [{"day": DAY.isoformat(), "status": "flagged", "value": 0.0, "reference": 0.1}],
        },
    )
    return need, alert


@pytest.fixture
def reviewer_key(tenant_a):
    key = ApiKeyFactory(tenant=tenant_a, name="loop", scopes=["read", "feedback"])
    return api_client_for_key(key)


def test_daily_and_weekly_aggregates_with_tenant_label_names(api_a, monitored):
    response = api_a.get("/api/v1/monitoring/needs/topics/aggregates?period=day")
    assert response.status_code == 200
    rows = response.json()
    assert [r["period_start"] for r in rows] == [
        (DAY - timedelta(days=i)).isoformat() for i in (2, 1, 0)
    ]
    assert rows[0]["volume"] == 400
    assert {(lb["label"], lb["name"], lb["count"]) for lb in rows[0]["labels"]} == {
        ("t.a", "Alpha", 200),
        ("t.b", "Beta", 160),
        ("t.c", "Gamma", 40),
    }
    week = api_a.get("/api/v1/monitoring/needs/topics/aggregates?period=week").json()
    assert len(week) == 1 and week[0]["volume"] == 850


def test_drift_says_insufficient_data_below_the_minimum_sample(api_a, monitored):
    rows = api_a.get("/api/v1/monitoring/needs/topics/drift").json()
    assert [r["state"] for r in rows] == ["stable", "stable", "insufficient_data"]
    assert rows[-1]["volume"] == 50 and rows[-1]["min_volume"] == 200
    assert rows[0]["psi"] == pytest.approx(0.0, abs=1e-12)


def test_ctr_and_negative_rate_per_label(api_a, monitored):
    [row] = api_a.get("/api/v1/monitoring/needs/topics/feedback").json()
    assert (row["label"], row["name"], row["impressions"]) == ("t.a", "Alpha", 10)
    assert row["ctr"] == pytest.approx(0.2) and row["negative_rate"] == pytest.approx(0.1)


def test_open_alerts_with_evidence_and_a_summary(api_a, monitored):
    body = api_a.get("/api/v1/monitoring/alerts").json()
    [alert] = body["results"]
    assert alert["kind"] == "label_share" and alert["label_name"] == "Gamma"
    assert alert["summary"].startswith("Gamma (t.c) fell from 10.0 %")
    assert alert["evidence"]["expected"] == 40 and alert["evidence"]["days"][0]["status"] == (
        "flagged"
    )
    assert api_a.get("/api/v1/monitoring/alerts?need=topics").json()["count"] == 1
    assert api_a.get("/api/v1/monitoring/alerts?need=nope").status_code == 404


def test_recent_includes_resolved_alerts(api_a, monitored):
    _, alert = monitored
    Alert.objects.dangerously_unscoped().filter(pk=alert.pk).update(
        status=AlertStatus.RESOLVED, last_seen=timezone.now().date() - timedelta(days=3)
    )
    assert api_a.get("/api/v1/monitoring/alerts").json()["count"] == 0
    recent = api_a.get("/api/v1/monitoring/alerts?status=recent").json()
    assert [a["status"] for a in recent["results"]] == ["resolved"]


def test_acknowledge_and_snooze_with_a_note(reviewer_key, monitored):
    _, alert = monitored
    response = reviewer_key.post(
        f"/api/v1/monitoring/alerts/{alert.pk}/acknowledge", {"note": "on it"}, format="json"
    )
    assert response.status_code == 200 and response.json()["ack_note"] == "on it"
    until = (timezone.now().date() + timedelta(days=3)).isoformat()
    response = reviewer_key.post(
        f"/api/v1/monitoring/alerts/{alert.pk}/snooze",
        {"until": until, "note": "vendor outage"},
        format="json",
    )
    assert response.status_code == 200
    assert (response.json()["snoozed_until"], response.json()["snooze_note"]) == (
        until,
        "vendor outage",
    )
    past = reviewer_key.post(
        f"/api/v1/monitoring/alerts/{alert.pk}/snooze", {"until": "2020-01-01"}, format="json"
    )
    assert past.status_code == 400


def test_a_read_only_key_or_a_viewer_cannot_acknowledge(tenant_a, monitored, client, bob):
    _, alert = monitored
    read_only = api_client_for_key(ApiKeyFactory(tenant=tenant_a, scopes=["read"]))
    assert read_only.get(f"/api/v1/monitoring/alerts/{alert.pk}").status_code == 200
    assert read_only.post(f"/api/v1/monitoring/alerts/{alert.pk}/acknowledge").status_code == 403
    client.force_login(bob)
    assert client.post(f"/api/v1/monitoring/alerts/{alert.pk}/acknowledge").status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/monitoring/needs/topics/aggregates",
        "/api/v1/monitoring/needs/topics/drift",
        "/api/v1/monitoring/needs/topics/feedback",
        "/api/v1/monitoring/alerts/{pk}",
    ],
)
def test_validates_ownership_on_reads(api_b, monitored, path):
    _, alert = monitored
    response = api_b.get(path.format(pk=alert.pk))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_validates_ownership_on_actions(tenant_b, monitored, client, charlie):
    _, alert = monitored
    key = api_client_for_key(ApiKeyFactory(tenant=tenant_b, scopes=["read", "feedback"]))
    assert key.post(f"/api/v1/monitoring/alerts/{alert.pk}/acknowledge").status_code == 404
    client.force_login(charlie)
    assert (
        client.post(
            f"/api/v1/monitoring/alerts/{alert.pk}/snooze",
            {"until": (timezone.now().date() + timedelta(days=1)).isoformat()},
            content_type="application/json",
        ).status_code
        == 404
    )
    assert key.get("/api/v1/monitoring/alerts").json()["count"] == 0
    alert.refresh_from_db()
    assert alert.acknowledged_at is None and alert.snoozed_until is None


def test_the_endpoints_are_in_the_openapi_schema(api_a):
    paths = api_a.get("/api/schema/?format=json").json()["paths"]
    for path in (
        "/api/v1/monitoring/needs/{slug}/aggregates",
        "/api/v1/monitoring/needs/{slug}/drift",
        "/api/v1/monitoring/needs/{slug}/feedback",
        "/api/v1/monitoring/alerts",
        "/api/v1/monitoring/alerts/{id}",
        "/api/v1/monitoring/alerts/{id}/acknowledge",
        "/api/v1/monitoring/alerts/{id}/snooze",
    ):
        assert path in paths, path
    assert "monitoring" in paths["/api/v1/monitoring/alerts"]["get"]["tags"]
