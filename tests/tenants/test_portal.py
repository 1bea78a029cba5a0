"""Portal pages for needs, keys and the taxonomy, and their isolation matrix."""

import pytest
from django.db import transaction

from taxonomy import services as taxonomy_services
from tenants.models import ApiKey, Need, NeedStatus
from tests.factories import NeedFactory
from tests.taxonomy.factories import make_live_model


@pytest.fixture
def world(tenant_a, tenant_b, alice, bob, charlie, key_a, key_b, news_topics):
    private = taxonomy_services.label_set_create(
        tenant=tenant_a,
        slug="alpha-private",
        name="Alpha private",
        label_keys=["news.sport", "news.tech"],
    )
    shared_model = make_live_model(label_set=news_topics)
    need = NeedFactory(tenant=tenant_a, slug="a-need", label_set=news_topics, name="Alpha need")
    NeedFactory(tenant=tenant_b, slug="b-need", label_set=news_topics, name="Bravo need")
    return {"need": need, "private": private, "model": shared_model, "key_a": key_a}


@pytest.fixture
def callers(alice, bob, charlie, key_b):
    from django.test import Client

    def session(user):
        client = Client()
        client.force_login(user)
        return client

    key_client = Client(HTTP_AUTHORIZATION=f"Api-Key {key_b.plain_key}")
    return {
        "owner": session(alice),
        "member": session(bob),
        "outsider": session(charlie),
        "other_key": key_client,
    }


CALLERS = ["owner", "member", "outsider", "other_key"]
LOGIN = 302  # API keys do not open the portal: they are sent to the login page

PAGES = [
    ("get", "/taxonomy/", None, {"owner": 200, "member": 200, "outsider": 200, "other_key": LOGIN}),
    (
        "get",
        "/taxonomy/labels/news.sport/",
        None,
        {"owner": 200, "member": 200, "outsider": 200, "other_key": LOGIN},
    ),
    (
        "get",
        "/tenant/needs/",
        None,
        {"owner": 200, "member": 200, "outsider": 200, "other_key": LOGIN},
    ),
    (
        "get",
        "/tenant/needs/new/",
        None,
        {"owner": 200, "member": 403, "outsider": 200, "other_key": LOGIN},
    ),
    (
        "get",
        "/tenant/needs/suggestions/?requested_labels=Sport",
        None,
        {"owner": 200, "member": 200, "outsider": 200, "other_key": LOGIN},
    ),
    (
        "get",
        "/tenant/needs/a-need/",
        None,
        {"owner": 200, "member": 200, "outsider": 404, "other_key": LOGIN},
    ),
    (
        "get",
        "/tenant/needs/a-need/edit/",
        None,
        {"owner": 200, "member": 403, "outsider": 404, "other_key": LOGIN},
    ),
    (
        "post",
        "/tenant/needs/a-need/edit/",
        {
            "name": "Hijacked",
            "label_set": "news-topics",
            "threshold": 0,
            "top_k": 1,
            "delivery": ["sync"],
        },
        {"owner": 302, "member": 403, "outsider": 404, "other_key": LOGIN},
    ),
    (
        "post",
        "/tenant/needs/a-need/subscribe/",
        {"model": "news-topics/tfidf-logreg"},
        {"owner": 302, "member": 403, "outsider": 404, "other_key": LOGIN},
    ),
    (
        "post",
        "/tenant/needs/a-need/retire/",
        {},
        {"owner": 302, "member": 403, "outsider": 404, "other_key": LOGIN},
    ),
    (
        "post",
        "/tenant/needs/a-need/go-live/",
        {},
        {"owner": 302, "member": 403, "outsider": 404, "other_key": LOGIN},
    ),
    (
        "get",
        "/tenant/keys/",
        None,
        {"owner": 200, "member": 403, "outsider": 200, "other_key": LOGIN},
    ),
    (
        "post",
        "/tenant/keys/",
        {"name": "portal-key", "scopes": ["tag"]},
        {"owner": 200, "member": 403, "outsider": 200, "other_key": LOGIN},
    ),
    (
        "post",
        "/tenant/keys/{prefix}/revoke/",
        {},
        {"owner": 302, "member": 403, "outsider": 404, "other_key": LOGIN},
    ),
]


def _snapshot(tenant):
    need = Need.objects.for_tenant(tenant).get(slug="a-need")
    return (
        need.name,
        need.status,
        need.model_id,
        sorted(ApiKey.objects.for_tenant(tenant).values_list("name", "revoked_at")),
    )


@pytest.mark.parametrize(
    ("method", "url", "data", "expected"), PAGES, ids=[f"{m} {u}" for m, u, *_ in PAGES]
)
def test_portal_isolation_matrix(world, callers, tenant_a, method, url, data, expected):
    url = url.format(prefix=world["key_a"].prefix)
    mismatches = []
    for caller in CALLERS:
        savepoint = transaction.savepoint()
        before = _snapshot(tenant_a)
        client = callers[caller]
        response = client.post(url, data) if method == "post" else client.get(url)
        if response.status_code != expected[caller]:
            mismatches.append((caller, response.status_code))
        elif caller != "owner" and _snapshot(tenant_a) != before:
            mismatches.append((caller, "changed tenant A's data"))
        transaction.savepoint_rollback(savepoint)
    assert not mismatches, mismatches


@pytest.mark.parametrize("caller", ["owner", "member", "outsider"])
def test_pages_show_only_the_callers_tenant(world, callers, caller):
    needs = callers[caller].get("/tenant/needs/").content.decode()
    taxonomy = callers[caller].get("/taxonomy/").content.decode()
    ours = caller != "outsider"
    assert ("Alpha need" in needs) is ours and ("Bravo need" in needs) is not ours
    assert ("alpha-private" in taxonomy) is ours
    assert "news-topics" in taxonomy
    suggestions = (
        callers[caller]
        .get("/tenant/needs/suggestions/?requested_labels=Sport,Tech")
        .content.decode()
    )
    assert ("alpha-private" in suggestions) is ours


def test_outsider_keys_page_lists_none_of_as_keys(world, callers):
    page = callers["outsider"].get("/tenant/keys/").content.decode()
    assert world["key_a"].prefix not in page and "bravo-service" in page


def test_taxonomy_search_matches_chinese_names_and_aliases(world, callers):
    for query in ("体育", "Sports"):
        page = callers["owner"].get("/taxonomy/", {"q": query}).content.decode()
        results = page[page.index('id="search-results"') : page.index('id="label-sets"')]
        assert "news.sport" in results and "news.business" not in results
    partial = callers["owner"].get(
        "/taxonomy/", {"q": "soccer", "partial": "results"}, HTTP_HX_REQUEST="true"
    )
    assert (
        "<html" not in partial.content.decode()
        and "news.sport.football" in partial.content.decode()
    )


def test_label_page_shows_history(world, callers):
    page = callers["owner"].get("/taxonomy/labels/news.sport/").content.decode()
    assert 'id="history"' in page and "Created" in page and "体育" in page


def test_register_a_need_with_names_and_mapping(world, callers, tenant_a, alice):
    response = callers["owner"].post(
        "/tenant/needs/new/",
        {
            "name": "Desk routing",
            "requested_labels": "Football, 科技",
            "label_mapping": "Soccer = news.sport.football",
            "threshold": "0.2",
            "top_k": "1",
            "delivery": ["sync", "stream"],
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    need = Need.objects.for_tenant(tenant_a).get(slug="desk-routing")
    assert need.requested_labels == ["news.sport.football", "news.tech"]
    assert need.label_mapping == {"Soccer": "news.sport.football"} and need.created_by == alice


def test_register_and_subscribe_in_one_step(world, callers, tenant_a):
    response = callers["owner"].post(
        "/tenant/needs/new/",
        {
            "name": "Topics",
            "requested_labels": "Business, Sport",
            "subscribe_model": "news-topics/tfidf-logreg",
            "threshold": "0",
            "top_k": "1",
            "delivery": ["sync"],
        },
    )
    assert response.status_code == 302
    need = Need.objects.for_tenant(tenant_a).get(slug="topics")
    assert need.model == world["model"] and need.label_set.slug == "news-topics"


def test_bad_need_form_shows_field_errors_and_writes_nothing(world, callers, tenant_a):
    count = Need.objects.dangerously_unscoped().count()
    response = callers["owner"].post(
        "/tenant/needs/new/",
        {
            "name": "Bad",
            "label_set": "news-topics",
            "label_mapping": "Weather = news.weather",
            "threshold": "0",
            "top_k": "1",
            "delivery": ["sync"],
        },
    )
    assert response.status_code == 400
    assert "Unknown label" in response.content.decode()
    assert Need.objects.dangerously_unscoped().count() == count


def test_suggestions_partial_ranks_news_topics_for_ds_request(world, callers):
    page = (
        callers["outsider"]
        .get("/tenant/needs/suggestions/", {"requested_labels": "Business, 体育, Tech, Politics"})
        .content.decode()
    )
    assert page.index('data-slug="news-topics"') < page.index("Live model")
    assert 'data-use-model="news-topics/tfidf-logreg"' in page


def test_portal_subscribe_and_retire_change_the_need(world, callers, tenant_a):
    callers["owner"].post("/tenant/needs/a-need/subscribe/", {"model": "news-topics/tfidf-logreg"})
    need = Need.objects.for_tenant(tenant_a).get(slug="a-need")
    assert need.model == world["model"]
    callers["owner"].post("/tenant/needs/a-need/retire/")
    assert Need.objects.for_tenant(tenant_a).get(slug="a-need").status == NeedStatus.RETIRED


def test_new_key_is_shown_once_and_never_again(world, callers, tenant_a):
    response = callers["owner"].post(
        "/tenant/keys/", {"name": "portal-key", "scopes": ["tag", "read"]}
    )
    page = response.content.decode()
    api_key = ApiKey.objects.for_tenant(tenant_a).get(name="portal-key")
    start = page.index('id="plain-key">') + len('id="plain-key">')
    plain = page[start : page.index("<", start)]
    assert plain.startswith(f"tp_{api_key.prefix}_")
    assert response["Cache-Control"] == "no-store"
    assert plain not in callers["owner"].get("/tenant/keys/").content.decode()


def test_revoke_from_the_portal(world, callers, tenant_a):
    callers["owner"].post(f"/tenant/keys/{world['key_a'].prefix}/revoke/")
    world["key_a"].refresh_from_db()
    assert world["key_a"].revoked_at is not None
