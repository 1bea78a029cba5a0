"""The taxonomy admin goes through the services: history, cycles, merges and in-use labels."""

import pytest

from taxonomy.models import Label, LabelChange, LabelSet, LabelStatus
from tests.taxonomy.factories import make_training_sample


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_changelist_and_change_page_render_with_history(staff_client, tree):
    assert staff_client.get("/admin/taxonomy/label/?q=体育").status_code == 200
    page = staff_client.get(f"/admin/taxonomy/label/{tree['news.sport'].pk}/change/")
    assert page.status_code == 200 and "Created" in page.content.decode()


def test_admin_add_records_history_with_the_staff_user(staff_client, tree):
    response = staff_client.post(
        "/admin/taxonomy/label/add/",
        {
            "key": "news.weather",
            "parent": tree["news"].pk,
            "name_en": "Weather",
            "name_zh": "天气",
            "description": "",
            "aliases": '["forecast"]',
            "history-TOTAL_FORMS": 0,
            "history-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    change = Label.objects.get(key="news.weather").history.get()
    assert change.action == "create" and change.actor.username == "staff"


def test_admin_form_refuses_a_cycle(staff_client, tree):
    news = tree["news"]
    response = staff_client.post(
        f"/admin/taxonomy/label/{news.pk}/change/",
        {
            "parent": tree["news.sport.football"].pk,
            "name_en": "News",
            "name_zh": "新闻",
            "description": "",
            "aliases": "[]",
            "history-TOTAL_FORMS": 0,
            "history-INITIAL_FORMS": 1,
        },
    )
    assert response.status_code == 200
    assert "cycle" in response.content.decode()
    news.refresh_from_db()
    assert news.parent is None


def test_merge_action_rewrites_references(staff_client, tree, news_topics):
    make_training_sample(label_set=news_topics, labels=[tree["news.tech"]])
    payload = {"action": "merge_labels", "_selected_action": [tree["news.tech"].pk]}
    step = staff_client.post("/admin/taxonomy/label/", payload)
    assert step.status_code == 200 and "Merge labels" in step.content.decode()
    done = staff_client.post(
        "/admin/taxonomy/label/", {**payload, "apply": "1", "target": tree["news.business"].pk}
    )
    assert done.status_code == 302
    assert "news.tech" not in news_topics.current_revision.label_keys()
    assert Label.objects.get(key="news.tech").replaced_by == tree["news.business"]


def test_deprecate_and_move_actions(staff_client, tree):
    staff_client.post(
        "/admin/taxonomy/label/",
        {
            "action": "deprecate_labels",
            "_selected_action": [tree["news.politics"].pk],
            "apply": "1",
            "target": "",
        },
    )
    assert Label.objects.get(key="news.politics").status == LabelStatus.DEPRECATED
    staff_client.post(
        "/admin/taxonomy/label/",
        {
            "action": "move_labels",
            "_selected_action": [tree["news"].pk],
            "apply": "1",
            "target": tree["news.sport"].pk,
        },
    )
    assert Label.objects.get(key="news").parent is None  # a cycle: refused, reported
    staff_client.post(
        "/admin/taxonomy/label/",
        {
            "action": "move_labels",
            "_selected_action": [tree["news.sport.football"].pk],
            "apply": "1",
            "target": tree["news"].pk,
        },
    )
    assert Label.objects.get(key="news.sport.football").parent == tree["news"]


def test_deleting_an_in_use_label_in_the_admin_is_refused(staff_client, tree, news_topics):
    response = staff_client.post(
        f"/admin/taxonomy/label/{tree['news.tech'].pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert Label.objects.filter(key="news.tech").exists()
    assert not LabelChange.objects.filter(action="delete").exists()


def test_deleting_an_unused_label_in_the_admin_keeps_history(staff_client, db):
    from taxonomy import services

    label = services.label_create(key="tmp", name_en="Tmp")
    staff_client.post(f"/admin/taxonomy/label/{label.pk}/delete/", {"post": "yes"})
    assert not Label.objects.filter(key="tmp").exists()
    assert LabelChange.objects.filter(label_key="tmp", action="delete").exists()


def test_label_set_admin_change_makes_a_new_revision(staff_client, news_topics):
    response = staff_client.post(
        f"/admin/taxonomy/labelset/{news_topics.pk}/change/",
        {
            "name": "News topics",
            "description": "",
            "kind": "multiclass",
            "labels": "news.business\nnews.sport\nnews.tech",
            "revisions-TOTAL_FORMS": 0,
            "revisions-INITIAL_FORMS": 1,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert news_topics.current_revision.number == 2
    assert news_topics.revisions.get(number=1).label_keys()[-1] == "news.tech"
    bad = staff_client.post(
        "/admin/taxonomy/labelset/add/",
        {
            "slug": "x",
            "name": "X",
            "kind": "multiclass",
            "labels": "news.sport\nnews.nope",
            "revisions-TOTAL_FORMS": 0,
            "revisions-INITIAL_FORMS": 0,
        },
    )
    assert bad.status_code == 200 and "news.nope" in bad.content.decode()
    assert not LabelSet.objects.dangerously_unscoped().filter(slug="x").exists()
