"""Honest reuse suggestions (issue 15.2) and subscribing that never 500s (issue 15.3).

A model is scored by how many of the requested labels it can tell apart; several requested
labels landing on one of its classes count once and are named in words; its quality is shown on
the requested labels only; Subscribe is offered (and accepted) only where it answers the need.
"""

from __future__ import annotations

import io

import pytest

from registry import selectors as registry_selectors
from taxonomy import services as taxonomy_services
from tenants.models import Need, NeedStatus
from tests.factories import NeedFactory
from tests.taxonomy.factories import make_live_model

#: Reuters-style finance topics, all under news.business in the taxonomy (the issue's case).
FINANCE = {
    "earn": "Earnings",
    "acq": "Acquisitions",
    "crude": "Crude oil",
    "trade": "Trade",
    "money-fx": "Currency markets",
    "interest": "Interest rates",
    "grain": "Grain",
    "ship": "Shipping",
}
#: Held-out per-label metrics of the "BBC" model: overall macro-F1 0.975.
BBC_PER_LABEL = {
    "news.business": 0.96,
    "news.entertainment": 0.99,
    "news.politics": 0.97,
    "news.sport": 0.99,
    "news.tech": 0.965,
}


def _with_metrics(model, per_label: dict[str, float]):
    version = model.versions.get()
    version.metrics = {
        "macro_f1": round(sum(per_label.values()) / len(per_label), 4),
        "per_label": {
            key: {"precision": f1, "recall": f1, "f1": f1, "support": 50}
            for key, f1 in per_label.items()
        },
    }
    version.save(update_fields=["metrics"])
    return model


@pytest.fixture
def finance(tree):
    return {
        key: taxonomy_services.label_create(
            key=f"news.business.{key}", name_en=name, parent=tree["news.business"], aliases=[key]
        )
        for key, name in FINANCE.items()
    }


@pytest.fixture
def bbc(news_topics):
    return _with_metrics(make_live_model(label_set=news_topics), BBC_PER_LABEL)


@pytest.fixture
def session_api(api, alice):
    api.force_authenticate(alice)
    return api


def test_eight_finance_topics_are_not_offered_the_bbc_model_as_a_fit(tenant_a, finance, bbc):
    suggestions = registry_selectors.reuse_suggestions(tenant=tenant_a, terms=list(FINANCE))
    [row] = [r for r in suggestions.models if r["model"] == bbc]
    assert row["overlap"].fits is False
    assert row["overlap"].distinct == 1 and row["overlap"].requested == 8
    assert row["overlap"].reasons[0].startswith("8 of your labels would all come back as Business")
    # Its 0.975 macro-F1 is on its own labels; on the eight asked for it tells none apart.
    assert row["quality"]["macro_f1"] == 0.0
    assert {q["how"] for q in row["quality"]["labels"]} == {"shared"}
    # One class landed on, coarser: 0.5 / 8 coverage, no exact label in common.
    assert row["overlap"].score == pytest.approx(0.7 * 0.5 / 8, abs=1e-4)
    [topics] = suggestions.label_sets
    assert topics["overlap"].fits is False


def test_the_api_says_why_and_shows_quality_on_the_requested_labels(session_api, finance, bbc):
    response = session_api.post(
        "/api/v1/reuse-suggestions/", {"labels": list(FINANCE)}, format="json"
    )
    assert response.status_code == 200
    [model] = response.json()["models"]
    assert model["overlap"]["fits"] is False
    assert model["overlap"]["collapsed"][0]["label"] == "news.business"
    assert len(model["overlap"]["collapsed"][0]["requested"]) == 8
    assert "would all come back as Business" in model["overlap"]["reasons"][0]
    assert model["quality"]["macro_f1"] == 0.0
    assert "0.975" not in response.content.decode()


def test_subscribing_the_finance_need_to_the_bbc_model_is_a_400_with_the_reason(
    session_api, tenant_a, finance, bbc
):
    session_api.post(
        "/api/v1/needs/", {"name": "Fin", "requested_labels": list(FINANCE)}, format="json"
    )
    response = session_api.post("/api/v1/needs/fin/subscribe/", {"model": bbc.name}, format="json")
    assert response.status_code == 400
    message = response.json()["error"]["fields"]["model"][0]
    assert "does not answer this need" in message and "come back as Business" in message
    assert Need.objects.for_tenant(tenant_a).get(slug="fin").model is None
    # Knowingly accepting the shortfall is a choice the tenant can make.
    accepted = session_api.post(
        "/api/v1/needs/fin/subscribe/",
        {"model": bbc.name, "accept_shortfall": True},
        format="json",
    )
    assert accepted.status_code == 200 and accepted.json()["model"] == bbc.name


def test_the_need_page_shows_why_not_instead_of_a_subscribe_button(
    client, alice, tenant_a, finance, bbc
):
    NeedFactory(
        tenant=tenant_a, slug="fin", requested_labels=[f"news.business.{k}" for k in FINANCE]
    )
    client.force_login(alice)
    page = client.get("/tenant/needs/fin/").content.decode()
    article = page[page.index(f'data-model="{bbc.name}"') :]
    article = article[: article.index("</article>")]
    assert 'data-fits="no"' in page
    assert "does not answer this need" in article
    assert "8 of your labels would all come back as Business" in article
    assert "Subscribe to this model" not in article


def test_a_model_that_tells_the_labels_apart_ranks_above_a_better_scoring_coarse_one(
    tenant_a, finance, bbc
):
    own = taxonomy_services.label_set_create(
        tenant=tenant_a,
        slug="finance",
        name="Finance",
        label_keys=[label.key for label in finance.values()],
    )
    mine = _with_metrics(
        make_live_model(label_set=own, tenant=tenant_a, name="finance/tfidf-logreg"),
        {label.key: 0.8 for label in finance.values()},
    )
    suggestions = registry_selectors.reuse_suggestions(tenant=tenant_a, terms=list(FINANCE))
    assert [row["model"] for row in suggestions.models] == [mine, bbc]
    assert suggestions.models[0]["overlap"].fits is True
    assert suggestions.models[0]["quality"]["macro_f1"] == 0.8
    assert [row["label_set"].slug for row in suggestions.label_sets] == ["finance", "news-topics"]


def test_quality_is_the_f1_on_the_requested_labels_only(tenant_a, bbc):
    suggestions = registry_selectors.reuse_suggestions(tenant=tenant_a, terms=["Business", "Tech"])
    [row] = suggestions.models
    assert row["overlap"].fits is True
    assert row["quality"]["macro_f1"] == pytest.approx((0.96 + 0.965) / 2, abs=1e-4)
    assert [q["label"] for q in row["quality"]["labels"]] == ["news.business", "news.tech"]


def test_a_coarser_single_label_still_fits_and_says_so(tenant_a, bbc):
    suggestions = registry_selectors.reuse_suggestions(
        tenant=tenant_a, terms=["Football", "Politics"]
    )
    [row] = suggestions.models
    assert row["overlap"].fits is True
    assert "Answered more coarsely: Football as Sport." in row["overlap"].reasons
    assert row["quality"]["labels"][0]["how"] == "coarser"


def test_dave_is_still_offered_as_model_on_the_demo(db, api):
    from tagging_platform.demo import ensure_admin
    from taxonomy import demo as taxonomy_demo
    from taxonomy.models import LabelSet
    from tenants import demo as tenants_demo
    from tenants.models import Membership

    out = io.StringIO()
    ensure_admin(out)
    taxonomy_demo.load_taxonomy(out)
    tenants_demo.load_tenants(out)
    topics = LabelSet.objects.dangerously_unscoped().get(slug="news-topics", tenant__isnull=True)
    # "A's model": the shared news-topics model the registry trains for tenant A's need.
    model = _with_metrics(make_live_model(label_set=topics), BBC_PER_LABEL)
    dave = Membership.objects.dangerously_unscoped().get(user__username="dave")
    need = Need.objects.for_tenant(dave.tenant).get(slug="media-topics")

    suggestions = registry_selectors.reuse_suggestions(
        tenant=dave.tenant, terms=need.requested_labels
    )
    best = suggestions.models[0]
    assert best["model"] == model and best["overlap"].fits is True
    assert best["overlap"].distinct == 4 and best["overlap"].reasons == []
    assert best["quality"]["macro_f1"] == pytest.approx((0.96 + 0.97 + 0.99 + 0.965) / 4, abs=1e-4)
    api.force_authenticate(dave.user)
    response = api.post(
        "/api/v1/needs/media-topics/subscribe/", {"model": model.name}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["label_set"] == "news-topics"


@pytest.mark.parametrize(
    "body",
    [{}, {"model": ""}, {"model": None}, {"model": ["a"]}, {"model": "x" * 300}, {"model": "nope"}],
)
def test_subscribe_refusals_are_4xx_never_500(session_api, tenant_a, bbc, body):
    NeedFactory(tenant=tenant_a, slug="n", requested_labels=["news.sport"])
    response = session_api.post("/api/v1/needs/n/subscribe/", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"]


def test_subscribing_a_retired_or_another_tenants_need_is_refused(
    session_api, tenant_a, tenant_b, bbc
):
    NeedFactory(tenant=tenant_a, slug="old", status=NeedStatus.RETIRED, label_set=bbc.label_set)
    NeedFactory(tenant=tenant_b, slug="theirs", label_set=bbc.label_set)
    retired = session_api.post("/api/v1/needs/old/subscribe/", {"model": bbc.name}, format="json")
    assert retired.status_code == 400 and "status" in retired.json()["error"]["fields"]
    other = session_api.post("/api/v1/needs/theirs/subscribe/", {"model": bbc.name}, format="json")
    assert other.status_code == 404
