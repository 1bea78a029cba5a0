"""Persistent records of refused artifact loads (see registry.artifacts.verify)."""

from __future__ import annotations

from pathlib import Path

from django.db.models import F
from django.utils import timezone

from registry.models import ArtifactIntegrityIncident, ModelVersion


def incident_record(
    *, sha256: str, kind: str, message: str, actual: str = "", path: Path | str | None = None
) -> ArtifactIntegrityIncident:
    """Open an incident for this artifact, or bump the open one (one open row per sha and kind)."""
    now = timezone.now()
    open_rows = ArtifactIntegrityIncident.objects.filter(
        sha256=sha256, kind=kind, resolved_at__isnull=True
    )
    if open_rows.update(
        occurrences=F("occurrences") + 1, last_seen_at=now, actual_sha256=actual, message=message
    ):
        return open_rows.first()
    return ArtifactIntegrityIncident.objects.create(
        sha256=sha256,
        kind=kind,
        actual_sha256=actual,
        path=str(path or ""),
        message=message,
        model_version=ModelVersion.objects.dangerously_unscoped()
        .filter(artifact_sha256=sha256)
        .order_by("id")
        .first(),
        first_seen_at=now,
        last_seen_at=now,
    )
