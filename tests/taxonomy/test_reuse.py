"""Reuse before rework: term resolution (names, Chinese names, aliases) and overlap ranking."""

import pytest

from registry import selectors as registry_selectors
from taxonomy import selectors, services
from tests.factories import TenantFactory
from tests.taxonomy.factories import NEWS_TOPICS, make_live_model


@pytest.mark.parametrize(
    ("term", "key"),
    [
        ("news.sport", "news.sport"),
        ("Sport", "news.sport"),
        ("Sports", "news.sport"),
        ("sports", "news.sport"),
        ("体育", "news.sport"),
        ("运动", "news.sport"),
        ("football", "news.sport.football"),
        ("soccer", "news.sport.football"),
        ("财经", "news.business"),
        ("tech", "news.tech"),
    ],
)
def test_terms_resolve_by_key_name_chinese_name_or_alias(tree, term, key):
    assert selectors.resolve_terms([term]).matched == {term: key}


def test_unknown_terms_are_reported(tree):
    result = selectors.resolve_terms(["Sport", "weather"])
    assert result.keys == ["news.sport"]
    assert result.unknown == ["weather"]


def test_deprecated_label_resolves_to_its_replacement(tree):
    services.label_deprecate(label=tree["news.tech"], replaced_by=tree["news.business"])
    assert selectors.resolve_terms(["IT"]).keys == ["news.business"]


def test_overlap_scores_are_jaccard_and_coverage(tree):
    requested = [tree[k] for k in ["news.business", "news.sport", "news.tech", "news.politics"]]
    result = selectors.overlap(requested, NEWS_TOPICS)
    assert result.coverage == 1.0
    assert result.jaccard == 0.8
    assert result.score == pytest.approx(0.7 * 1.0 + 0.3 * 0.8)
    assert result.extra == ["news.entertainment"]


def test_finer_label_gets_partial_credit_from_its_ancestor(tree):
    result = selectors.overlap([tree["news.sport.football"], tree["news.tech"]], NEWS_TOPICS)
    assert result.partial == ["news.sport.football"]
    assert result.matched == ["news.tech"]
    assert result.coverage == 0.75


def test_ds_request_finds_as_label_set_and_live_model_first(news_topics, tree):
    services.label_set_create(
        slug="sport-only", name="Sport", label_keys=["news.sport", "news.sport.football"]
    )
    model = make_live_model(label_set=news_topics)
    tenant_d = TenantFactory(slug="tenant-d")
    suggestions = registry_selectors.reuse_suggestions(
        tenant=tenant_d, terms=["Business", "体育", "Tech", "Politics", "showbiz"]
    )
    assert suggestions.resolution.unknown == []
    best = suggestions.label_sets[0]
    assert best["label_set"] == news_topics
    assert best["overlap"].score == 1.0
    assert [row["label_set"].slug for row in suggestions.label_sets] == [
        "news-topics",
        "sport-only",
    ]
    assert suggestions.models[0]["model"] == model
    assert "news-sentiment" not in [row["label_set"].slug for row in suggestions.label_sets]


def test_another_tenants_own_sets_and_models_are_never_offered(tree):
    owner = TenantFactory(slug="owner")
    private = services.label_set_create(
        tenant=owner, slug="private", name="P", label_keys=["news.sport", "news.tech"]
    )
    make_live_model(label_set=private, tenant=owner, name="private/tfidf-logreg")
    other = TenantFactory(slug="other")
    theirs = registry_selectors.reuse_suggestions(tenant=other, terms=["Sport", "Tech"])
    assert theirs.label_sets == [] and theirs.models == []
    mine = registry_selectors.reuse_suggestions(tenant=owner, terms=["Sport", "Tech"])
    assert [row["label_set"].slug for row in mine.label_sets] == ["private"]
    assert [row["model"].name for row in mine.models] == ["private/tfidf-logreg"]


def test_models_without_a_production_alias_are_not_offered(news_topics):
    from registry.models import ModelAlias

    model = make_live_model(label_set=news_topics)
    ModelAlias.objects.filter(registered_model=model).delete()
    suggestions = registry_selectors.reuse_suggestions(tenant=TenantFactory(), terms=["Sport"])
    assert suggestions.models == []
    assert suggestions.label_sets[0]["label_set"] == news_topics
