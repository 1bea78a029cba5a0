import pytest
from django.core.exceptions import ValidationError

from taxonomy import services
from taxonomy.models import LabelSet
from tests.factories import TenantFactory


def test_label_set_starts_at_revision_one(news_topics):
    revision = news_topics.current_revision
    assert revision.number == 1
    assert revision.label_keys()[0] == "news.business"


def test_any_change_makes_a_new_revision_and_keeps_the_old_one(news_topics):
    first = news_topics.current_revision
    second = services.label_set_revise(
        label_set=news_topics,
        label_keys=[*first.label_keys(), "news.sport.football"],
        note="finer sport",
    )
    assert second.number == 2
    assert "news.sport.football" not in first.label_keys()
    assert news_topics.current_revision == second
    third = services.label_set_revise(label_set=news_topics, kind="multilabel")
    assert third.number == 3 and third.label_keys() == second.label_keys()
    assert "kind" in third.note


def test_revise_without_a_change_makes_no_revision(news_topics):
    assert services.label_set_revise(label_set=news_topics, name=news_topics.name) is None
    assert news_topics.revisions.count() == 1


def test_unknown_or_deprecated_labels_are_refused(tree):
    services.label_deprecate(label=tree["news.tech"], replaced_by=tree["news.business"])
    with pytest.raises(ValidationError) as exc:
        services.label_set_create(
            slug="x", name="X", label_keys=["news.tech", "news.nope", "news.sport"]
        )
    problems = " ".join(exc.value.message_dict["labels"])
    assert "news.nope" in problems and "use 'news.business'" in problems
    assert not LabelSet.objects.dangerously_unscoped().filter(slug="x").exists()


def test_tenant_set_may_not_shadow_a_shared_slug(news_topics):
    tenant = TenantFactory(slug="t1")
    with pytest.raises(ValidationError) as exc:
        services.label_set_create(
            tenant=tenant, slug="news-topics", name="Mine", label_keys=["news.sport", "news.tech"]
        )
    assert "slug" in exc.value.message_dict


def test_multiclass_needs_two_labels(tree):
    with pytest.raises(ValidationError):
        services.label_set_create(slug="one", name="One", label_keys=["news.sport"])
    assert services.label_set_create(
        slug="one", name="One", label_keys=["news.sport"], kind="multilabel"
    ).current_revision.label_keys() == ["news.sport"]
