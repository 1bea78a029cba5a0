"""The content-addressed artifact store: ARTIFACT_ROOT on the local disk, or an S3 bucket.

An artifact is a joblib file holding an envelope {"format", "python", "sklearn", "model"}. It is
written to a temp file, fsynced, hashed and published under its sha256. Bytes are never
overwritten or deleted by the platform. Because a pickle is code, `load()` checks the sha256 of the
bytes before unpickling and refuses any mismatch.

Two backends, one contract:
- local (the embedded default): `<ARTIFACT_ROOT>/<sha[:2]>/<sha>.joblib`, atomically renamed,
  read-only.
- object storage (`ARTIFACT_STORAGE=s3`: AWS S3, MinIO or any S3-compatible server, through the
  django-storages `artifacts` storage): key `<ARTIFACT_S3_PREFIX>/<sha[:2]>/<sha>.joblib`. Every
  download is hashed before it enters this host's read-through cache (`ARTIFACT_CACHE_DIR`, at
  most `ARTIFACT_CACHE_MAX_BYTES`, least recently used evicted first), and a cached copy is hashed
  again before every load, so neither a changed object nor a changed cache file is ever unpickled.
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


def _remote():
    """The django-storages S3 storage when ARTIFACT_STORAGE=s3 (settings.STORAGES["artifacts"])."""
    if "artifacts" not in settings.STORAGES:
        return None
    from django.core.files.storage import storages

    return storages["artifacts"]


def backend_name() -> str:
    return "s3" if _remote() is not None else "local"


def _check_sha(sha256: str) -> None:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ArtifactError(f"Not a sha256 digest: {sha256!r}")


def object_key(sha256: str) -> str:
    """The object's key in the bucket (content-addressed like the local path)."""
    _check_sha(sha256)
    prefix = (settings.ARTIFACT_S3_PREFIX or "").strip("/")
    return f"{prefix + '/' if prefix else ''}{sha256[:2]}/{sha256}.joblib"


def cache_root() -> Path:
    return Path(settings.ARTIFACT_CACHE_DIR)


def _cache_path(sha256: str) -> Path:
    _check_sha(sha256)
    return cache_root() / sha256[:2] / f"{sha256}.joblib"


def path_for(sha256: str) -> Path:
    """The artifact's path in the local store (ARTIFACT_ROOT)."""
    _check_sha(sha256)
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
    write: Callable[[BinaryIO], object], *, expected_sha256: str = "", repair: bool = False
) -> tuple[str, int]:
    """The one way bytes enter the store: `write` fills a temp file, which is fsynced, hashed and
    atomically renamed to its content address, read-only. Returns (sha256, size).

    Identical bytes already stored are kept. A stored file that no longer matches its name is
    refused, unless `repair` (restoring verified bytes from a bundle, the only repair the platform
    performs)."""
    if _remote() is not None:
        return _publish_remote(write, expected_sha256=expected_sha256, repair=repair)
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


def _staged(write: Callable[[BinaryIO], object], staging: Path) -> tuple[Path, str, int]:
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=staging, suffix=".joblib.part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, file_sha256(tmp), tmp.stat().st_size


def _remote_sha256(key: str) -> str | None:
    """Hash the object's bytes as they stream in (never the whole object in memory); None when
    the object does not exist."""
    from botocore.exceptions import ClientError

    storage = _remote()
    try:
        body = storage.bucket.Object(key).get()["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    digest = hashlib.sha256()
    for chunk in body.iter_chunks(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _publish_remote(
    write: Callable[[BinaryIO], object], *, expected_sha256: str, repair: bool
) -> tuple[str, int]:
    """`_publish` on object storage: stage and hash locally, upload under the content address
    unless identical bytes are already there, then keep the verified copy in this host's cache."""
    from django.core.files import File

    tmp, sha256, size = _staged(write, cache_root() / "tmp")
    try:
        if expected_sha256 and sha256 != expected_sha256:
            raise ArtifactIntegrityError(
                f"The copy hashes to {sha256[:12]}…, not {expected_sha256[:12]}…."
            )
        key = object_key(sha256)
        remote = _remote_sha256(key)
        if remote is not None and remote != sha256 and not repair:
            raise ArtifactIntegrityError(
                f"Object {key} exists but does not match its name; it was altered. Restore it "
                "from a registry bundle (import_registry) before storing new models."
            )
        if remote != sha256:
            with open(tmp, "rb") as handle:
                _remote().save(key, File(handle, name=key))
        _cache_put(tmp, sha256)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha256, size


def _cache_put(tmp: Path, sha256: str) -> Path:
    """Move verified bytes into the cache, then evict the least recently used copies."""
    final = _cache_path(sha256)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp, 0o444)
    os.replace(tmp, final)
    _cache_evict(keep=final)
    return final


def _cache_evict(*, keep: Path) -> None:
    """Keep the cache at most ARTIFACT_CACHE_MAX_BYTES (the file just added always stays)."""
    limit = settings.ARTIFACT_CACHE_MAX_BYTES
    entries = []
    for path in cache_root().glob("??/*.joblib"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # another process on this host evicted it
            continue
        entries.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= limit:
            break
        if path == keep:
            continue
        path.unlink(missing_ok=True)
        total -= size


def _fetch(sha256: str) -> Path:
    """The verified local copy of an object: from the cache (hashed again), else downloaded,
    hashed, and only then cached. Refusals alert exactly like the local store's."""
    from botocore.exceptions import ClientError

    cached = _cache_path(sha256)
    if cached.exists():
        if file_sha256(cached) == sha256:
            os.utime(cached)  # most recently used
            return cached
        logger.warning("artifact cache: %s no longer matches its name; fetching again", cached)
        cached.unlink(missing_ok=True)
    key = object_key(sha256)
    storage = _remote()
    where = f"s3://{storage.bucket_name}/{key}"
    staging = cache_root() / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=staging, suffix=".joblib.part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as handle:
            try:
                body = storage.bucket.Object(key).get()["Body"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
                message = (
                    f"Artifact {sha256[:12]}… is missing from {where}. Restore it with "
                    "import_registry."
                )
                _alert(sha256, kind="missing", message=message, path=where)
                raise ArtifactMissing(message) from exc
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            message = (
                f"Refusing to load artifact {sha256[:12]}…: the object {where} now hashes to "
                f"{actual[:12]}…, so it was altered or corrupted. A pickle is code, so it is not "
                "loaded. Restore it from a registry bundle (import_registry) or retrain."
            )
            _alert(sha256, kind="mismatch", message=message, actual=actual, path=where)
            raise ArtifactIntegrityError(message)
        return _cache_put(tmp, sha256)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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

    def write(handle: BinaryIO) -> None:
        handle.write(blob)

    sha256, size = _publish(write)
    return StoredArtifact(
        sha256, size, platform.python_version(), sklearn.__version__, FORMAT_VERSION
    )


def store(model) -> StoredArtifact:
    """Write `model` into the store; identical bytes are stored once. Returns its identity."""
    envelope = _envelope(model)
    sha256, size = _publish(lambda handle: joblib.dump(envelope, handle, compress=3))
    return StoredArtifact(sha256, size, envelope["python"], envelope["sklearn"], FORMAT_VERSION)


def _alert(
    sha256: str, *, kind: str, message: str, actual: str = "", path: Path | str | None = None
):
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
    """Return a local path to the artifact's bytes if they still hash to `sha256`; raise (and
    alert) otherwise. On object storage the path is this host's verified cached copy."""
    if _remote() is not None:
        return _fetch(sha256)
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
    """True when the store holds bytes matching `sha256` (no alert: used by backup/restore).
    On object storage the object itself is hashed (streamed), not this host's cache."""
    if _remote() is not None:
        return _remote_sha256(object_key(sha256)) == sha256
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
    if exists_intact(sha256):
        return source.stat().st_size

    def copy(out: BinaryIO) -> None:
        with open(source, "rb") as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)

    return _publish(copy, expected_sha256=sha256, repair=True)[1]


def load(sha256: str):
    """Verify, then unpickle, an artifact. Returns the stored model object."""
    path = verify(sha256)
    try:
        envelope = joblib.load(path)
    except FileNotFoundError:
        if _remote() is None:
            raise
        # Another process on this host evicted the cached copy between the check and the load.
        envelope = joblib.load(verify(sha256))
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
