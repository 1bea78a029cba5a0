"""Lessons travel to similar needs (shareable ones only across tenants); the portal pages edit,
keep revisions, refuse stale edits and sanitise Markdown; staff get the overview."""

from __future__ import annotations

import pytest

from records import services
from records.models import Section
from tests.factories import MembershipFactory, NeedFactory, UserFactory
from tests.monitoring.factories import make_monitored_need
from tests.taxonomy.factories import build_news_tree

pytestmark = pytest.mark.django_db


@pytest.fixture
def b_record(tenant_b, charlie):
    """tenant B's record: a private goal, a shareable lesson and a private one, both on sport."""
    build_news_tree()
    need, _ = make_monitored_need(tenant=tenant_b, slug="b-sport", baseline={"news.sport": 9})
    services.section_save(
        need=need,
        kind="goal",
        body="SECRET B GOAL: beat the rival desk",
        base_revision=0,
        author=charlie,
    )
    shared = services.item_create(
        need=need,
        kind="lesson",
        title="Sport recall needs match reports",
        author=charlie,
        body="Add **match reports** to the training data.",
        labels=["news.sport"],
        tags=["data"],
        shareable=True,
    )
    private = services.item_create(
        need=need,
        kind="lesson",
        title="PRIVATE B LESSON",
        author=charlie,
        body="internal only",
        labels=["news.sport"],
        shareable=False,
    )
    return need, shared, private


def test_related_lessons_cross_tenants_only_when_shareable(client, alice, tenant_a, b_record):
    need = NeedFactory(tenant=tenant_a, slug="my-sport", requested_labels=["news.sport"])
    client.force_login(alice)
    page = client.get(f"/tenant/needs/{need.slug}/").content.decode()
    assert "Sport recall needs match reports" in page
    assert "<strong>match reports</strong>" in page
    assert "PRIVATE B LESSON" not in page and "SECRET B GOAL" not in page
    assert "/records/b-sport" not in page  # no link to the record it came from
    # The registration form's live suggestions show it too (by label name or key).
    partial = client.get("/tenant/needs/suggestions/?requested_labels=Sport").content.decode()
    assert "Sport recall needs match reports" in partial
    api = client.get("/api/v1/lessons/related/?labels=news.sport").json()
    assert [row["title"] for row in api] == ["Sport recall needs match reports"]
    assert api[0]["own"] is False and api[0]["need"] is None
    # A parent label overlaps too; an unrelated one does not.
    assert client.get("/api/v1/lessons/related/?labels=news").json()
    assert client.get("/api/v1/lessons/related/?labels=news.tech").json() == []


def test_own_lessons_are_offered_whether_shared_or_not(client, tenant_b, charlie, b_record):
    need = NeedFactory(tenant=tenant_b, slug="b-other", requested_labels=["news.sport"])
    client.force_login(charlie)
    page = client.get(f"/tenant/needs/{need.slug}/").content.decode()
    assert "PRIVATE B LESSON" in page and "Sport recall" in page


def test_record_page_shows_sections_timeline_and_sanitised_markdown(client, alice, live_need):
    services.section_save(
        need=live_need,
        kind="data",
        body="**bold** <script>alert('x')</script> [bad](javascript:alert(1)) <img src=x onerror=alert(1)>",
        base_revision=0,
        author=alice,
    )
    client.force_login(alice)
    response = client.get(f"/records/{live_need.slug}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>bold</strong>" in page
    assert "<script>alert" not in page and "javascript:" not in page and "onerror" not in page
    assert 'id="timeline-entries"' in page and "production: v1 → v2" in page


def test_other_tenant_gets_404_on_every_record_page(client, charlie, live_need, alice):
    section = services.section_save(
        need=live_need, kind="goal", body="x", base_revision=0, author=alice
    )
    client.force_login(charlie)
    for path in (
        f"/records/{live_need.slug}/",
        f"/records/{live_need.slug}/export.md",
        f"/records/{live_need.slug}/sections/goal/edit/",
        f"/records/{live_need.slug}/items/{section.pk}/history/",
        f"/records/{live_need.slug}/items/new/?kind=lesson",
    ):
        assert client.get(path).status_code == 404, path


def test_viewer_reads_but_cannot_edit(client, bob, live_need):
    client.force_login(bob)
    page = client.get(f"/records/{live_need.slug}/").content.decode()
    assert "edit-section" not in page
    assert client.get(f"/records/{live_need.slug}/sections/goal/edit/").status_code == 403
    assert (
        client.post(
            f"/records/{live_need.slug}/sections/goal/edit/", {"body": "x", "base_revision": 0}
        ).status_code
        == 403
    )


def test_portal_edit_then_a_stale_edit_shows_the_conflict(client, alice, tenant_a, live_need):
    dave = UserFactory(username="dave")
    MembershipFactory(user=dave, tenant=tenant_a, role="requester")
    url = f"/records/{live_need.slug}/sections/tried/edit/"
    client.force_login(alice)
    assert client.post(url, {"body": "Tried SVM", "base_revision": 0}).status_code == 302
    # Dave opened revision 1 too; alice saves revision 2 first.
    assert client.post(url, {"body": "Tried SVM and NB", "base_revision": 1}).status_code == 302
    client.force_login(dave)
    conflict = client.post(url, {"body": "Tried SVM, and it was slow", "base_revision": 1})
    assert conflict.status_code == 409
    page = conflict.content.decode()
    assert "Someone else saved this section" in page
    assert "Tried SVM, and it was slow" in page  # their text is kept
    assert 'name="base_revision" value="2"' in page
    # Saving again (now based on revision 2) is deliberate and wins.
    assert (
        client.post(url, {"body": "Tried SVM, and it was slow", "base_revision": 2}).status_code
        == 302
    )
    section = Section.objects.for_tenant(tenant_a).get(kind="tried")
    history = client.get(f"/records/{live_need.slug}/items/{section.pk}/history/").content.decode()
    assert "Revision 3" in history and "dave" in history and "alice" in history


def test_portal_problem_with_retrospective_prefill(client, alice, live_need):
    client.force_login(alice)
    form = client.get(f"/records/{live_need.slug}/items/new/?kind=retrospective&milestone=incident")
    assert form.status_code == 200
    assert "What changed since" in form.content.decode()
    version = live_need.model.versions.get(version=2)
    created = client.post(
        f"/records/{live_need.slug}/items/new/",
        {
            "kind": "problem",
            "title": "Tech mistaken for business",
            "body": "Seen after launch",
            "status": "open",
            "model_version": version.pk,
            "labels": "",
            "tags": "confusion",
            "base_revision": 0,
        },
    )
    assert created.status_code == 302
    page = client.get(f"/records/{live_need.slug}/").content.decode()
    assert "Tech mistaken for business" in page and "tfidf-logreg v2" in page


def test_search_page(client, alice, live_need):
    services.section_save(
        need=live_need,
        kind="next",
        body="Try a multilingual tokenizer",
        base_revision=0,
        author=alice,
    )
    client.force_login(alice)
    page = client.get("/records/?q=tokenizer").content.decode()
    assert 'id="search-results"' in page and "Next ideas" in page
    assert client.get("/records/?q=nothingmatches").content.decode().count("search-hit") == 0


def test_staff_overview_lists_live_needs_without_retrospective_and_old_problems(
    client, staff_user, alice, live_need, tenant_b
):
    from datetime import timedelta

    from django.utils import timezone

    other, _ = make_monitored_need(tenant=tenant_b, slug="b-live", baseline={"news.sport": 1})
    problem = services.item_create(
        need=live_need, kind="problem", title="Old open problem", body="", author=alice
    )
    Section.objects.for_tenant(live_need.tenant).filter(pk=problem.pk).update(
        created_at=timezone.now() - timedelta(days=30)
    )
    services.item_create(need=other, kind="retrospective", title="Launch", body="", author=None)
    client.force_login(staff_user)
    page = client.get("/admin/records/projectrecord/overview/?days=14").content.decode()
    assert "desk-topics" in page and "b-live" not in page.split('id="stale-problems"')[0]
    assert "Old open problem" in page
    assert (
        "Old open problem"
        not in client.get("/admin/records/projectrecord/overview/?days=60").content.decode()
    )
    listing = client.get("/admin/records/projectrecord/?open_problems=yes").content.decode()
    assert "desk-topics" in listing and "b-live" not in listing
    assert client.get("/admin/records/section/").status_code == 200
