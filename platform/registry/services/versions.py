"""Model versions: register, archive, load (sha256-verified) and compare."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext as _

from registry import artifacts, evaluation
from registry.errors import RegistryError
from registry.ml import TextClassifier
from registry.models import (
    DatasetSnapshot,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
    VersionStatus,
)
from registry.services.datasets import snapshot_split

logger = logging.getLogger(__name__)


def model_version_register(
    *,
    registered_model: RegisteredModel,
    stored: artifacts.StoredArtifact,
    algorithm: str,
    params: dict,
    snapshot: DatasetSnapshot,
    metrics: dict,
    latency: dict | None = None,
    parent: ModelVersion | None = None,
    training_run: TrainingRun | None = None,
    actor=None,
    notes: str = "",
) -> ModelVersion:
    """Record a stored artifact as the next version (v1, v2, …) of a registered model."""
    if training_run is not None:
        existing = (
            ModelVersion.objects.for_owner(registered_model.tenant_id)
            .filter(training_run=training_run)
            .first()
        )
        if existing is not None:
            return existing
    with transaction.atomic():
        # Lock the model row so concurrent runs number their versions one after the other.
        RegisteredModel.objects.owned_by(registered_model.tenant_id).select_for_update().filter(
            pk=registered_model.pk
        ).first()
        number = (registered_model.versions.aggregate(m=Max("version"))["m"] or 0) + 1
        latency = latency or {}
        return ModelVersion.objects.create(
            registered_model=registered_model,
            version=number,
            artifact_sha256=stored.sha256,
            artifact_size=stored.size,
            artifact_format=stored.format_version,
            python_version=stored.python_version,
            sklearn_version=stored.sklearn_version,
            algorithm=algorithm,
            params=params,
            snapshot=snapshot,
            revision=snapshot.revision,
            metrics=metrics,
            latency_p50_ms=latency.get("p50_ms"),
            latency_p99_ms=latency.get("p99_ms"),
            throughput_docs_per_s=latency.get("docs_per_s"),
            parent=parent,
            training_run=training_run,
            created_by=actor,
            notes=notes,
        )


def model_version_archive(*, version: ModelVersion, actor=None) -> ModelVersion:
    """Archive a version: a status change only; its artifact bytes stay in the store."""
    if version.aliases.exists():
        names = ", ".join(version.aliases.values_list("name", flat=True))
        raise RegistryError(
            "version_in_use",
            _("%(version)s is the %(names)s version; move the alias first.")
            % {"version": version, "names": names},
        )
    ModelVersion.objects.owned_by(version.registered_model.tenant_id).filter(pk=version.pk).update(
        status=VersionStatus.ARCHIVED
    )
    version.refresh_from_db()
    logger.info("%s archived by %s", version, actor)
    return version


# --- Loading and comparing -------------------------------------------------------------------
def load_model_version(version: ModelVersion) -> TextClassifier:
    """Verify the artifact's sha256 (refusing and alerting on a mismatch), then load it."""
    model = artifacts.load(version.artifact_sha256)
    if not isinstance(model, TextClassifier):
        raise artifacts.ArtifactIncompatible(
            f"{version} holds a {type(model).__name__}, not a TextClassifier."
        )
    return model


def versions_compare(
    *, a: ModelVersion, b: ModelVersion, snapshot: DatasetSnapshot | None = None
) -> dict[str, Any]:
    """Re-evaluate two versions of the same label set on ONE test split (default: b's snapshot)
    and return both metrics and the per-label deltas (b minus a)."""
    if a.registered_model.label_set_id != b.registered_model.label_set_id:
        raise RegistryError(
            "not_comparable", _("Only versions trained for the same label set can be compared.")
        )
    snapshot = snapshot or b.snapshot
    texts, label_lists = snapshot_split(snapshot, "test")
    universe = list(dict.fromkeys(snapshot.revision.label_keys()))
    results = {}
    for side, version in (("a", a), ("b", b)):
        model = load_model_version(version)
        for label in model.labels:
            if label not in universe:
                universe.append(label)
        results[side] = model
    metrics = {
        side: evaluation.evaluate(model, texts, label_lists, labels=universe)
        for side, model in results.items()
    }
    overall = {
        key: {
            "a": metrics["a"][key],
            "b": metrics["b"][key],
            "delta": evaluation.delta(metrics["a"][key], metrics["b"][key]),
        }
        for key in ("accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall")
    }
    per_label = {}
    for label in universe:
        ma, mb = metrics["a"]["per_label"][label], metrics["b"]["per_label"][label]
        per_label[label] = {
            "support": ma["support"],
            **{
                f"{key}_{side}": m[key]
                for key in ("precision", "recall", "f1")
                for side, m in (("a", ma), ("b", mb))
            },
            **{
                f"{key}_delta": evaluation.delta(ma[key], mb[key])
                for key in ("precision", "recall", "f1")
            },
        }
    return {
        "snapshot": snapshot.content_hash,
        "n_test": len(texts),
        "a": {"id": a.pk, "name": str(a), "metrics": metrics["a"]},
        "b": {"id": b.pk, "name": str(b), "metrics": metrics["b"]},
        "overall": overall,
        "per_label": per_label,
    }
