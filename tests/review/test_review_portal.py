"""The review pages as tenant members use them: the queue, verdicts, the round page, triage,
reporting a wrong tag from try-it, settings; tenancy and roles."""

from __future__ import annotations

import pytest

from review import services
from review.models import Case, CaseSource, CaseStatus, ReviewVerdict
from tenants.models import Role
from tests.factories import MembershipFactory, UserFactory
from tests.review.factories import live_need, log_stream, texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def topics(tenant_a):
    need, version = live_need(tenant_a)
    log_stream(need, version, {"t.a": texts("a", 10), "t.b": texts("b", 4)})
    return need


def member(tenant, name, role):
    user = UserFactory(username=name)
    MembershipFactory(user=user, tenant=tenant, role=role)
    return user


def test_queue_shows_an_item_and_records_a_verdict(client, topics):
    ann = member(topics.tenant, "ann", Role.REVIEWER)
    review_round = services.round_start(need=topics, sample_size=3)
    client.force_login(ann)
    page = client.get(f"/review/rounds/{review_round.pk}/queue/")
    assert page.status_code == 200
    item = page.context["item"]
    assert item.text.encode() in page.content or item.text[:20].encode() in page.content
    assert b'id="verdict-form"' in page.content and b"review/queue.js" in page.content
    response = client.post(
        f"/review/rounds/{review_round.pk}/items/{item.pk}/verdict/",
        {"decision": "correct", "labels": ["t.b" if item.predicted_labels != ["t.b"] else "t.a"]},
    )
    assert response.status_code == 302
    verdict = ReviewVerdict.objects.for_tenant(topics.tenant).get(item=item, reviewer=ann)
    assert verdict.decision == "correct"
    assert Case.objects.for_tenant(topics.tenant).filter(review_item=item).exists()
    # The next visit shows the next item (progress moves on).
    assert client.get(f"/review/rounds/{review_round.pk}/queue/").context["item"].pk != item.pk


def test_queue_needs_the_reviewer_role(client, topics, bob):
    review_round = services.round_start(need=topics, sample_size=2)
    client.force_login(bob)  # a viewer
    assert client.get(f"/review/rounds/{review_round.pk}/queue/").status_code == 403
    assert client.get(f"/review/rounds/{review_round.pk}/").status_code == 200


def test_another_tenants_round_and_case_are_404(client, topics, charlie):
    review_round = services.round_start(need=topics, sample_size=2)
    case = services.case_create(need=topics, data={"text": "secret"}, source=CaseSource.API)
    client.force_login(charlie)
    assert client.get(f"/review/rounds/{review_round.pk}/").status_code == 404
    assert client.get(f"/review/rounds/{review_round.pk}/queue/").status_code == 404
    assert client.get(f"/review/cases/{case.pk}/").status_code == 404
    assert client.post(f"/review/cases/{case.pk}/accept/").status_code == 404
    assert client.get("/review/needs/topics/").status_code == 404


def test_round_page_shows_result_and_sign_off(client, alice, topics):
    review_round = services.round_start(need=topics, sample_size=4)
    for item in review_round.items.all():
        services.verdict_record(item=item, decision="confirm", api_key_prefix="k")
    client.force_login(alice)
    client.post(f"/review/rounds/{review_round.pk}/close/")
    page = client.get(f"/review/rounds/{review_round.pk}/")
    assert page.context["result"]["accuracy"]["estimate"] == 1.0
    assert b'id="chart-trend"' in page.content and b"review/trend.js" in page.content
    assert b'id="signoff-button"' in page.content
    client.post(f"/review/rounds/{review_round.pk}/sign-off/", {"decision": "meets", "note": "ok"})
    review_round.refresh_from_db()
    assert review_round.signoff == "meets" and review_round.signoff_by == alice


def test_triage_page_prefills_the_suggestion_and_accepts(client, alice, topics):
    case = services.case_create(
        need=topics, data={"text": "zz qq", "suggested_labels": ["t.a"]}, source=CaseSource.API
    )
    client.force_login(alice)
    page = client.get(f"/review/cases/{case.pk}/")
    assert page.context["suggested"] == "bad_input" and page.context["current_cause"] == "bad_input"
    client.post(
        f"/review/cases/{case.pk}/triage/",
        {"cause": "model_error", "labels": ["t.a"], "then": "accept"},
    )
    case.refresh_from_db()
    assert case.status == CaseStatus.ACCEPTED and case.cause == "model_error"
    assert case.suggested_cause == "bad_input"  # the override is kept beside the suggestion


def test_report_a_wrong_tag_from_try_it(client, alice, topics):
    client.force_login(alice)
    form = client.post(
        "/review/cases/report/", {"need": "topics", "text": "a misread text", "predicted": ["t.a"]}
    )
    assert form.status_code == 200 and b'id="report-form"' in form.content
    done = client.post(
        "/review/cases/report/",
        {
            "need": "topics",
            "text": "a misread text",
            "predicted": ["t.a"],
            "labels": ["t.b"],
            "confirm": "1",
        },
    )
    assert done.status_code == 302
    case = Case.objects.for_tenant(topics.tenant).get()
    assert case.source == CaseSource.REPORT and case.reported_by == alice
    assert case.suggested_labels == ["t.b"] and case.predicted_labels == ["t.a"]
    again = client.post(
        "/review/cases/report/",
        {"need": "topics", "text": "a misread text", "confirm": "1"},
        follow=True,
    )
    assert b"duplicate_case" in again.content
    assert Case.objects.for_tenant(topics.tenant).count() == 1


def test_try_it_result_has_the_report_button():
    from django.template.loader import render_to_string

    html = render_to_string(
        "serving/_try_result.html",
        {
            "result": {"labels": ["Sport"]},
            "ranked": [],
            "model": {"name": "m", "version": 1},
            "need": "topics",
            "text": "hello",
        },
    )
    assert 'id="report-wrong-tag"' in html and 'action="/review/cases/report/"' in html


def test_settings_form_for_admins_only(client, alice, bob, topics):
    client.force_login(bob)
    assert client.post("/review/needs/topics/settings/", {}).status_code == 403
    client.force_login(alice)
    client.post(
        "/review/needs/topics/settings/",
        {
            "accuracy_target": "0.8",
            "sample_size": "50",
            "window_days": "14",
            "double_review_share": "0.1",
            "held_out_share": "0.25",
            "schedule_crontab": "0 7 * * 1",
        },
    )
    config = services.config_for(topics)
    assert config.accuracy_target == 0.8 and config.periodic_task_id is not None
    page = client.get("/review/needs/topics/")
    assert page.status_code == 200 and b'id="gaps-table"' in page.content


def test_admin_lists_rounds_and_cases_for_staff(client, staff_user, topics):
    review_round = services.round_start(need=topics, sample_size=2)
    case = services.case_create(need=topics, data={"text": "admin case"}, source=CaseSource.API)
    client.force_login(staff_user)
    for url in [
        "/admin/review/reviewround/",
        f"/admin/review/reviewround/{review_round.pk}/change/",
        "/admin/review/case/",
        f"/admin/review/case/{case.pk}/change/",
        "/admin/review/needreviewconfig/",
        "/admin/review/reviewverdict/",
    ]:
        assert client.get(url).status_code == 200, url


def test_the_beat_sweep_starts_alert_rounds_and_collects_cases(topics):
    from django.utils import timezone

    from monitoring.models import Alert, AlertKind, Severity
    from review.models import ReviewRound
    from workers.tasks.monitoring import review_sweep

    today = timezone.now().date()
    Alert.objects.create(
        tenant_id=topics.tenant_id,
        need=topics,
        kind=AlertKind.DRIFT,
        severity=Severity.WARNING,
        first_seen=today,
        last_seen=today,
        message="d",
    )
    first = review_sweep.apply().get()
    assert len(first["rounds"]) == 1
    assert review_sweep.apply().get()["rounds"] == []
    assert ReviewRound.objects.for_tenant(topics.tenant).count() == 1
