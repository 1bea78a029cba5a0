"""A retrain's snapshot: the parent's training data plus accepted samples, the parent's test set
kept exactly, held-out (fresh) samples never included."""

from __future__ import annotations

from registry.models import SampleSource, TrainingSample
from registry.selectors import serving_version
from registry.services.datasets import SPLIT_DERIVED, snapshot_derive
from tests.retraining.conftest import add_samples, shifted_rows


def test_derived_snapshot_keeps_the_parent_test_set_and_adds_only_accepted_samples(
    need_with_champion,
):
    need = need_with_champion
    parent = serving_version(need).snapshot
    accepted = add_samples(need, shifted_rows(per_label=5, seed=1, start=100))
    fresh = add_samples(
        need,
        shifted_rows(per_label=5, seed=2, start=200),
        source=SampleSource.REVIEW,
        held_out=True,
    )
    imported = add_samples(
        need, shifted_rows(per_label=5, seed=3, start=300), source=SampleSource.IMPORT
    )

    snapshot, added = snapshot_derive(parent=parent, tenant=need.tenant)

    assert snapshot.split_strategy == SPLIT_DERIVED
    assert snapshot.parent_id == parent.pk
    assert snapshot.test_sample_ids == sorted(parent.test_sample_ids)
    assert set(snapshot.train_sample_ids) == set(parent.train_sample_ids) | set(accepted)
    assert added == len(accepted) == 5
    assert not set(fresh) & set(snapshot.train_sample_ids + snapshot.test_sample_ids)
    assert not set(imported) & set(snapshot.train_sample_ids)
    assert snapshot.content_hash != parent.content_hash


def test_deriving_the_same_content_twice_returns_the_same_snapshot(need_with_champion):
    need = need_with_champion
    parent = serving_version(need).snapshot
    add_samples(need, shifted_rows(per_label=4, seed=1, start=100))
    first, _ = snapshot_derive(parent=parent, tenant=need.tenant)
    again, _ = snapshot_derive(parent=parent, tenant=need.tenant)
    assert again.pk == first.pk


def test_an_accepted_sample_repeating_a_test_text_is_left_out(need_with_champion):
    """It would contaminate the comparison: the challenger would train on a test item."""
    need = need_with_champion
    parent = serving_version(need).snapshot
    test_sample = TrainingSample.objects.for_tenant(need.tenant).get(pk=parent.test_sample_ids[0])
    from registry.datasets import SampleRow

    copy = add_samples(
        need,
        [SampleRow(row=1, text=test_sample.text, labels=["news.sport"])],
        source=SampleSource.CASE,
    )
    snapshot, added = snapshot_derive(parent=parent, tenant=need.tenant)
    assert added == 0
    assert copy[0] not in snapshot.train_sample_ids


def test_a_derived_snapshot_survives_a_registry_backup_and_restore(
    shifted_need, run_retrain, tmp_path, settings
):
    """The bundle carries the parent link and the kept test set; the restore recomputes the
    derived snapshot's hash from them and refuses nothing."""
    import json

    from django.core.management import call_command

    from registry.models import DatasetSnapshot
    from tests.registry.test_bundle import _empty_database

    retrain = run_retrain(shifted_need)
    derived = retrain.snapshot
    call_command("export_registry", str(tmp_path / "bundle"))
    before = json.loads((tmp_path / "bundle" / "registry.json").read_text())
    row = next(s for s in before["snapshots"] if s["content_hash"] == derived.content_hash)
    assert row["split_strategy"] == SPLIT_DERIVED
    assert row["parent"] == retrain.champion.snapshot.content_hash

    _empty_database()
    settings.ARTIFACT_ROOT = tmp_path / "new-store"
    call_command("import_registry", str(tmp_path / "bundle"))

    restored = DatasetSnapshot.objects.dangerously_unscoped().get(content_hash=derived.content_hash)
    assert restored.parent.content_hash == row["parent"]
    assert len(restored.test_sample_ids) == len(derived.test_sample_ids)
    call_command("export_registry", str(tmp_path / "again"))
    after = json.loads((tmp_path / "again" / "registry.json").read_text())
    # Needs are not part of a registry bundle (tenants restore them), so a run's link to the need
    # it was started for comes back empty; everything else is identical.
    for bundle in (before, after):
        for run in bundle["training_runs"]:
            run.pop("need")
    assert after == before
