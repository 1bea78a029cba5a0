"""Issue 15 in Chromium: a tenant admin invites a member (who then sets a password and logs in),
creates a label set, and schedules a batch, pausing and editing it."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask
from playwright.sync_api import expect

from serving.models import ScheduledBatch
from taxonomy.models import LabelSet
from tenants.models import Membership
from tests.conftest import login
from tests.serving.conftest import _fresh_runtime  # noqa: F401  (autouse: clean runtime caches)
from tests.serving.factories import make_served_need

pytestmark = pytest.mark.browser


def test_invite_a_member_who_sets_a_password_and_logs_in(
    live_server, page, alice, tenant_a, screenshot, browser
):
    login(page, live_server, "alice")
    page.click("text=Members")
    page.wait_for_url(f"{live_server.url}/tenant/members/")
    page.fill("#id_username", "dora")
    page.fill("#id_email", "dora@example.com")
    page.select_option("#id_role", "requester")
    page.click("#invite")
    link = page.locator("#set-password-link").inner_text()
    assert link.startswith(f"{live_server.url}/tenant/set-password/")
    expect(page.locator('tr[data-member="dora"]')).to_contain_text("invited, not set yet")
    screenshot(page, "members-invited")
    assert Membership.objects.for_tenant(tenant_a).get(user__username="dora").role == "requester"

    # Dora, in her own browser, opens the link once.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    dora = context.new_page()
    dora.goto(link)
    dora.fill("#id_new_password1", "dora-sets-a-long-one-7")
    dora.fill("#id_new_password2", "dora-sets-a-long-one-7")
    screenshot(dora, "set-password")
    dora.click("#set-password")
    dora.wait_for_url(f"{live_server.url}/login/")
    login(dora, live_server, "dora", "dora-sets-a-long-one-7")
    expect(dora.locator(".tenant-badge")).to_have_text("Alpha News")
    dora.goto(link)
    expect(dora.locator("#link-invalid")).to_be_visible()
    context.close()

    page.reload()
    expect(page.locator('tr[data-member="dora"]')).not_to_contain_text("invited")


def test_create_a_label_set_from_taxonomy_names(
    live_server, page, alice, tenant_a, news_topics, screenshot
):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/taxonomy/")
    page.click("#new-label-set")
    page.fill("#id_slug", "desk")
    page.fill("#id_name", "Desk topics")
    page.fill("#id_labels", "Sport, 科技, Weather")
    page.click("#save-label-set")
    expect(page.locator(".errorlist")).to_contain_text("Weather")
    screenshot(page, "label-set-error")
    page.fill("#id_labels", "Sport, 科技, Politics")
    page.click("#save-label-set")
    page.wait_for_url(f"{live_server.url}/taxonomy/#set-desk")
    row = page.locator("#set-desk")
    expect(row).to_contain_text("news.sport, news.tech, news.politics")
    expect(row).to_contain_text("Alpha News")
    screenshot(page, "label-set-created")
    label_set = LabelSet.objects.owned_by(tenant_a).get(slug="desk")
    assert label_set.current_revision.label_keys() == ["news.sport", "news.tech", "news.politics"]


def test_schedule_pause_and_edit_a_batch(live_server, page, alice, tenant_a, screenshot):
    make_served_need(tenant=tenant_a, slug="news", label_mapping={"Sport": "news.sport"})
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/serving/batches/")
    page.click("#schedules-link")
    page.fill("#id_name", "nightly backlog")
    page.select_option("#id_need", "news")
    page.fill("#id_crontab", "0 25 * * *")
    page.click("#create-schedule")
    expect(page.locator(".errorlist")).to_contain_text("Invalid")
    page.fill("#id_crontab", "15 2 * * *")
    page.click("#create-schedule")
    expect(page.locator("#schedule-summary")).to_contain_text("15 2 * * *")
    screenshot(page, "schedule-created")
    scheduled = ScheduledBatch.objects.for_tenant(tenant_a).get(name="nightly backlog")

    page.click("#pause")
    expect(page.locator("#schedule-summary")).to_contain_text("paused")
    assert not PeriodicTask.objects.get(pk=scheduled.periodic_task_id).enabled
    page.fill("#id_crontab", "0 4 * * 1-5")
    page.click("#save-schedule")
    expect(page.locator("#schedule-summary")).to_contain_text("0 4 * * 1-5")
    screenshot(page, "schedule-edited")
    page.goto(f"{live_server.url}/serving/schedules/")
    expect(page.locator('tr[data-schedule="nightly backlog"]')).to_contain_text("0 4 * * 1-5")
    screenshot(page, "schedules")
