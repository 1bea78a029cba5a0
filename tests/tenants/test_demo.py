"""The taxonomy/tenants demo steps: the seed story's data, loaded twice without change."""

import io

from registry import selectors
from tagging_platform.demo import STEPS, ensure_admin
from taxonomy import demo as taxonomy_demo
from taxonomy.models import Label, LabelSet
from tenants import demo as tenants_demo
from tenants.models import Need, NeedStatus, Tenant


def _load() -> None:
    out = io.StringIO()
    ensure_admin(out)
    taxonomy_demo.load_taxonomy(out)
    tenants_demo.load_tenants(out)


def test_demo_steps_are_registered_in_order():
    names = [step for _, step in STEPS]
    assert names.index(taxonomy_demo.load_taxonomy) < names.index(tenants_demo.load_tenants)
    assert names.index(ensure_admin) < names.index(taxonomy_demo.load_taxonomy)


def test_demo_loads_the_seed_story_and_is_idempotent(db, client):
    _load()
    counts = (
        Label.objects.count(),
        LabelSet.objects.dangerously_unscoped().count(),
        Need.objects.dangerously_unscoped().count(),
    )
    _load()
    assert (
        Label.objects.count(),
        LabelSet.objects.dangerously_unscoped().count(),
        Need.objects.dangerously_unscoped().count(),
    ) == counts

    topics = LabelSet.objects.dangerously_unscoped().get(slug="news-topics", tenant__isnull=True)
    assert topics.current_revision.label_keys() == taxonomy_demo.NEWS_TOPICS
    sentiment = LabelSet.objects.dangerously_unscoped().get(
        slug="news-sentiment", tenant__isnull=True
    )
    assert sentiment.current_revision.label_keys() == [
        "sentiment.positive",
        "sentiment.neutral",
        "sentiment.negative",
    ]
    assert Label.objects.filter(key__in=["spam.spam", "spam.ham"]).count() == 2
    assert Label.objects.filter(parent__key="news.sport").count() >= 3

    need_a = Need.objects.dangerously_unscoped().get(tenant__slug="tenant-a", slug="news-topics")
    need_b = Need.objects.dangerously_unscoped().get(tenant__slug="tenant-b", slug="zh-sentiment")
    need_c = Need.objects.dangerously_unscoped().get(tenant__slug="tenant-c", slug="finer-topics")
    need_d = Need.objects.dangerously_unscoped().get(tenant__slug="tenant-d", slug="media-topics")
    assert need_a.label_set == topics and need_a.status == NeedStatus.APPROVED
    assert need_b.label_set == sentiment and need_b.status == NeedStatus.APPROVED
    assert (
        need_c.status == NeedStatus.REQUESTED and "news.sport.football" in need_c.requested_labels
    )
    assert need_d.requested_labels == ["news.business", "news.politics", "news.sport", "news.tech"]

    # D's request is offered A's label set first.
    suggestions = selectors.reuse_suggestions(
        tenant=Tenant.objects.get(slug="tenant-d"), terms=need_d.requested_labels
    )
    assert suggestions.label_sets[0]["label_set"] == topics

    # Through the login page (django-axes's backend needs the request that client.login lacks).
    assert client.post("/login/", {"username": "dave", "password": "dave"}).status_code == 302
    page = client.get("/tenant/needs/media-topics/").content.decode()
    assert 'data-slug="news-topics"' in page
