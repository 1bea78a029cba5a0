"""A tenant registers a need in the portal and is shown what it can reuse, as the labels are typed."""

import pytest
from playwright.sync_api import expect

from tenants.models import Need
from tests.conftest import login
from tests.taxonomy.factories import build_news_tree, make_live_model, shared_label_sets

pytestmark = pytest.mark.browser


@pytest.fixture
def shared_world(db):
    build_news_tree()
    topics, _ = shared_label_sets()
    return make_live_model(label_set=topics)


def test_register_a_need_and_see_the_reuse_suggestion(
    live_server, page, alice, tenant_a, shared_world, screenshot
):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/tenant/needs/new/")
    page.fill("#id_name", "Desk topics")
    # Typed like a person: names, a Chinese name and an alias, not keys.
    page.type("#id_requested_labels", "Business, 体育, Tech, Politics", delay=15)
    suggestion = page.locator('.suggestion-set[data-slug="news-topics"]')
    # The partial refreshes while typing; wait for the one answering all four labels:
    # coverage 1, Jaccard 4/5, score 0.7 + 0.3 * 0.8.
    expect(suggestion.locator(".score")).to_have_text("0.94")
    assert "coverage 1.00, Jaccard 0.80" in suggestion.inner_text()
    assert page.locator('.suggestion-model[data-model="news-topics/tfidf-logreg"]').is_visible()
    # Each typed term shows the label's name, with the term and the global key in its tooltip.
    sport = page.locator('.resolved code[title="体育 → news.sport"]')
    assert sport.count() == 1 and sport.inner_text() == "Sport"
    screenshot(page, "need-new-suggestions")

    page.click('[data-use-model="news-topics/tfidf-logreg"]')
    assert page.input_value("#id_subscribe_model") == "news-topics/tfidf-logreg"
    assert page.input_value("#id_label_set") == "news-topics"
    page.click("#submit-need")
    page.wait_for_url(f"{live_server.url}/tenant/needs/desk-topics/")
    assert "news-topics/tfidf-logreg" in page.locator("#need-model").inner_text()
    screenshot(page, "need-detail")

    need = Need.objects.for_tenant(tenant_a).get(slug="desk-topics")
    assert need.model == shared_world and need.label_set.slug == "news-topics"

    page.goto(f"{live_server.url}/taxonomy/?q=体育")
    assert "news.sport" in page.locator("#search-results").inner_text()
    page.goto(f"{live_server.url}/taxonomy/")
    screenshot(page, "taxonomy-browse")

    # Keys: the new key is on the page that answers the creation, and on no later page.
    page.goto(f"{live_server.url}/tenant/keys/")
    page.fill("#id_name", "desk-service")
    page.click("#create-key")
    plain = page.locator("#plain-key").inner_text()
    assert plain.startswith("tp_")
    screenshot(page, "keys-created")
    page.goto(f"{live_server.url}/tenant/keys/")
    assert plain not in page.content()
    assert "desk-service" in page.locator("#keys").inner_text()
