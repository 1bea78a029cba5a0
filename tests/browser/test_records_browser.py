"""A project record as a business unit uses it: after the demos, the record page shows the
written sections and the derived timeline; a section is edited and its revision shows; search
finds it; the export downloads one Markdown document."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command

from tenants.models import Role, Tenant
from tests.browser.csp import violations, watch_csp
from tests.conftest import login
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.browser


def test_record_timeline_edit_revision_search_and_export(live_server, page, screenshot, tmp_path):
    call_command("monitoring_demo", "--days", "8", "--shift-days", "3", stdout=StringIO())
    UserFactory(username="alice")  # the demo's tenant-a admin writes the generated record
    out = StringIO()
    call_command("records_demo", stdout=out)
    assert "tenant-a/news-topics: record written" in out.getvalue()
    user = UserFactory(username="rita")
    MembershipFactory(user=user, tenant=Tenant.objects.get(slug="tenant-a"), role=Role.REQUESTER)

    console = watch_csp(page)
    login(page, live_server, "rita")
    page.click("nav >> text=Records")
    page.wait_for_url("**/records/")
    page.click("#records a:has-text('News topics')")
    page.wait_for_url("**/records/news-topics/")
    timeline = page.locator("#timeline-entries")
    kinds = set(timeline.locator("li").evaluate_all("els => els.map(e => e.dataset.kind)"))
    assert {"need_requested", "alert", "snapshot", "label_set_revision"} <= kinds
    assert page.locator("#problems article.problem").count() >= 1
    screenshot(page, "record-page")

    # Edit "What was tried", save, and see the new revision with its diff.
    page.click("article[data-kind=tried] a.edit-section")
    page.wait_for_url("**/sections/tried/edit/")
    before = page.input_value("#id_body")
    page.fill("#id_body", before + "\n- Tried **ComplementNB** as a lighter baseline")
    screenshot(page, "record-edit")
    page.click("#save-section")
    page.wait_for_url("**/records/news-topics/")
    tried = page.locator("article[data-kind=tried]")
    assert "ComplementNB" in tried.locator("strong").all_inner_texts()
    assert "revision 2" in tried.inner_text()
    tried.locator("a:has-text('revision 2')").click()
    page.wait_for_url("**/history/")
    latest = page.locator("#revision-2")
    assert "rita" in latest.inner_text()
    assert "+- Tried **ComplementNB** as a lighter baseline" in latest.locator(".add").inner_text()
    assert page.locator("#revision-1 .revision-author").inner_text() == "alice"
    screenshot(page, "record-history")

    # Search finds the edited section (PostgreSQL full-text: "baselines" stems to "baseline").
    page.goto(f"{live_server.url}/records/")
    page.fill("#record-search input[name=q]", "lighter baselines")
    page.click("#record-search button")
    results = page.locator("#search-results")
    assert "What was tried" in results.inner_text()
    # Only what matches: not every section of the record.
    assert results.locator(".search-hit").count() == 1
    screenshot(page, "record-search")
    results.locator("a").first.click()
    page.wait_for_url(re.compile(r".*/records/news-topics/#section-\d+$"))

    # The export downloads one Markdown document: sections, timeline, model cards.
    with page.expect_download() as info:
        page.click("#export-link")
    path = tmp_path / "record.md"
    info.value.save_as(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Project record: News topics")
    assert "Tried **ComplementNB** as a lighter baseline" in text
    assert "## Timeline" in text and "## Model cards of the production versions" in text
    assert "# Model card:" in text
    assert violations(page, console) == []


def test_a_shared_lesson_shows_on_another_units_overlapping_need(
    live_server, page, screenshot, alice, tenant_a, tenant_b, charlie
):
    from records import services
    from tests.factories import NeedFactory
    from tests.monitoring.factories import make_monitored_need
    from tests.taxonomy.factories import build_news_tree

    build_news_tree()
    b_need, _ = make_monitored_need(tenant=tenant_b, slug="b-sport", baseline={"news.sport": 9})
    services.section_save(
        need=b_need, kind="goal", body="B's private goal", base_revision=0, author=charlie
    )
    services.item_create(
        need=b_need,
        kind="lesson",
        title="Match reports lift sport recall",
        body="Adding *match reports* to the data raised `news.sport` recall.",
        labels=["news.sport"],
        shareable=True,
        author=charlie,
    )
    NeedFactory(tenant=tenant_a, slug="a-sport", name="Sport desk", requested_labels=["news.sport"])
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/tenant/needs/a-sport/")
    lessons = page.locator("#related-lessons")
    assert "Match reports lift sport recall" in lessons.inner_text()
    assert "shared by another unit" in lessons.inner_text()
    assert "private goal" not in page.content()
    screenshot(page, "need-related-lessons")
