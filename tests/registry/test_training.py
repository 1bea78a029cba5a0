from __future__ import annotations

import logging
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from registry import artifacts
from registry.errors import RegistryError
from registry.evaluation import evaluate
from registry.ml import ALGORITHMS, TextClassifier
from registry.models import (
    ArtifactIntegrityIncident,
    DatasetSnapshot,
    ModelVersion,
    RegisteredModel,
    RunStatus,
    TrainingRun,
    TrainingSample,
)
from registry.services.datasets import (
    current_revision,
    samples_import,
    snapshot_create,
    snapshot_split,
)
from registry.services.training import training_run_create, training_run_execute
from registry.services.versions import load_model_version, versions_compare
from tests.factories import NeedFactory, make_label_set
from tests.registry.conftest import synthetic_rows


def test_train_register_load_round_trip(trained_version):
    version = trained_version
    assert version.version == 1
    assert version.registered_model.name == "news-topics/tfidf-logreg"
    assert version.registered_model.tenant is None
    assert version.artifact_size == artifacts.path_for(version.artifact_sha256).stat().st_size
    assert version.sklearn_version and version.python_version
    assert version.params["classifier"]["C"] == 10.0
    assert version.params["vectorizer"]["analyzer"] == "word"
    assert version.params["split"]["snapshot"] == version.snapshot.content_hash
    assert version.latency_p50_ms > 0 and version.latency_p99_ms >= version.latency_p50_ms
    assert version.throughput_docs_per_s > 0

    loaded = load_model_version(version)
    assert isinstance(loaded, TextClassifier)
    texts, label_lists = snapshot_split(version.snapshot, "test")
    # The loaded model reproduces exactly the evaluation recorded at training time.
    again = evaluate(loaded, texts, label_lists)
    assert again["macro_f1"] == version.metrics["macro_f1"]
    assert again["confusion_matrix"] == version.metrics["confusion_matrix"]
    assert version.metrics["macro_f1"] > 0.8
    assert set(version.metrics["per_label"]) == {"news.business", "news.sport", "news.tech"}
    assert sum(map(sum, version.metrics["confusion_matrix"])) == len(texts)


def test_run_records_status_progress_log_and_timings(trained_version):
    run = trained_version.training_run
    assert run.status == RunStatus.SUCCEEDED
    assert run.progress == 1.0
    assert run.duration_seconds is not None and run.duration_seconds >= 0
    assert "trained tfidf-logreg" in run.log and "evaluated on" in run.log
    assert trained_version.metrics["timings"]["train_seconds"] >= 0


def test_redelivered_task_does_not_train_twice(trained_version):
    run = trained_version.training_run
    assert training_run_execute(run_id=run.pk) is None
    assert (
        ModelVersion.objects.dangerously_unscoped()
        .filter(registered_model=run.registered_model)
        .count()
        == 1
    )


def test_queued_run_is_claimed_once(topic_snapshot):
    run = training_run_create(
        label_set=topic_snapshot.revision.label_set, snapshot=topic_snapshot, enqueue=False
    )
    first = training_run_execute(run_id=run.pk)
    second = training_run_execute(run_id=run.pk)
    assert first.status == RunStatus.SUCCEEDED
    assert second is None


def test_versions_are_numbered_with_parent(trained_version, train_version):
    v2 = train_version(trained_version.snapshot)
    assert v2.version == 2
    assert v2.parent == trained_version
    assert v2.registered_model == trained_version.registered_model


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_trains_and_records_its_hyperparameters(
    topic_snapshot, train_version, algorithm
):
    version = train_version(topic_snapshot, algorithm=algorithm)
    assert version.registered_model.name == f"news-topics/{algorithm}"
    assert version.algorithm == algorithm
    assert version.params["classifier"]
    assert version.metrics["macro_f1"] > 0.6
    scores = load_model_version(version).predict_scores(["goal team match"])
    assert scores.shape == (1, 3)


def test_multilabel_uses_one_vs_rest_with_tuned_thresholds(db, train_version):
    label_set = make_label_set(
        slug="multi", keys_=["news.business", "news.sport", "news.tech"], kind="multilabel"
    )
    rows = synthetic_rows(per_label=25)
    for i, row in enumerate(rows[:20]):
        row.labels = [row.labels[0], "news.tech"] if row.labels[0] != "news.tech" else row.labels
        row.text += f" software chip {i}"
    samples_import(revision=current_revision(label_set), tenant=None, rows=rows)
    snapshot = snapshot_create(revision=current_revision(label_set))
    version = train_version(snapshot)
    model = load_model_version(version)
    assert model.multilabel
    assert set(version.params["thresholds"]) == {"news.business", "news.sport", "news.tech"}
    assert version.params["threshold_tuning"]["method"] == "validation-slice"
    assert model.thresholds == version.params["thresholds"]
    assert version.metrics["matrix_kind"] == "co-occurrence"


def test_failed_run_is_marked_with_its_error(topic_snapshot, monkeypatch):
    run = training_run_create(
        label_set=topic_snapshot.revision.label_set, snapshot=topic_snapshot, enqueue=False
    )
    TrainingRun.objects.dangerously_unscoped().filter(pk=run.pk).update(
        params={"classifier": {"C": -1}}
    )
    result = training_run_execute(run_id=run.pk)
    assert result.status == RunStatus.FAILED
    assert "C" in result.error
    assert "FAILED" in result.log
    assert not ModelVersion.objects.dangerously_unscoped().exists()


def test_training_for_a_need_attaches_the_model(topic_snapshot, tenant_a, train_version):
    need = NeedFactory(tenant=tenant_a, label_set=topic_snapshot.revision.label_set)
    run = training_run_create(need=need, enqueue=False)
    training_run_execute(run_id=run.pk)
    need.refresh_from_db()
    assert need.model == run.registered_model
    assert run.registered_model.tenant == tenant_a


def test_tampered_artifact_is_refused_and_recorded(trained_version, caplog):
    path = artifacts.path_for(trained_version.artifact_sha256)
    os.chmod(path, 0o644)
    with open(path, "ab") as handle:
        handle.write(b"tampered")
    with caplog.at_level(logging.ERROR), pytest.raises(artifacts.ArtifactIntegrityError) as exc:
        load_model_version(trained_version)
    assert "altered or corrupted" in str(exc.value)
    assert any(
        r.levelno == logging.ERROR and "artifact integrity" in r.message for r in caplog.records
    )
    with pytest.raises(artifacts.ArtifactIntegrityError):
        artifacts.load(trained_version.artifact_sha256)
    incident = ArtifactIntegrityIncident.objects.get()
    assert incident.kind == "mismatch"
    assert incident.model_version == trained_version
    assert incident.occurrences == 2
    assert incident.actual_sha256 and incident.actual_sha256 != trained_version.artifact_sha256


def test_missing_artifact_is_refused_with_a_restore_hint(trained_version):
    path = artifacts.path_for(trained_version.artifact_sha256)
    path.unlink()
    with pytest.raises(artifacts.ArtifactMissing, match="import_registry"):
        load_model_version(trained_version)
    assert ArtifactIntegrityIncident.objects.get().kind == "missing"


def test_artifacts_are_stored_read_only(trained_version):
    mode = artifacts.path_for(trained_version.artifact_sha256).stat().st_mode
    assert mode & 0o222 == 0


def test_compare_reevaluates_both_versions_on_one_test_set(trained_version, train_version):
    other = train_version(trained_version.snapshot, algorithm="complement-nb")
    result = versions_compare(a=trained_version, b=other)
    assert result["snapshot"] == trained_version.snapshot.content_hash
    assert result["n_test"] == len(trained_version.snapshot.test_sample_ids)
    assert result["a"]["metrics"]["macro_f1"] == trained_version.metrics["macro_f1"]
    row = result["per_label"]["news.sport"]
    assert row["f1_delta"] == pytest.approx(row["f1_b"] - row["f1_a"], abs=1e-4)
    macro = result["overall"]["macro_f1"]
    assert macro["delta"] == pytest.approx(macro["b"] - macro["a"], abs=1e-4)


def test_compare_refuses_versions_of_different_label_sets(trained_version, db, train_version):
    other_set = make_label_set(slug="other", keys_=["news.business", "news.sport", "news.tech"])
    samples_import(revision=current_revision(other_set), tenant=None, rows=synthetic_rows(seed=3))
    other = train_version(snapshot_create(revision=current_revision(other_set)))
    with pytest.raises(RegistryError, match="same label set"):
        versions_compare(a=trained_version, b=other)


def test_unknown_algorithm_is_refused(topic_snapshot):
    with pytest.raises(RegistryError, match="Unknown algorithm"):
        training_run_create(label_set=topic_snapshot.revision.label_set, algorithm="bert")
    assert not RegisteredModel.objects.dangerously_unscoped().exists()


def test_snapshot_is_content_addressed_and_deterministic(topic_samples):
    revision = current_revision(topic_samples)
    first = snapshot_create(revision=revision)
    again = snapshot_create(revision=revision)
    assert again.pk == first.pk
    other_seed = snapshot_create(revision=revision, seed=7)
    assert other_seed.content_hash != first.content_hash
    assert set(other_seed.test_sample_ids) != set(first.test_sample_ids)
    assert DatasetSnapshot.objects.dangerously_unscoped().count() == 2
    # Stratified: every label keeps about test_fraction of its 30 samples in test.
    texts, lists = snapshot_split(first, "test")
    assert sorted(sum(lists, [])) == sorted(
        ["news.business"] * 6 + ["news.sport"] * 6 + ["news.tech"] * 6
    )
    assert first.label_distribution == {"news.business": 30, "news.sport": 30, "news.tech": 30}
    assert not set(first.train_sample_ids) & set(first.test_sample_ids)


def test_snapshot_changes_when_data_changes(topic_snapshot):
    revision = topic_snapshot.revision
    samples_import(revision=revision, tenant=None, rows=synthetic_rows(per_label=2, seed=9))
    assert snapshot_create(revision=revision).content_hash != topic_snapshot.content_hash


def test_snapshot_honours_the_data_sets_own_test_split(topics):
    rows = synthetic_rows()
    for row in rows[::5]:
        row.origin_split = "test"
    samples_import(revision=current_revision(topics), tenant=None, rows=rows)
    snapshot = snapshot_create(revision=current_revision(topics))
    assert len(snapshot.test_sample_ids) == len(rows[::5])
    assert "origin split" in snapshot.description


def test_tenant_snapshot_includes_shared_and_own_samples_only(topic_samples, tenant_a, tenant_b):
    revision = current_revision(topic_samples)
    samples_import(revision=revision, tenant=tenant_a, rows=synthetic_rows(per_label=3, seed=5))
    samples_import(revision=revision, tenant=tenant_b, rows=synthetic_rows(per_label=4, seed=6))
    snapshot = snapshot_create(revision=revision, tenant=tenant_a)
    assert len(snapshot.train_sample_ids) + len(snapshot.test_sample_ids) == 90 + 9


def test_import_dataset_needs_the_label_set(db):
    with pytest.raises(CommandError, match="news-topics.*does not exist"):
        call_command("import_dataset", "bbc")


def test_held_out_samples_never_enter_a_snapshot(topic_samples):
    revision = current_revision(topic_samples)
    before = snapshot_create(revision=revision)
    held = TrainingSample.objects.for_owner(None).filter(revision=revision).order_by("id")[:5]
    held_ids = [sample.pk for sample in held]
    TrainingSample.objects.for_owner(None).filter(id__in=held_ids).update(held_out=True)
    after = snapshot_create(revision=revision)
    assert after.pk != before.pk
    in_snapshot = set(after.train_sample_ids) | set(after.test_sample_ids)
    assert not in_snapshot & set(held_ids)
    assert len(in_snapshot) == len(set(before.train_sample_ids) | set(before.test_sample_ids)) - 5
