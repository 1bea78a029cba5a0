"""The artifact store's one publish path (registry.artifacts._publish), used by `store` (new
models) and `import_file` (bytes restored from a bundle)."""

from __future__ import annotations

import os
import stat

import pytest

from registry import artifacts


def _stored_files():
    return sorted(p for p in artifacts.root().rglob("*.joblib") if p.parent.name != "tmp")


def test_store_writes_a_read_only_content_addressed_file_once():
    first = artifacts.store({"weights": [1, 2, 3]})
    again = artifacts.store({"weights": [1, 2, 3]})
    assert first == again
    path = artifacts.path_for(first.sha256)
    assert _stored_files() == [path]
    assert artifacts.file_sha256(path) == first.sha256 and path.stat().st_size == first.size
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not any((artifacts.root() / "tmp").iterdir())  # no temp file left behind


def _damage(path):
    os.chmod(path, 0o644)
    path.write_bytes(b"altered")
    os.chmod(path, 0o444)


def test_store_refuses_to_publish_next_to_an_altered_copy():
    stored = artifacts.store({"weights": [4]})
    path = artifacts.path_for(stored.sha256)
    _damage(path)
    with pytest.raises(artifacts.ArtifactIntegrityError, match="does not match its name"):
        artifacts.store({"weights": [4]})
    assert path.read_bytes() == b"altered"  # never overwritten by a new store
    assert not any((artifacts.root() / "tmp").iterdir())


def test_import_file_repairs_an_altered_copy_with_verified_bytes(tmp_path):
    stored = artifacts.store({"weights": [5]})
    path = artifacts.path_for(stored.sha256)
    backup = tmp_path / "backup.joblib"
    backup.write_bytes(path.read_bytes())
    _damage(path)
    assert artifacts.import_file(backup, stored.sha256) == stored.size
    assert artifacts.file_sha256(path) == stored.sha256
    assert not path.stat().st_mode & stat.S_IWUSR


def test_import_file_refuses_bytes_that_do_not_match(tmp_path):
    stored = artifacts.store({"weights": [6]})
    bad = tmp_path / "bad.joblib"
    bad.write_bytes(b"not the model")
    with pytest.raises(artifacts.ArtifactIntegrityError):
        artifacts.import_file(bad, "0" * 64)
    assert _stored_files() == [artifacts.path_for(stored.sha256)]
