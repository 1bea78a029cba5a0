"""A need's labels are NeedLabel rows: the database keeps them consistent, the API keeps its
shapes, usage is a count, a merge rewrites rows (and folds two rows of one need into one)."""

import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext

from taxonomy import services as taxonomy_services
from taxonomy.models import Label, LabelChange
from tenants import services
from tenants.models import NEED_EDITABLE_FIELDS, Need, NeedLabel
from tenants.serializers import NeedSerializer, NeedUpdateSerializer, NeedWriteSerializer
from tests.factories import NeedFactory, TenantFactory
from tests.taxonomy.factories import make_live_model


@pytest.fixture
def session_api(api, alice):
    api.force_authenticate(alice)
    return api


def _row(need, key, **fields):
    return NeedLabel(
        tenant_id=need.tenant_id, need=need, label=Label.objects.get(key=key), **fields
    )


# --- what the database refuses, whatever the caller ------------------------------------------
@pytest.mark.parametrize(
    "second",
    [
        {"key": "news.sport", "name": "Other"},  # the same label twice
        {"key": "news.tech", "name": "Sport"},  # the same own name for two labels
        {"key": "news.tech", "threshold": 1.5},  # a threshold outside [0, 1]
        {"key": "news.tech"},  # a row that is neither requested, named nor thresholded
    ],
    ids=["label-twice", "name-twice", "threshold-range", "says-nothing"],
)
def test_the_database_refuses_inconsistent_label_rows(tenant_a, news_topics, second):
    need = NeedFactory(tenant=tenant_a, label_set=news_topics)
    _row(need, "news.sport", name="Sport").save()
    key = second.pop("key")
    with pytest.raises(IntegrityError), transaction.atomic():
        _row(need, key, **second).save()


def test_unnamed_rows_do_not_clash(tenant_a, news_topics):
    need = NeedFactory(tenant=tenant_a, label_set=news_topics)
    _row(need, "news.sport", threshold=0.2).save()
    _row(need, "news.tech", threshold=0.3).save()
    assert need.per_label_thresholds == {"news.sport": 0.2, "news.tech": 0.3}
    assert need.label_mapping == {}


def test_a_label_row_belongs_to_its_needs_tenant(requires_postgres, tenant_a, tenant_b, tree):
    need = NeedFactory(tenant=tenant_a, requested_labels=["news.sport"])
    with pytest.raises(IntegrityError), transaction.atomic():
        NeedLabel.objects.create(
            tenant=tenant_b, need=need, label=tree["news.tech"], requested=True
        )


def test_a_label_in_use_by_a_need_cannot_be_deleted_even_directly(tree):
    NeedFactory(label_mapping={"IT": "news.tech"})
    with pytest.raises(ProtectedError):
        Label.objects.get(key="news.tech").delete()


# --- the service and the API: same shapes, rows underneath ----------------------------------
def test_api_shapes_are_built_from_rows(session_api, tenant_a, tree):
    response = session_api.post(
        "/api/v1/needs/",
        {
            "name": "Mine",
            "requested_labels": ["Football", "Tech", "news.politics"],
            "label_mapping": {" Soccer ": "news.sport.football", "IT": "news.tech"},
            "per_label_thresholds": {"news.tech": 0.4, "news.politics": 1},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["requested_labels"] == ["news.sport.football", "news.tech", "news.politics"]
    assert body["label_mapping"] == {"Soccer": "news.sport.football", "IT": "news.tech"}
    assert body["per_label_thresholds"] == {"news.tech": 0.4, "news.politics": 1.0}
    rows = NeedLabel.objects.for_tenant(tenant_a).order_by("position")
    assert [(r.label.key, r.name, r.threshold, r.requested) for r in rows] == [
        ("news.sport.football", "Soccer", None, True),
        ("news.tech", "IT", 0.4, True),
        ("news.politics", "", 1.0, True),
    ]
    assert session_api.get("/api/v1/needs/mine/").json() == body


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"Sport": "news.sport", "Sports": "news.sport"},
            "'Sports': 'news.sport' is named 'Sport' already; give a label one name.",
        ),
        ({"Sport": "news.sport", "Sport ": "news.tech"}, "'Sport ': This name is given twice."),
        ({"S" * 201: "news.sport"}, "Keep names to 200 characters."),
    ],
    ids=["two-names-one-label", "one-name-two-labels", "too-long"],
)
def test_a_mapping_the_rows_cannot_hold_is_a_field_error(
    session_api, news_topics, mapping, message
):
    response = session_api.post(
        "/api/v1/needs/",
        {"name": "N", "label_set": "news-topics", "label_mapping": mapping},
        format="json",
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["fields"]["label_mapping"][0]
    assert (
        not Need.objects.dangerously_unscoped().exists()
        and not NeedLabel.objects.dangerously_unscoped().exists()
    )


def test_update_replaces_the_rows_and_subscribe_drops_the_request(tenant_a, news_topics, tree):
    need = services.need_create(
        tenant=tenant_a,
        name="N",
        requested_labels=["news.sport", "news.tech", "news.sport.football"],
        label_mapping={"S": "news.sport"},
        per_label_thresholds={"news.sport.football": 0.7, "news.tech": 0.2},
    )
    need = services.need_update(need=need, label_mapping={"T": "news.tech"})
    assert need.label_mapping == {"T": "news.tech"}
    assert need.requested_labels == ["news.sport", "news.tech", "news.sport.football"]

    # Football comes back as Sport: subscribing needs the tenant to accept that shortfall.
    services.need_subscribe_model(
        need=need, model=make_live_model(label_set=news_topics), accept_shortfall=True
    )
    need = Need.objects.for_tenant(tenant_a).get(pk=need.pk)
    assert need.requested_labels == [] and need.label_set == news_topics
    # news.sport.football is not served by the model: its threshold (and its row) go.
    assert need.per_label_thresholds == {"news.tech": 0.2}
    assert need.label_mapping == {"T": "news.tech"}
    assert NeedLabel.objects.for_tenant(tenant_a).count() == 1


def test_need_list_reads_labels_in_one_query_whatever_the_count(session_api, tenant_a, tree):
    def list_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert session_api.get("/api/v1/needs/").status_code == 200
        return len(queries)

    NeedFactory(tenant=tenant_a, requested_labels=["news.sport"], label_mapping={"S": "news.sport"})
    one = list_queries()
    for _ in range(4):
        NeedFactory(
            tenant=tenant_a,
            requested_labels=["news.sport", "news.tech"],
            label_mapping={"S": "news.sport", "T": "news.tech"},
        )
    assert list_queries() == one
    assert len(session_api.get("/api/v1/needs/").json()["results"]) == 5


def test_one_field_list_for_service_and_serializers():
    assert set(NeedWriteSerializer().fields) == {"slug", *NEED_EDITABLE_FIELDS}
    assert set(NeedUpdateSerializer().fields) == set(NEED_EDITABLE_FIELDS)
    assert set(NEED_EDITABLE_FIELDS) <= set(NeedSerializer().fields)


# --- taxonomy: usage is a count, a merge rewrites rows ---------------------------------------
def test_label_usage_counts_needs_of_every_tenant_in_one_query(tree, django_assert_num_queries):
    NeedFactory(tenant=TenantFactory(slug="t1"), label_mapping={"IT": "news.tech"})
    NeedFactory(tenant=TenantFactory(slug="t2"), requested_labels=["news.tech"])
    NeedFactory(tenant=TenantFactory(slug="t3"), per_label_thresholds={"news.tech": 0.5})
    NeedFactory(tenant=TenantFactory(slug="t4"), requested_labels=["news.sport"])
    with django_assert_num_queries(6):  # one COUNT per kind of use, none per need
        usage = taxonomy_services.label_usage(label=tree["news.tech"])
    assert usage["tenants.needlabel.label"] == 3


def test_merge_folds_two_rows_of_one_need_into_the_targets(tree):
    """The decision when a need holds both labels: one row remains, the target's. It keeps its
    own name and threshold and takes the source's where it has none; it is requested if either
    was, at the earlier position; a name the source had beside the target's is dropped, and the
    merge's history says which."""
    both_named = NeedFactory(
        tenant=TenantFactory(slug="t1"),
        slug="both-named",
        requested_labels=["news.tech", "news.politics", "news.business"],
        label_mapping={"IT": "news.tech", "Money": "news.business"},
        per_label_thresholds={"news.tech": 0.4},
    )
    target_bare = NeedFactory(
        tenant=TenantFactory(slug="t2"),
        slug="target-bare",
        label_mapping={"IT": "news.tech"},
        per_label_thresholds={"news.tech": 0.3, "news.business": 0.6},
    )
    source_only = NeedFactory(
        tenant=TenantFactory(slug="t3"),
        slug="source-only",
        label_mapping={"IT": "news.tech", "Sport": "news.sport"},
    )
    untouched = NeedFactory(tenant=TenantFactory(slug="t4"), label_mapping={"S": "news.sport"})
    before = untouched.updated_at

    taxonomy_services.label_merge(source=tree["news.tech"], target=tree["news.business"])

    for need in (both_named, target_bare, source_only, untouched):
        need.refresh_from_db()
    assert both_named.requested_labels == ["news.business", "news.politics"]
    assert both_named.label_mapping == {"Money": "news.business"}
    assert both_named.per_label_thresholds == {"news.business": 0.4}
    assert target_bare.label_mapping == {"IT": "news.business"}
    assert target_bare.per_label_thresholds == {"news.business": 0.6}
    assert source_only.label_mapping == {"IT": "news.business", "Sport": "news.sport"}
    assert untouched.label_mapping == {"S": "news.sport"} and untouched.updated_at == before
    assert both_named.updated_at > before and source_only.updated_at > before
    assert not NeedLabel.objects.dangerously_unscoped().filter(label=tree["news.tech"]).exists()
    merge = LabelChange.objects.get(label_key="news.tech", action=LabelChange.Action.MERGE)
    assert merge.after["rewritten"]["needs"] == 3
    assert merge.after["needs_names_dropped"] == ["t1/both-named: IT"]


def test_merge_rewrites_needs_without_a_query_per_need(tree):
    def merge_queries(source: str, target: str, needs: int) -> int:
        for _ in range(needs):
            NeedFactory(label_mapping={"X": source})
        with CaptureQueriesContext(connection) as queries:
            taxonomy_services.label_merge(source=tree[source], target=tree[target])
        assert NeedLabel.objects.dangerously_unscoped().filter(label=tree[target]).count() == needs
        return len(queries)

    assert merge_queries("news.tech", "news.business", 1) == merge_queries(
        "sentiment.neutral", "sentiment.positive", 6
    )


@pytest.mark.django_db(transaction=True)
def test_a_merge_does_not_wait_for_needs_that_do_not_use_the_label(requires_postgres, tree):
    """The JSON merge locked every Need row on the platform: one need being edited elsewhere
    stalled it. Now only the rows of the two labels (and the needs holding the source) are
    written. `lock_timeout` turns a wait into an error instead of a hang."""
    busy = NeedFactory(label_mapping={"S": "news.sport"})
    user = NeedFactory(label_mapping={"IT": "news.tech"})
    locked, release = threading.Event(), threading.Event()

    def hold_the_busy_need():
        try:
            with transaction.atomic():
                list(
                    Need.objects.dangerously_unscoped()
                    .select_for_update()
                    .filter(pk=busy.pk)
                    .values("pk")
                )
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_busy_need)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
        taxonomy_services.label_merge(source=tree["news.tech"], target=tree["news.business"])
    finally:
        release.set()
        holder.join()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    user.refresh_from_db()
    assert user.label_mapping == {"IT": "news.business"}
