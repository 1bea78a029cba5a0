"""The content-addressed artifact store under ARTIFACT_ROOT.

An artifact is a joblib file holding an envelope {"format", "python", "sklearn", "model"}. It is
written to a temp file, fsynced, and atomically renamed to `<root>/<sha[:2]>/<sha>.joblib`, then
made read-only. Bytes are never overwritten or deleted by the platform. Because a pickle is code,
`load()` checks the sha256 of the bytes before unpickling and refuses any mismatch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import joblib
import sklearn
from django.conf import settings

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_CHUNK = 1024 * 1024


class ArtifactError(Exception):
    """Base for artifact problems; the message says what is wrong and what to do."""


class ArtifactMissing(ArtifactError):
    pass


class ArtifactIntegrityError(ArtifactError):
    pass


class ArtifactIncompatible(ArtifactError):
    pass


@dataclass(frozen=True)
class StoredArtifact:
    sha256: str
    size: int
    python_version: str
    sklearn_version: str
    format_version: int


def root() -> Path:
    return Path(settings.ARTIFACT_ROOT)


def path_for(sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ArtifactError(f"Not a sha256 digest: {sha256!r}")
    return root() / sha256[:2] / f"{sha256}.joblib"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(
    write: Callable[[BinaryIO], None], *, expected_sha256: str = "", repair: bool = False
) -> tuple[str, int]:
    """The one way bytes enter the store: `write` fills a temp file, which is fsynced, hashed and
    atomically renamed to its content address, read-only. Returns (sha256, size).

    Identical bytes already stored are kept. A stored file that no longer matches its name is
    refused, unless `repair` (restoring verified bytes from a bundle, the only repair the platform
    performs)."""
    staging = root() / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=staging, suffix=".joblib.part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        sha256 = file_sha256(tmp)
        size = tmp.stat().st_size
        if expected_sha256 and sha256 != expected_sha256:
            raise ArtifactIntegrityError(
                f"The copy hashes to {sha256[:12]}…, not {expected_sha256[:12]}…."
            )
        final = path_for(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists() and file_sha256(final) == sha256:
            tmp.unlink()
            return sha256, size
        if final.exists() and not repair:
            raise ArtifactIntegrityError(
                f"{final} exists but does not match its name; it was altered. Restore it from a "
                "registry bundle (import_registry) before storing new models."
            )
        os.chmod(tmp, 0o444)
        if final.exists():
            os.chmod(final, 0o644)  # the damaged copy is read-only: make it replaceable
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha256, size


def _envelope(model) -> dict:
    return {
        "format": FORMAT_VERSION,
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "model": model,
    }


def serialise(model, handle: BinaryIO) -> None:
    """Write exactly the bytes `store(model)` would store (so their size is the artifact's)."""
    joblib.dump(_envelope(model), handle, compress=3)


def store_serialised(blob: bytes) -> StoredArtifact:
    """Store bytes that `serialise()` wrote in this process (its envelope names this process's
    Python and scikit-learn), e.g. after their size was measured: the stored size is that size."""
    sha256, size = _publish(lambda handle: handle.write(blob))
    return StoredArtifact(
        sha256, size, platform.python_version(), sklearn.__version__, FORMAT_VERSION
    )


def store(model) -> StoredArtifact:
    """Write `model` into the store; identical bytes are stored once. Returns its identity."""
    envelope = _envelope(model)
    sha256, size = _publish(lambda handle: joblib.dump(envelope, handle, compress=3))
    return StoredArtifact(sha256, size, envelope["python"], envelope["sklearn"], FORMAT_VERSION)


def _alert(sha256: str, *, kind: str, message: str, actual: str = "", path: Path | None = None):
    """Log at ERROR and keep a persistent incident row (visible in the admin).

    The row is best effort: failing to write it must never hide the refusal itself.
    """
    logger.error("artifact integrity: %s", message, extra={"sha256": sha256, "kind": kind})
    try:
        from registry.incidents import incident_record

        incident_record(sha256=sha256, kind=kind, message=message, actual=actual, path=path)
    except Exception:  # the database may be down or mid-rollback; the log line stands
        logger.exception("could not record the artifact integrity incident for %s", sha256)


def verify(sha256: str) -> Path:
    """Return the artifact's path if its bytes still hash to `sha256`; raise (and alert) otherwise."""
    path = path_for(sha256)
    if not path.exists():
        message = (
            f"Artifact {sha256[:12]}… is missing from {root()}. Restore it with import_registry."
        )
        _alert(sha256, kind="missing", message=message, path=path)
        raise ArtifactMissing(message)
    actual = file_sha256(path)
    if actual != sha256:
        message = (
            f"Refusing to load artifact {sha256[:12]}…: its bytes now hash to {actual[:12]}…, so the "
            "file was altered or corrupted. A pickle is code, so it is not loaded. Restore the file "
            "from a registry bundle (import_registry) or retrain."
        )
        _alert(sha256, kind="mismatch", message=message, actual=actual, path=path)
        raise ArtifactIntegrityError(message)
    return path


def exists_intact(sha256: str) -> bool:
    """True when the store holds bytes matching `sha256` (no alert: used by backup/restore)."""
    path = path_for(sha256)
    return path.exists() and file_sha256(path) == sha256


def import_file(source: Path, sha256: str) -> int:
    """Copy a file from a backup bundle into the store, refusing bytes that do not match.

    Returns the size. An intact copy already in the store is kept as is (imports are idempotent);
    a damaged one is replaced with the verified bytes, the only repair the platform performs.
    """
    actual = file_sha256(source)
    if actual != sha256:
        raise ArtifactIntegrityError(
            f"Bundle file {source.name} hashes to {actual[:12]}…, not {sha256[:12]}…: the bundle is "
            "corrupted, so nothing was imported."
        )
    final = path_for(sha256)
    if final.exists() and file_sha256(final) == sha256:
        return final.stat().st_size

    def copy(out: BinaryIO) -> None:
        with open(source, "rb") as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)

    return _publish(copy, expected_sha256=sha256, repair=True)[1]


def load(sha256: str):
    """Verify, then unpickle, an artifact. Returns the stored model object."""
    path = verify(sha256)
    envelope = joblib.load(path)
    if not isinstance(envelope, dict) or "format" not in envelope:
        raise ArtifactIncompatible(f"Artifact {sha256[:12]}… is not a platform artifact envelope.")
    if envelope["format"] > FORMAT_VERSION:
        raise ArtifactIncompatible(
            f"Artifact {sha256[:12]}… has format {envelope['format']}; this build reads up to "
            f"{FORMAT_VERSION}. Upgrade the platform."
        )
    saved, running = envelope["sklearn"], sklearn.__version__
    if saved.split(".")[:2] != running.split(".")[:2]:
        raise ArtifactIncompatible(
            f"Artifact {sha256[:12]}… was trained with scikit-learn {saved}, but this process runs "
            f"{running}. Pin scikit-learn=={saved} or retrain the model on this version."
        )
    return envelope["model"]
