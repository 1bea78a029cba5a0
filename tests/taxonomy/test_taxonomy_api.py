"""Taxonomy over REST: anyone signed in reads; only platform staff change; bad input is a 400."""

import pytest

from taxonomy.models import Label, LabelChange
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory
from tests.taxonomy.factories import make_training_sample


@pytest.fixture
def staff_api(api, staff_user):
    api.force_authenticate(staff_user)
    return api


def test_tree_lists_roots_with_nested_children(api_a, tree):
    body = api_a.get("/api/v1/taxonomy/tree/").json()
    news = next(node for node in body if node["key"] == "news")
    sport = next(node for node in news["children"] if node["key"] == "news.sport")
    assert sport["name_zh"] == "体育"
    assert [child["key"] for child in sport["children"]] == ["news.sport.football"]


@pytest.mark.parametrize("query", ["体育", "sports", "SPORT"])
def test_search_matches_both_languages_and_aliases(api_a, tree, query):
    body = api_a.get("/api/v1/taxonomy/labels/", {"q": query}).json()
    assert "news.sport" in [row["key"] for row in body["results"]]
    assert "news.tech" not in [row["key"] for row in body["results"]]


def test_label_detail_and_history(api_a, tree):
    assert api_a.get("/api/v1/taxonomy/labels/news.sport/").json()["parent"] == "news"
    history = api_a.get("/api/v1/taxonomy/labels/news.sport/history/").json()["results"]
    assert history[0]["action"] == "create"


def test_key_without_read_scope_cannot_read(tenant_a, tree):
    client = api_client_for_key(ApiKeyFactory(tenant=tenant_a, scopes=["tag"]))
    assert client.get("/api/v1/taxonomy/labels/").status_code == 403


def test_anonymous_is_refused(api, tree):
    assert api.get("/api/v1/taxonomy/tree/").status_code == 401


def test_tenant_admin_and_keys_cannot_change_the_taxonomy(api, api_a, alice, tree):
    payload = {"key": "news.weather", "name_en": "Weather", "parent": "news"}
    assert api_a.post("/api/v1/taxonomy/labels/", payload, format="json").status_code == 403
    api.force_authenticate(alice)
    assert api.post("/api/v1/taxonomy/labels/", payload, format="json").status_code == 403
    assert api.delete("/api/v1/taxonomy/labels/news.tech/").status_code == 403
    assert not Label.objects.filter(key="news.weather").exists()


def test_staff_creates_a_label(staff_api, tree):
    response = staff_api.post(
        "/api/v1/taxonomy/labels/",
        {"key": "news.weather", "name_en": "Weather", "name_zh": "天气", "parent": "news"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert Label.objects.get(key="news.weather").history.get().actor.username == "staff"


def test_duplicate_key_is_a_400_with_field_errors(staff_api, tree):
    response = staff_api.post(
        "/api/v1/taxonomy/labels/", {"key": "news.sport", "name_en": "Dup"}, format="json"
    )
    assert response.status_code == 400
    assert "key" in response.json()["error"]["fields"]


def test_cycle_is_a_400_and_nothing_moves(staff_api, tree):
    response = staff_api.patch(
        "/api/v1/taxonomy/labels/news/",
        {"parent": "news.sport.football", "name_en": "All news"},
        format="json",
    )
    assert response.status_code == 400
    assert "parent" in response.json()["error"]["fields"]
    news = Label.objects.get(key="news")
    assert news.parent is None and news.name_en == "News"


def test_staff_moves_and_renames(staff_api, tree):
    response = staff_api.patch(
        "/api/v1/taxonomy/labels/news.sport.football/",
        {"parent": "news", "name_zh": "英式足球"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["parent"] == "news" and response.json()["name_zh"] == "英式足球"
    actions = Label.objects.get(key="news.sport.football").history.values_list("action", flat=True)
    assert {"move", "update"} <= set(actions)


def test_deleting_a_label_in_use_is_a_400_and_it_stays(staff_api, news_topics, tree):
    make_training_sample(label_set=news_topics, labels=[tree["news.tech"]])
    response = staff_api.delete("/api/v1/taxonomy/labels/news.tech/")
    assert response.status_code == 400
    assert "label" in response.json()["error"]["fields"]
    assert Label.objects.filter(key="news.tech").exists()
    assert not LabelChange.objects.filter(action="delete").exists()


def test_deleting_an_unused_label(staff_api, tree):
    staff_api.post("/api/v1/taxonomy/labels/", {"key": "tmp", "name_en": "Tmp"}, format="json")
    assert staff_api.delete("/api/v1/taxonomy/labels/tmp/").status_code == 204
    assert not Label.objects.filter(key="tmp").exists()


def test_deprecate_and_merge_endpoints(staff_api, news_topics, tree):
    response = staff_api.post("/api/v1/taxonomy/labels/news.politics/deprecate/", {}, format="json")
    assert response.json()["status"] == "deprecated"
    response = staff_api.post(
        "/api/v1/taxonomy/labels/news.tech/merge/", {"target": "news.business"}, format="json"
    )
    assert response.status_code == 200
    assert "news.tech" not in news_topics.current_revision.label_keys()
    bad = staff_api.post(
        "/api/v1/taxonomy/labels/news.sport/merge/", {"target": "nope"}, format="json"
    )
    assert bad.status_code == 400 and "target" in bad.json()["error"]["fields"]


def test_label_sets_show_current_revision(api_a, news_topics):
    body = api_a.get("/api/v1/label-sets/news-topics/").json()
    assert body["owner"] == "shared"
    assert body["current_revision"]["number"] == 1
    assert "news.sport" in body["current_revision"]["labels"]
    revisions = api_a.get("/api/v1/label-sets/news-topics/revisions/").json()
    assert [r["number"] for r in revisions] == [1]


def test_reuse_suggestions_endpoint(api_a, news_topics):
    response = api_a.post(
        "/api/v1/reuse-suggestions/", {"labels": ["Sports", "科技", "weather"]}, format="json"
    )
    body = response.json()
    assert body["resolved"] == {"Sports": "news.sport", "科技": "news.tech"}
    assert body["unknown"] == ["weather"]
    assert body["label_sets"][0]["label_set"] == "news-topics"
    assert body["label_sets"][0]["overlap"]["coverage"] == 1.0


def test_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/v1/needs/{slug}/subscribe/" in text and "ApiKeyAuth" in text
