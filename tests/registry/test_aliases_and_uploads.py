from __future__ import annotations

import json

import pytest

from registry.errors import DatasetImportError, RegistryError
from registry.models import AliasEvent, ModelAlias, TrainingSample, VersionStatus
from registry.services.aliases import alias_rollback, alias_set
from registry.services.datasets import dataset_upload
from registry.services.versions import model_version_archive
from tests.factories import UserFactory


@pytest.fixture
def three_versions(trained_version, train_version):
    return [
        trained_version,
        train_version(trained_version.snapshot),
        train_version(trained_version.snapshot),
    ]


def test_promotion_updates_the_alias_row_in_place_with_audit(three_versions):
    v1, v2, _ = three_versions
    model = v1.registered_model
    user = UserFactory(username="ops")
    alias = alias_set(
        registered_model=model, alias="production", version=v1, actor=user, reason="first"
    )
    first_updated = alias.updated_at
    again = alias_set(
        registered_model=model, alias="production", version=v2, actor=user, reason="better"
    )
    assert again.pk == alias.pk
    row = ModelAlias.objects.get(registered_model=model, name="production")
    assert row.version == v2 and row.updated_at > first_updated
    events = list(AliasEvent.objects.filter(registered_model=model).order_by("at", "id"))
    assert [(e.from_version, e.to_version, e.actor, e.reason) for e in events] == [
        (None, v1, user, "first"),
        (v1, v2, user, "better"),
    ]


def test_rollback_walks_back_through_promotions(three_versions):
    v1, v2, v3 = three_versions
    model = v1.registered_model
    for version in three_versions:
        alias_set(registered_model=model, alias="production", version=version, reason="promote")
    assert alias_rollback(registered_model=model).version == v2
    assert alias_rollback(registered_model=model).version == v1
    with pytest.raises(RegistryError, match="no earlier version"):
        alias_rollback(registered_model=model)
    actions = list(
        AliasEvent.objects.filter(registered_model=model)
        .order_by("at", "id")
        .values_list("action", "to_version")
    )
    assert actions == [
        ("set", v1.pk),
        ("set", v2.pk),
        ("set", v3.pk),
        ("rollback", v2.pk),
        ("rollback", v1.pk),
    ]


def test_aliases_are_independent(three_versions):
    v1, v2, _ = three_versions
    model = v1.registered_model
    alias_set(registered_model=model, alias="production", version=v1)
    alias_set(registered_model=model, alias="candidate", version=v2)
    assert {a.name: a.version for a in model.aliases.all()} == {"production": v1, "candidate": v2}


def test_unknown_alias_and_foreign_version_are_refused(
    trained_version, topic_snapshot, train_version
):
    model = trained_version.registered_model
    with pytest.raises(RegistryError, match="Alias must be one of"):
        alias_set(registered_model=model, alias="staging", version=trained_version)
    other = train_version(topic_snapshot, algorithm="complement-nb")
    with pytest.raises(RegistryError, match="not a version of"):
        alias_set(registered_model=model, alias="production", version=other)
    assert not AliasEvent.objects.exists()


def test_archiving_keeps_bytes_and_refuses_aliased_versions(three_versions):
    from registry import artifacts

    v1, v2, _ = three_versions
    alias_set(registered_model=v1.registered_model, alias="production", version=v2)
    with pytest.raises(RegistryError, match="production"):
        model_version_archive(version=v2)
    archived = model_version_archive(version=v1)
    assert archived.status == VersionStatus.ARCHIVED
    assert artifacts.verify(v1.artifact_sha256).exists()
    with pytest.raises(RegistryError, match="archived"):
        alias_set(registered_model=v1.registered_model, alias="candidate", version=v1)


# --- Uploads ---------------------------------------------------------------------------------
GOOD_CSV = (
    "text,labels\n"
    "Shares rallied on strong bank profits,news.business\n"
    '"The striker scored, twice, in the final",news.sport\n'
    "New chip makes phones faster,news.tech\n"
)


def test_csv_upload_imports_every_row(topics, tenant_a):
    report = dataset_upload(
        label_set=topics, tenant=tenant_a, filename="a.csv", content=GOOD_CSV.encode()
    )
    assert report.created == 3
    assert report.by_label == {"news.business": 1, "news.sport": 1, "news.tech": 1}
    sample = TrainingSample.objects.dangerously_unscoped().get(text__startswith="The striker")
    assert sample.tenant == tenant_a and sample.source == "import"
    assert list(sample.labels.values_list("key", flat=True)) == ["news.sport"]


def test_reupload_is_idempotent(topics, tenant_a):
    dataset_upload(label_set=topics, tenant=tenant_a, filename="a.csv", content=GOOD_CSV.encode())
    again = dataset_upload(
        label_set=topics, tenant=tenant_a, filename="a.csv", content=GOOD_CSV.encode()
    )
    assert (again.created, again.unchanged) == (0, 3)
    assert TrainingSample.objects.dangerously_unscoped().count() == 3


def test_jsonl_upload_accepts_label_or_labels_and_split(topics):
    lines = [
        {"text": "Profit warning hits stock", "label": "news.business"},
        {"text": "Coach sacked after defeat", "labels": ["news.sport"], "split": "test"},
    ]
    content = "\n".join(json.dumps(line) for line in lines).encode()
    report = dataset_upload(label_set=topics, tenant=None, filename="d.jsonl", content=content)
    assert report.created == 2
    assert (
        TrainingSample.objects.dangerously_unscoped().get(text__startswith="Coach").origin_split
        == "test"
    )


def test_bad_upload_rows_are_reported_per_row_and_nothing_is_imported(topics, tenant_a):
    content = (
        b"text,labels\n"
        b"Good row about markets,news.business\n"
        b",news.sport\n"  # line 3: empty text
        b"Row with an unknown label,news.weather\n"  # line 4
        b"Two labels in a multiclass set,news.sport|news.tech\n"  # line 5
        b"Good row about markets,news.tech\n"  # line 6: same text, other label
        b"Another good row,news.tech\n"
    )
    with pytest.raises(DatasetImportError) as exc:
        dataset_upload(label_set=topics, tenant=tenant_a, filename="bad.csv", content=content)
    errors = [e.as_dict() for e in exc.value.errors]
    assert [(e["row"], e["field"]) for e in errors] == [
        (3, "text"),
        (4, "labels"),
        (5, "labels"),
        (6, "text"),
    ]
    assert "news.weather" in errors[1]["message"]
    assert "row 2" in errors[3]["message"]
    assert TrainingSample.objects.dangerously_unscoped().count() == 0


def test_bad_jsonl_lines_are_reported(topics):
    content = b'{"text": "ok", "labels": ["news.tech"]}\nnot json\n[1, 2]\n{"text": "x", "labels": [], "split": "holdout"}\n'
    with pytest.raises(DatasetImportError) as exc:
        dataset_upload(label_set=topics, tenant=None, filename="d.jsonl", content=content)
    assert [(e.row, e.field) for e in exc.value.errors] == [
        (2, "row"),
        (3, "row"),
        (4, "labels"),
        (4, "split"),
    ]
    assert TrainingSample.objects.dangerously_unscoped().count() == 0


def test_csv_without_required_columns_is_refused(topics):
    with pytest.raises(DatasetImportError) as exc:
        dataset_upload(label_set=topics, tenant=None, filename="d.csv", content=b"body,tag\nx,y\n")
    assert exc.value.errors[0].field == "header"


def test_non_utf8_and_unknown_format_are_refused(topics):
    with pytest.raises(DatasetImportError, match="nothing was imported") as exc:
        dataset_upload(
            label_set=topics,
            tenant=None,
            filename="d.csv",
            content="text,labels\né,x\n".encode("latin-1"),
        )
    assert exc.value.errors[0].message == "The file is not UTF-8 text."
    with pytest.raises(DatasetImportError) as exc:
        dataset_upload(label_set=topics, tenant=None, filename="d.xlsx", content=b"PK")
    assert exc.value.errors[0].field == "format"


def test_first_production_version_takes_approved_needs_live(trained_version, tenant_a):
    from tenants.models import NeedStatus
    from tests.factories import NeedFactory

    model = trained_version.registered_model
    approved = NeedFactory(tenant=tenant_a, model=model, status=NeedStatus.APPROVED)
    requested = NeedFactory(tenant=tenant_a, model=model, status=NeedStatus.REQUESTED)
    alias_set(registered_model=model, alias="candidate", version=trained_version)
    approved.refresh_from_db()
    assert approved.status == NeedStatus.APPROVED  # a candidate alone does not serve the need
    alias_set(registered_model=model, alias="production", version=trained_version)
    approved.refresh_from_db()
    requested.refresh_from_db()
    assert approved.status == NeedStatus.LIVE
    assert requested.status == NeedStatus.REQUESTED  # staff approval is still required
