"""Taxonomy invariants: stable unique keys, no cycles, history, deprecation, delete-vs-merge."""

import pytest
from django.core.exceptions import ValidationError

from registry.models import TrainingSampleLabel
from taxonomy import services
from taxonomy.models import Label, LabelChange, LabelSetMember, LabelStatus
from tenants import services as tenant_services
from tests.factories import NeedFactory, TenantFactory, UserFactory
from tests.taxonomy.factories import make_training_sample


def test_create_records_history_with_actor_and_after(db):
    editor = UserFactory(username="editor")
    label = services.label_create(key="spam", name_en="Spam", name_zh="垃圾", actor=editor)
    change = label.history.get()
    assert change.action == LabelChange.Action.CREATE
    assert change.actor == editor
    assert change.before == {}
    assert change.after["name_zh"] == "垃圾"
    assert change.at is not None


def test_duplicate_key_is_refused_and_nothing_written(tree):
    before = Label.objects.count()
    with pytest.raises(ValidationError) as exc:
        services.label_create(key="news.sport", name_en="Another sport")
    assert "key" in exc.value.message_dict
    assert Label.objects.count() == before


@pytest.mark.parametrize("key", ["News.Sport", "news..sport", ".news", "news sport", ""])
def test_malformed_key_is_refused(db, key):
    with pytest.raises(ValidationError) as exc:
        services.label_create(key=key, name_en="x")
    assert "key" in exc.value.message_dict
    assert not Label.objects.exists()


def test_moving_a_label_under_itself_or_its_descendant_is_a_cycle(tree):
    with pytest.raises(ValidationError) as exc:
        services.label_move(label=tree["news"], new_parent=tree["news.sport.football"])
    assert "cycle" in exc.value.message_dict["parent"][0]
    with pytest.raises(ValidationError):
        services.label_move(label=tree["news.sport"], new_parent=tree["news.sport"])
    tree["news"].refresh_from_db()
    assert tree["news"].parent is None
    assert not LabelChange.objects.filter(action=LabelChange.Action.MOVE).exists()


def test_move_keeps_the_key_and_records_before_and_after(tree):
    editor = UserFactory(username="editor")
    football = services.label_move(
        label=tree["news.sport.football"], new_parent=tree["news"], actor=editor
    )
    assert football.key == "news.sport.football"
    assert football.parent == tree["news"]
    change = football.history.filter(action=LabelChange.Action.MOVE).get()
    assert (change.before["parent"], change.after["parent"]) == ("news.sport", "news")
    assert change.actor == editor


def test_update_changes_names_and_aliases_with_history(tree):
    label = services.label_update(
        label=tree["news.tech"], name_zh="技术", aliases=["Tech", "tech", " IT ", "science"]
    )
    assert label.aliases == ["Tech", "IT", "science"]  # de-duplicated case-insensitively
    change = label.history.filter(action=LabelChange.Action.UPDATE).get()
    assert change.before["name_zh"] == "科技" and change.after["name_zh"] == "技术"


def test_key_cannot_be_changed_by_update(tree):
    with pytest.raises(ValidationError) as exc:
        services.label_update(label=tree["news.tech"], key="news.technology")
    assert "key" in exc.value.message_dict


def test_deprecate_sets_replacement_and_history(tree):
    label = services.label_deprecate(label=tree["news.tech"], replaced_by=tree["news.business"])
    assert label.status == LabelStatus.DEPRECATED
    assert label.replaced_by == tree["news.business"]
    change = label.history.filter(action=LabelChange.Action.DEPRECATE).get()
    assert change.before["status"] == "active" and change.after["replaced_by"] == "news.business"


def test_deprecate_refuses_self_or_deprecated_replacement(tree):
    with pytest.raises(ValidationError):
        services.label_deprecate(label=tree["news.tech"], replaced_by=tree["news.tech"])
    services.label_deprecate(label=tree["news.politics"])
    with pytest.raises(ValidationError):
        services.label_deprecate(label=tree["news.tech"], replaced_by=tree["news.politics"])
    tree["news.tech"].refresh_from_db()
    assert tree["news.tech"].status == LabelStatus.ACTIVE


def test_unused_label_can_be_deleted_history_stays_and_key_is_never_reused(db):
    label = services.label_create(key="misc", name_en="Misc")
    services.label_delete(label=label)
    assert not Label.objects.filter(key="misc").exists()
    actions = set(LabelChange.objects.filter(label_key="misc").values_list("action", flat=True))
    assert actions == {"create", "delete"}
    with pytest.raises(ValidationError):
        services.label_create(key="misc", name_en="Misc again")


def test_label_in_a_label_set_cannot_be_deleted(news_topics, tree):
    with pytest.raises(ValidationError) as exc:
        services.label_delete(label=tree["news.tech"])
    assert "label set revisions" in exc.value.message_dict["label"][0]
    assert Label.objects.filter(key="news.tech").exists()


def test_label_in_training_data_cannot_be_deleted(news_topics, tree):
    LabelSetMember.objects.filter(label=tree["news.tech"]).delete()
    make_training_sample(label_set=news_topics, labels=[tree["news.tech"]])
    with pytest.raises(ValidationError) as exc:
        services.label_delete(label=tree["news.tech"])
    assert "training sample labels: 1" in exc.value.message_dict["label"][0]


@pytest.mark.parametrize(
    "need_fields",
    [
        {"label_mapping": {"Football": "news.sport.football"}},
        {"requested_labels": ["news.sport.football"]},
    ],
)
def test_label_used_by_a_need_cannot_be_deleted(tree, need_fields):
    NeedFactory(**need_fields)
    with pytest.raises(ValidationError) as exc:
        services.label_delete(label=tree["news.sport.football"])
    assert "need labels: 1" in exc.value.message_dict["label"][0]


def test_label_with_children_cannot_be_deleted(tree):
    with pytest.raises(ValidationError):
        services.label_delete(label=tree["news.sport"])


def test_merge_rewrites_every_reference_in_one_go(tree, news_topics):
    from tests.factories import make_label_set

    # A second set holding both labels: its members collapse to one.
    both = make_label_set(slug="both", keys_=["news.tech", "news.business"], kind="multilabel")
    sample_one = make_training_sample(label_set=news_topics, labels=[tree["news.tech"]], text="a")
    sample_both = make_training_sample(
        label_set=both, labels=[tree["news.tech"], tree["news.business"]], text="b"
    )
    child = services.label_create(key="news.tech.ai", name_en="AI", parent=tree["news.tech"])
    old = services.label_create(key="news.computing", name_en="Computing")
    services.label_deprecate(label=old, replaced_by=tree["news.tech"])
    need_a = NeedFactory(
        tenant=TenantFactory(slug="t1"),
        label_mapping={"IT": "news.tech", "Money": "news.business"},
        per_label_thresholds={"news.tech": 0.4},
    )
    need_b = NeedFactory(
        tenant=TenantFactory(slug="t2"), requested_labels=["news.tech", "news.business"]
    )
    editor = UserFactory(username="editor")

    services.label_merge(source=tree["news.tech"], target=tree["news.business"], actor=editor)

    assert news_topics.current_revision.label_keys() == [
        "news.business",
        "news.entertainment",
        "news.politics",
        "news.sport",
    ]
    assert both.current_revision.label_keys() == ["news.business"]
    assert set(sample_one.labels.values_list("key", flat=True)) == {"news.business"}
    assert set(sample_both.labels.values_list("key", flat=True)) == {"news.business"}
    assert not TrainingSampleLabel.objects.filter(label=tree["news.tech"]).exists()
    need_a.refresh_from_db()
    need_b.refresh_from_db()
    # One row per label: the need's row for the target keeps its name ("IT" is dropped, and said).
    assert need_a.label_mapping == {"Money": "news.business"}
    assert need_a.per_label_thresholds == {"news.business": 0.4}
    assert need_b.requested_labels == ["news.business"]
    child.refresh_from_db()
    old.refresh_from_db()
    assert child.parent == tree["news.business"]
    assert old.replaced_by == tree["news.business"]
    source = Label.objects.get(key="news.tech")
    assert source.status == LabelStatus.DEPRECATED and source.replaced_by == tree["news.business"]
    target = Label.objects.get(key="news.business")
    assert {"Technology", "科技", "Tech", "IT"} <= set(target.aliases)
    merge_src = source.history.get(action=LabelChange.Action.MERGE)
    merge_dst = target.history.get(action=LabelChange.Action.MERGE)
    assert merge_src.actor == editor and merge_src.after["merged_into"] == "news.business"
    assert merge_dst.after["merged_from"] == "news.tech"
    assert merge_dst.after["rewritten"]["needs"] == 2
    assert merge_src.after["needs_names_dropped"] == [f"t1/{need_a.slug}: IT"]


def test_merge_is_all_or_nothing(tree, news_topics, monkeypatch):
    NeedFactory(label_mapping={"IT": "news.tech"})

    def explode(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tenant_services, "need_labels_merge_all_tenants", explode)
    with pytest.raises(RuntimeError):
        services.label_merge(source=tree["news.tech"], target=tree["news.business"])
    assert "news.tech" in news_topics.current_revision.label_keys()
    assert Label.objects.get(key="news.tech").status == LabelStatus.ACTIVE
    assert not LabelChange.objects.filter(action=LabelChange.Action.MERGE).exists()


def test_merge_into_own_descendant_or_deprecated_label_is_refused(tree):
    with pytest.raises(ValidationError) as exc:
        services.label_merge(source=tree["news.sport"], target=tree["news.sport.football"])
    assert "target" in exc.value.message_dict
    services.label_deprecate(label=tree["news.politics"])
    with pytest.raises(ValidationError):
        services.label_merge(source=tree["news.tech"], target=tree["news.politics"])
    with pytest.raises(ValidationError):
        services.label_merge(source=tree["news.tech"], target=tree["news.tech"])
