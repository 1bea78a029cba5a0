"""Portal dashboards and the admin dashboard: tenancy, roles, chart data and acknowledging."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring import services
from monitoring.models import Alert, AlertKind, Period
from tests.factories import set_need_labels
from tests.monitoring.conftest import DAY
from tests.monitoring.factories import log_predictions, make_monitored_need

pytestmark = pytest.mark.django_db


@pytest.fixture
def drifted(topics):
    """Eight usual days, then t.c ("Gamma" to this tenant) vanishes."""
    need, version = topics
    set_need_labels(need, label_mapping={"Alpha": "t.a", "Beta": "t.b", "Gamma": "t.c"})
    for i in range(8, 0, -1):
        log_predictions(
            need=need,
            version=version,
            day=DAY - timedelta(days=i),
            counts={"t.a": 200, "t.b": 160, "t.c": 40},
        )
    log_predictions(need=need, version=version, day=DAY, counts={"t.a": 220, "t.b": 180})
    for i in range(8, -1, -1):
        services.monitoring_run(period=Period.DAY, start=DAY - timedelta(days=i))
    services.monitoring_run(period=Period.WEEK, start=DAY)
    return need


def test_overview_lists_needs_and_open_alerts(client, alice, drifted):
    client.force_login(alice)
    response = client.get("/monitoring/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Topics" in html and "A label&#x27;s share changed" in html
    # Evidence for people: a sentence with the tenant's label name (global key in the tooltip),
    # a sparkline and a small table; never a dict.
    assert 'title="t.c">Gamma</span> fell from 10.0 %' in html
    assert '<svg class="sparkline"' in html and "evidence-table" in html
    assert "{&#x27;" not in html and "{'" not in html


def test_need_dashboard_embeds_chart_series(client, alice, drifted):
    client.force_login(alice)
    response = client.get("/monitoring/needs/topics/")
    assert response.status_code == 200
    data = response.context["chart_data"]
    assert data["days"] == [(DAY - timedelta(days=i)).isoformat() for i in range(8, -1, -1)]
    assert data["shares"]["t.c"] == [0.1] * 8 + [0.0]
    assert data["baseline"] == {"t.a": 0.5, "t.b": 0.4, "t.c": 0.1}
    assert data["psi"][0] == pytest.approx(0.0, abs=1e-12) and data["psi"][-1] > 0.2
    assert data["volume"] == [400] * 9
    # The tenant's names, and one colour per label shared by every chart.
    assert data["names"] == {"t.a": "Alpha", "t.b": "Beta", "t.c": "Gamma"}
    assert len(set(data["colors"].values())) == 3
    html = response.content.decode()
    assert 'id="monitoring-data"' in html and "chart.umd.min.js" in html
    embedded = re.search(r'id="monitoring-data"[^>]*>(.*?)</script>', html, re.S).group(1)
    assert json.loads(embedded)["shares"]["t.c"][-1] == 0.0
    wow = response.context["wow"]
    assert [(r["label"], r["name"]) for r in wow["rows"]] == [
        ("t.a", "Alpha"),
        ("t.b", "Beta"),
        ("t.c", "Gamma"),
    ]


def test_other_tenants_need_is_404(client, charlie, drifted):
    client.force_login(charlie)
    assert client.get("/monitoring/needs/topics/").status_code == 404
    assert "Topics" not in client.get("/monitoring/").content.decode()


def test_other_tenants_alert_cannot_be_acknowledged(client, charlie, drifted):
    alert = Alert.objects.dangerously_unscoped().get(kind=AlertKind.LABEL_SHARE)
    client.force_login(charlie)
    assert client.post(f"/monitoring/alerts/{alert.pk}/ack/").status_code == 404
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_reviewer_acknowledges_with_htmx_and_viewer_cannot(client, alice, bob, drifted):
    alert = Alert.objects.dangerously_unscoped().get(kind=AlertKind.LABEL_SHARE)
    client.force_login(bob)
    assert client.post(f"/monitoring/alerts/{alert.pk}/ack/").status_code == 403
    assert client.post(f"/monitoring/alerts/{alert.pk}/snooze/").status_code == 403
    client.force_login(alice)
    response = client.post(
        f"/monitoring/alerts/{alert.pk}/ack/", {"note": "feed fixed"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "acknowledged by alice" in html and "feed fixed" in html
    alert.refresh_from_db()
    assert alert.acknowledged_by == alice and alert.ack_note == "feed fixed"
    # Acknowledged is not resolved: it stays open (and resolves itself after clean days).
    assert alert in services_open(alice)


def test_reviewer_snoozes_with_a_note(client, alice, charlie, drifted):
    alert = Alert.objects.dangerously_unscoped().get(kind=AlertKind.LABEL_SHARE)
    client.force_login(charlie)
    assert client.post(f"/monitoring/alerts/{alert.pk}/snooze/", {"days": "7"}).status_code == 404
    client.force_login(alice)
    response = client.post(
        f"/monitoring/alerts/{alert.pk}/snooze/",
        {"days": "7", "note": "known outage", "next": "/monitoring/needs/topics/"},
    )
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.snoozed_until == timezone.now().date() + timedelta(days=7)
    assert alert.snooze_note == "known outage"
    response = client.post(
        f"/monitoring/alerts/{alert.pk}/snooze/", {"days": "400"}, HTTP_HX_REQUEST="true"
    )
    assert "Snooze for 1 to 90 days." in response.content.decode()


def services_open(user):
    from monitoring.selectors import open_alerts

    return open_alerts(tenant=user.memberships.get().tenant)


def test_need_without_data_says_so(client, alice, tenant_a):
    make_monitored_need(tenant=tenant_a, slug="quiet", baseline={"q.a": 1, "q.b": 1})
    client.force_login(alice)
    response = client.get("/monitoring/needs/quiet/")
    assert response.status_code == 200
    assert "No predictions have been aggregated" in response.content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get("/monitoring/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_admin_dashboard_lists_all_needs_for_staff_only(
    client, staff_user, alice, drifted, tenant_b
):
    other, version = make_monitored_need(
        tenant=tenant_b, slug="other", baseline={"o.a": 1, "o.b": 1}
    )
    log_predictions(need=other, version=version, day=DAY, counts={"o.a": 5})
    services.monitoring_run(period=Period.DAY, start=DAY)
    client.force_login(staff_user)
    index = client.get("/admin/").content.decode()
    assert "/admin/monitoring/monitoringdashboard/" in index
    response = client.get("/admin/monitoring/monitoringdashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "alpha" in html and "bravo" in html and "chart-all-psi" in html
    assert set(response.context["psi_chart"]["series"]) == {"alpha/topics", "bravo/other"}
    client.force_login(alice)
    assert client.get("/admin/monitoring/monitoringdashboard/").status_code == 302


def test_admin_alert_changelist_and_acknowledge_action(client, staff_user, drifted):
    client.force_login(staff_user)
    assert client.get("/admin/monitoring/alert/").status_code == 200
    ids = list(Alert.objects.dangerously_unscoped().values_list("pk", flat=True))
    response = client.post(
        "/admin/monitoring/alert/", {"action": "acknowledge", "_selected_action": ids}
    )
    assert response.status_code == 302
    assert not Alert.objects.dangerously_unscoped().filter(acknowledged_at__isnull=True).exists()


def test_admin_need_settings_show_every_rule_threshold(client, staff_user, drifted):
    client.force_login(staff_user)
    html = client.get("/admin/monitoring/needmonitoringconfig/add/").content.decode()
    for field in (
        "psi_threshold",
        "min_volume",
        "rare_share_max",
        "rare_min_expected",
        "share_ratio",
        "share_trend_days",
        "feedback_alpha",
        "correction",
        "escalate_after_days",
        "resolve_after_clean_days",
    ):
        assert f'name="{field}"' in html
