from __future__ import annotations

import json
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from registry import artifacts
from registry.models import (
    AliasEvent,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    TrainingRun,
    TrainingSample,
)
from registry.services.aliases import alias_rollback, alias_set
from registry.services.versions import load_model_version
from tests.factories import UserFactory


@pytest.fixture
def populated(trained_version, train_version, tenant_a):
    """Two versions, aliases moved three times (with a rollback), and a tenant-owned model."""
    v1 = trained_version
    v2 = train_version(v1.snapshot)
    ops = UserFactory(username="ops")
    model = v1.registered_model
    alias_set(registered_model=model, alias="production", version=v1, actor=ops, reason="first")
    alias_set(registered_model=model, alias="production", version=v2, actor=ops, reason="better")
    alias_rollback(registered_model=model, actor=ops, reason="regression")
    alias_set(registered_model=model, alias="candidate", version=v2, actor=ops)
    train_version(v1.snapshot, algorithm="complement-nb", tenant=tenant_a)
    return model


def _empty_database() -> None:
    """Lose the server's database inside the test transaction (rolled back afterwards)."""
    if connection.vendor == "postgresql":
        # TRUNCATE refuses to run while deferred FK checks from this transaction are pending.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    call_command("flush", interactive=False, verbosity=0)


def _export(path) -> dict:
    call_command("export_registry", str(path))
    return json.loads((path / "registry.json").read_text()) if path.is_dir() else None


def test_export_then_import_into_an_empty_database_restores_everything(
    populated, tmp_path, settings
):
    before = _export(tmp_path / "bundle")
    shas = set(
        ModelVersion.objects.dangerously_unscoped().values_list("artifact_sha256", flat=True)
    )
    assert len(before["versions"]) == 3 and len(before["alias_events"]) == 4

    # Lose the server: empty database, empty artifact store.
    _empty_database()
    assert not ModelVersion.objects.dangerously_unscoped().exists()
    settings.ARTIFACT_ROOT = tmp_path / "new-store"

    call_command("import_registry", str(tmp_path / "bundle"))

    after = _export(tmp_path / "again")
    assert after == before  # identical hashes and metadata, natural key by natural key
    assert (
        set(ModelVersion.objects.dangerously_unscoped().values_list("artifact_sha256", flat=True))
        == shas
    )
    for sha in shas:
        assert artifacts.exists_intact(sha)
    production = ModelAlias.objects.get(name="production", registered_model__tenant=None)
    assert production.version.version == 1
    assert AliasEvent.objects.filter(action="rollback").get().actor.username == "ops"
    assert load_model_version(production.version).predict_label_lists(["goal match team"])


def test_importing_twice_is_a_no_op(populated, tmp_path):
    call_command("export_registry", str(tmp_path / "b.tar.gz"))
    counts = lambda: (  # noqa: E731
        TrainingSample.objects.dangerously_unscoped().count(),
        DatasetSnapshot.objects.dangerously_unscoped().count(),
        ModelVersion.objects.dangerously_unscoped().count(),
        TrainingRun.objects.dangerously_unscoped().count(),
        AliasEvent.objects.count(),
        ModelAlias.objects.count(),
    )
    before = counts()
    call_command("import_registry", str(tmp_path / "b.tar.gz"))
    call_command("import_registry", str(tmp_path / "b.tar.gz"))
    assert counts() == before


def test_a_corrupted_artifact_in_the_bundle_is_refused(populated, tmp_path, settings):
    bundle = tmp_path / "bundle"
    _export(bundle)
    victim = next((bundle / "artifacts").iterdir())
    os.chmod(victim, 0o644)
    victim.write_bytes(victim.read_bytes()[:-10] + b"corrupted!")
    _empty_database()
    settings.ARTIFACT_ROOT = tmp_path / "new-store"
    with pytest.raises(CommandError, match="corrupted"):
        call_command("import_registry", str(bundle))
    assert not ModelVersion.objects.dangerously_unscoped().exists()
    assert not TrainingSample.objects.dangerously_unscoped().exists()


def test_export_refuses_to_back_up_a_tampered_artifact(populated, tmp_path):
    version = ModelVersion.objects.dangerously_unscoped().first()
    path = artifacts.path_for(version.artifact_sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"not the model")
    with pytest.raises(CommandError, match="altered or corrupted"):
        call_command("export_registry", str(tmp_path / "bundle"))


def test_import_refuses_a_conflicting_version(populated, tmp_path):
    bundle = tmp_path / "bundle"
    data = _export(bundle)
    data["versions"][0]["artifact_sha256"] = data["versions"][-1]["artifact_sha256"]
    assert data["versions"][0]["artifact_sha256"] != data["versions"][1]["artifact_sha256"]
    (bundle / "registry.json").write_text(json.dumps(data))
    with pytest.raises(CommandError, match="different artifact"):
        call_command("import_registry", str(bundle))
