"""The object-storage artifact backend (ARTIFACT_STORAGE=s3) against a real S3-protocol server
process (moto in server mode, see the `moto_server` fixture): content-addressed keys, the sha256
checked after every download before unpickling, a bounded per-host read-through cache, and the
same integrity incidents, export and import as the local store."""

from __future__ import annotations

import hashlib

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from registry import artifacts
from registry.models import ArtifactIntegrityIncident, ModelVersion
from registry.services.versions import load_model_version


def _object_bytes(bucket, sha: str) -> bytes:
    return bucket.Object(artifacts.object_key(sha)).get()["Body"].read()


def _new_host(settings, tmp_path, name: str):
    """Another host: same bucket, its own empty artifact cache."""
    settings.ARTIFACT_CACHE_DIR = tmp_path / name


def test_store_uploads_under_the_content_address_and_not_to_the_local_root(s3_artifacts):
    stored = artifacts.store({"weights": [1, 2, 3]})
    again = artifacts.store({"weights": [1, 2, 3]})

    assert again == stored
    body = _object_bytes(s3_artifacts, stored.sha256)
    assert hashlib.sha256(body).hexdigest() == stored.sha256 and len(body) == stored.size
    keys = [o.key for o in s3_artifacts.objects.all()]
    assert keys == [f"artifacts/{stored.sha256[:2]}/{stored.sha256}.joblib"]
    assert not list(artifacts.root().rglob("*.joblib"))  # nothing written to ARTIFACT_ROOT


def test_a_second_host_downloads_verifies_and_caches_the_model(s3_artifacts, settings, tmp_path):
    stored = artifacts.store({"weights": [7]})
    _new_host(settings, tmp_path, "host-b")

    assert artifacts.load(stored.sha256) == {"weights": [7]}
    cached = artifacts.cache_root() / stored.sha256[:2] / f"{stored.sha256}.joblib"
    assert artifacts.file_sha256(cached) == stored.sha256


def test_an_altered_object_is_refused_before_unpickling_with_an_incident(
    s3_artifacts, settings, tmp_path, trained_version
):
    sha = trained_version.artifact_sha256
    s3_artifacts.put_object(Key=artifacts.object_key(sha), Body=b"not the model")
    _new_host(settings, tmp_path, "host-b")

    with pytest.raises(artifacts.ArtifactIntegrityError, match="altered or corrupted"):
        artifacts.load(sha)
    incident = ArtifactIntegrityIncident.objects.get(sha256=sha)
    assert incident.kind == "mismatch" and incident.model_version == trained_version
    assert incident.actual_sha256 == hashlib.sha256(b"not the model").hexdigest()
    assert incident.path.startswith("s3://")
    assert not list(artifacts.cache_root().rglob("*.joblib"))  # refused bytes are never cached


def test_a_missing_object_is_reported_as_missing(s3_artifacts, settings, tmp_path, db):
    stored = artifacts.store({"weights": [8]})
    s3_artifacts.Object(artifacts.object_key(stored.sha256)).delete()
    _new_host(settings, tmp_path, "host-b")

    with pytest.raises(artifacts.ArtifactMissing, match="import_registry"):
        artifacts.load(stored.sha256)
    assert ArtifactIntegrityIncident.objects.get(sha256=stored.sha256).kind == "missing"


def test_a_damaged_cache_copy_is_fetched_again_not_loaded(s3_artifacts):
    stored = artifacts.store({"weights": [9]})
    cached = artifacts.cache_root() / stored.sha256[:2] / f"{stored.sha256}.joblib"
    cached.chmod(0o644)
    cached.write_bytes(b"tampered on this host")

    assert artifacts.load(stored.sha256) == {"weights": [9]}
    assert artifacts.file_sha256(cached) == stored.sha256


def test_the_cache_stays_within_its_byte_bound_evicting_the_least_recently_used(
    s3_artifacts, settings
):
    stored = [artifacts.store({"weights": list(range(n * 1000))}) for n in (1, 2, 3)]
    settings.ARTIFACT_CACHE_MAX_BYTES = stored[1].size + stored[2].size
    for item in stored:  # cold cache, then load in order: the first becomes least recent
        (artifacts.cache_root() / item.sha256[:2] / f"{item.sha256}.joblib").unlink()
    for item in stored:
        artifacts.load(item.sha256)

    cached = {p.stem for p in artifacts.cache_root().glob("??/*.joblib")}
    assert cached == {stored[1].sha256, stored[2].sha256}
    assert sum(p.stat().st_size for p in artifacts.cache_root().glob("??/*.joblib")) <= (
        settings.ARTIFACT_CACHE_MAX_BYTES
    )
    assert artifacts.load(stored[0].sha256) == {"weights": list(range(1000))}  # fetched again


def test_storing_over_an_altered_object_is_refused(s3_artifacts):
    stored = artifacts.store({"weights": [4]})
    s3_artifacts.put_object(Key=artifacts.object_key(stored.sha256), Body=b"altered")
    with pytest.raises(artifacts.ArtifactIntegrityError, match="does not match its name"):
        artifacts.store({"weights": [4]})


def test_export_from_the_bucket_and_import_into_a_new_bucket(
    s3_artifacts, trained_version, tmp_path, settings, moto_server
):
    call_command("export_registry", str(tmp_path / "bundle"))
    sha = trained_version.artifact_sha256
    assert artifacts.file_sha256(tmp_path / "bundle" / "artifacts" / f"{sha}.joblib") == sha

    # The bucket is lost: an empty one replaces it, and this host's cache is gone too.
    s3_artifacts.objects.all().delete()
    _new_host(settings, tmp_path, "host-b")
    assert not artifacts.exists_intact(sha)
    call_command("import_registry", str(tmp_path / "bundle"))

    assert artifacts.exists_intact(sha)
    assert hashlib.sha256(_object_bytes(s3_artifacts, sha)).hexdigest() == sha
    version = ModelVersion.objects.dangerously_unscoped().get(pk=trained_version.pk)
    assert load_model_version(version).predict_label_lists(["goal match team"])


def test_import_repairs_an_altered_object_with_the_bundles_verified_bytes(
    s3_artifacts, trained_version, tmp_path, settings
):
    call_command("export_registry", str(tmp_path / "bundle"))
    sha = trained_version.artifact_sha256
    s3_artifacts.put_object(Key=artifacts.object_key(sha), Body=b"altered")
    _new_host(settings, tmp_path, "host-b")

    call_command("import_registry", str(tmp_path / "bundle"))
    assert hashlib.sha256(_object_bytes(s3_artifacts, sha)).hexdigest() == sha
    assert artifacts.load(sha)


def test_export_refuses_to_back_up_an_altered_object(
    s3_artifacts, trained_version, tmp_path, settings
):
    sha = trained_version.artifact_sha256
    s3_artifacts.put_object(Key=artifacts.object_key(sha), Body=b"altered")
    _new_host(settings, tmp_path, "host-b")
    with pytest.raises(CommandError, match="altered or corrupted"):
        call_command("export_registry", str(tmp_path / "bundle"))


def test_readyz_checks_the_bucket(s3_artifacts, client, settings, db):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    body = client.get("/readyz").json()
    assert body["checks"]["artifacts"]["ok"] is True
    assert body["checks"]["artifacts"]["backend"] == "s3"
    s3_artifacts.delete()  # the bucket disappears: not ready
    assert client.get("/readyz").json()["checks"]["artifacts"]["ok"] is False
