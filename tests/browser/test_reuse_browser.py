"""The honest reuse suggestion in a browser (issue 15.2): eight finance topics are told why the
shared news model does not answer them; four desk topics are offered it, with its F1 on them."""

import pytest
from playwright.sync_api import expect

from taxonomy import services as taxonomy_services
from tests.conftest import login
from tests.factories import NeedFactory
from tests.taxonomy.factories import build_news_tree, make_live_model, shared_label_sets

pytestmark = pytest.mark.browser

FINANCE = ["earn", "acq", "crude", "trade", "money-fx", "interest", "grain", "ship"]
PER_LABEL = {
    "news.business": 0.96,
    "news.entertainment": 0.99,
    "news.politics": 0.97,
    "news.sport": 0.99,
    "news.tech": 0.965,
}


@pytest.fixture
def world(db):
    tree = build_news_tree()
    for key in FINANCE:
        taxonomy_services.label_create(
            key=f"news.business.{key}",
            name_en=key.replace("-", " ").title(),
            parent=tree["news.business"],
            aliases=[key],
        )
    topics, _ = shared_label_sets()
    model = make_live_model(label_set=topics)
    version = model.versions.get()
    version.metrics = {
        "macro_f1": 0.975,
        "per_label": {
            k: {"precision": f, "recall": f, "f1": f, "support": 50} for k, f in PER_LABEL.items()
        },
    }
    version.save(update_fields=["metrics"])
    return model


def test_the_honest_suggestion_says_why_not_and_offers_only_what_fits(
    live_server, page, alice, tenant_a, world, screenshot
):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/tenant/needs/new/")
    page.fill("#id_name", "Finance topics")
    page.type("#id_requested_labels", ", ".join(FINANCE), delay=10)
    model = page.locator(f'.suggestion-model[data-model="{world.name}"]')
    expect(model).to_contain_text("8 of your labels would all come back as Business")
    expect(model).to_have_attribute("data-fits", "no")
    expect(model).to_contain_text("does not answer this need")
    assert model.locator("[data-use-model]").count() == 0
    assert "0.975" not in model.inner_text()
    expect(model.locator(".quality-f1")).to_have_text("0.000")
    screenshot(page, "reuse-finance-not-a-fit")

    page.fill("#id_requested_labels", "")
    page.type("#id_requested_labels", "Business, Politics, Sports, Technology", delay=10)
    expect(model).to_have_attribute("data-fits", "yes")
    expect(model).to_contain_text("tells apart 4 of your 4 labels")
    expect(model.locator(".quality-f1")).to_have_text("0.971")
    expect(model.locator("[data-use-model]")).to_be_visible()
    screenshot(page, "reuse-desk-topics-fit")


def test_the_need_page_shows_why_not_for_the_finance_need(
    live_server, page, alice, tenant_a, world, screenshot
):
    NeedFactory(
        tenant=tenant_a,
        slug="fin",
        name="Finance",
        requested_labels=[f"news.business.{k}" for k in FINANCE],
    )
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/tenant/needs/fin/")
    model = page.locator(f'.suggestion-model[data-model="{world.name}"]')
    expect(model).to_contain_text("Why not:")
    expect(model).to_contain_text("cannot tell them apart")
    assert model.locator("button").count() == 0
    screenshot(page, "reuse-need-detail-why-not")


def test_the_need_follows_a_newly_promoted_model_and_the_owner_offers_one(
    live_server, page, alice, tenant_a, tenant_b, world, screenshot
):
    from registry.models import RegisteredModel
    from registry.services.aliases import alias_set
    from tenants import services as tenant_services
    from tenants.models import Need

    desk = taxonomy_services.label_set_create(
        tenant=tenant_a, slug="desk", name="Desk", label_keys=["news.sport", "news.tech"]
    )
    first = make_live_model(label_set=desk, tenant=tenant_a, name="desk/tfidf-logreg")
    need = tenant_services.need_create(tenant=tenant_a, slug="desk", name="Desk", label_set=desk)
    tenant_services.need_subscribe_model(need=need, model=first)
    newer = make_live_model(label_set=desk, tenant=tenant_a, name="desk/tfidf-svm")
    alias_set(registered_model=newer, alias="production", version=newer.versions.get())

    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/tenant/needs/desk/")
    expect(page.locator("#model-update")).to_contain_text("Should it follow the new model?")
    screenshot(page, "reuse-follow-question")
    page.click("#follow-model")
    expect(page.locator("#need-model")).to_contain_text("desk/tfidf-svm")
    assert page.locator("#model-update").count() == 0
    assert Need.objects.for_tenant(tenant_a).get(slug="desk").model == newer

    page.goto(f"{live_server.url}/models/{newer.pk}/")
    page.fill("textarea[name=description]", "Sport and tech for English news clippings.")
    page.click("#offer-model")
    expect(page.locator("#offer-state")).to_contain_text("offered to other units")
    other_need = tenant_services.need_create(
        tenant=tenant_b, slug="clips", name="Clips", requested_labels=["news.sport", "news.tech"]
    )
    tenant_services.need_subscribe_model(need=other_need, model=newer)
    page.reload()
    expect(page.locator("#subscriptions")).to_contain_text("Bravo Finance")
    screenshot(page, "reuse-offer-subscriptions")
    assert RegisteredModel.objects.owned_by(tenant_a).get(pk=newer.pk).offered
