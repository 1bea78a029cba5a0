"""Write a bundle: every registry row by natural key, plus its verified artifacts."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from registry import artifacts
from registry.bundle.format import BUNDLE_FORMAT, BundleError
from registry.models import (
    AliasEvent,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
    TrainingSample,
)
from registry.services.datasets import sample_labels
from taxonomy.models import Label, LabelSet, LabelSetMember, LabelSetRevision
from tenants.models import Need, Tenant


def _ts(value) -> str | None:
    return value.isoformat() if value else None


def _sort_key(ref: list) -> tuple:
    """Order rows by natural key (owner, name, …) so bundles from different databases compare."""
    return tuple("" if part is None else part for part in ref)


def _owner(tenant_id, tenants: dict[int, str]) -> str | None:
    return tenants.get(tenant_id) if tenant_id else None


# --- Export ----------------------------------------------------------------------------------
def collect() -> dict[str, Any]:
    """Everything the registry holds, as plain JSON-ready data keyed by natural keys."""
    tenants = dict(Tenant.objects.values_list("id", "slug"))
    users = dict(get_user_model().objects.values_list("id", "username"))
    snapshots = list(
        DatasetSnapshot.objects.dangerously_unscoped().select_related("revision__label_set")
    )
    models = list(RegisteredModel.objects.dangerously_unscoped().select_related("label_set"))
    label_set_ids = {s.revision.label_set_id for s in snapshots} | {m.label_set_id for m in models}
    label_sets = {
        ls.pk: ls for ls in LabelSet.objects.dangerously_unscoped().filter(pk__in=label_set_ids)
    }

    def ls_ref(label_set_id: int) -> list:
        ls = label_sets[label_set_id]
        return [_owner(ls.tenant_id, tenants), ls.slug]

    revisions = list(LabelSetRevision.objects.filter(label_set_id__in=label_set_ids))
    revision_refs = {r.pk: [*ls_ref(r.label_set_id), r.number] for r in revisions}
    members = defaultdict(list)
    for revision_id, key in (
        LabelSetMember.objects.filter(revision__in=revisions)
        .order_by("revision_id", "position")
        .values_list("revision_id", "label__key")
    ):
        members[revision_id].append(key)
    label_keys = {key for keys in members.values() for key in keys}
    labels = {label.key: label for label in Label.objects.filter(key__in=label_keys)}
    # Ancestors too, so the tree can be rebuilt in an empty database.
    pending = [label.parent_id for label in labels.values() if label.parent_id]
    while pending:
        parents = list(Label.objects.filter(pk__in=pending))
        pending = []
        for parent in parents:
            if parent.key not in labels:
                labels[parent.key] = parent
                if parent.parent_id:
                    pending.append(parent.parent_id)
    by_id = {label.pk: label.key for label in labels.values()}

    sample_ids = sorted({i for s in snapshots for i in s.train_sample_ids + s.test_sample_ids})
    samples = {
        s.pk: s for s in TrainingSample.objects.dangerously_unscoped().filter(pk__in=sample_ids)
    }
    sample_label_map = sample_labels(sample_ids)

    def sample_ref(pk: int) -> list:
        sample = samples[pk]
        return [_owner(sample.tenant_id, tenants), sample.text_hash]

    model_refs = {m.pk: [_owner(m.tenant_id, tenants), m.name] for m in models}
    versions = list(
        ModelVersion.objects.dangerously_unscoped().order_by("registered_model_id", "version")
    )
    version_refs = {v.pk: [*model_refs[v.registered_model_id], v.version] for v in versions}
    runs = list(TrainingRun.objects.dangerously_unscoped().order_by("created_at", "id"))
    run_keys = {run.pk: f"run-{index}" for index, run in enumerate(runs)}
    needs = {n.pk: [tenants[n.tenant_id], n.slug] for n in Need.objects.dangerously_unscoped()}
    snapshot_hashes = {s.pk: s.content_hash for s in snapshots}

    return {
        "tenants": sorted(
            ({"slug": t.slug, "name": t.name} for t in Tenant.objects.all()),
            key=lambda t: t["slug"],
        ),
        "labels": sorted(
            (
                {
                    "key": label.key,
                    "parent": by_id.get(label.parent_id),
                    "name_en": label.name_en,
                    "name_zh": label.name_zh,
                    "description": label.description,
                    "aliases": label.aliases,
                    "status": label.status,
                }
                for label in labels.values()
            ),
            key=lambda row: (row["key"].count("."), row["key"]),
        ),
        "label_sets": [
            {
                "tenant": _owner(ls.tenant_id, tenants),
                "slug": ls.slug,
                "name": ls.name,
                "description": ls.description,
                "kind": ls.kind,
                "created_at": _ts(ls.created_at),
            }
            for ls in sorted(label_sets.values(), key=lambda ls: (ls.slug, ls.tenant_id or 0))
        ],
        "revisions": [
            {
                "ref": revision_refs[r.pk],
                "labels": members[r.pk],
                "note": r.note,
                "created_by": users.get(r.created_by_id),
                "created_at": _ts(r.created_at),
            }
            for r in revisions
        ],
        "samples": [
            {
                "tenant": _owner(s.tenant_id, tenants),
                "revision": revision_refs[s.revision_id],
                "text": s.text,
                "text_hash": s.text_hash,
                "labels": sample_label_map.get(s.pk, []),
                "source": s.source,
                "source_ref": s.source_ref,
                "origin_split": s.origin_split,
                "created_at": _ts(s.created_at),
            }
            for s in (samples[pk] for pk in sample_ids)
        ],
        "snapshots": [
            {
                "content_hash": s.content_hash,
                "tenant": _owner(s.tenant_id, tenants),
                "revision": revision_refs[s.revision_id],
                "seed": s.seed,
                "test_fraction": s.test_fraction,
                "split_strategy": s.split_strategy,
                "parent": snapshot_hashes.get(s.parent_id) if s.parent_id else None,
                "train": [sample_ref(pk) for pk in s.train_sample_ids],
                "test": [sample_ref(pk) for pk in s.test_sample_ids],
                "label_distribution": s.label_distribution,
                "description": s.description,
                "created_by": users.get(s.created_by_id),
                "created_at": _ts(s.created_at),
            }
            for s in sorted(snapshots, key=lambda s: (s.created_at, s.content_hash))
        ],
        "registered_models": [
            {
                "tenant": _owner(m.tenant_id, tenants),
                "name": m.name,
                "label_set": ls_ref(m.label_set_id),
                "algorithm": m.algorithm,
                "description": m.description,
                "created_at": _ts(m.created_at),
            }
            for m in sorted(models, key=lambda m: (m.name, m.tenant_id or 0))
        ],
        "training_runs": [
            {
                "key": run_keys[r.pk],
                "tenant": _owner(r.tenant_id, tenants),
                "registered_model": model_refs[r.registered_model_id],
                "snapshot": snapshot_hashes[r.snapshot_id],
                "algorithm": r.algorithm,
                "params": r.params,
                "parent_version": version_refs.get(r.parent_version_id),
                "need": needs.get(r.need_id),
                "status": r.status,
                "progress": r.progress,
                "log": r.log,
                "error": r.error,
                "promote_to": r.promote_to,
                "created_by": users.get(r.created_by_id),
                "created_at": _ts(r.created_at),
                "started_at": _ts(r.started_at),
                "finished_at": _ts(r.finished_at),
            }
            for r in runs
        ],
        "versions": [
            {
                "ref": version_refs[v.pk],
                "status": v.status,
                "artifact_sha256": v.artifact_sha256,
                "artifact_size": v.artifact_size,
                "artifact_format": v.artifact_format,
                "python_version": v.python_version,
                "sklearn_version": v.sklearn_version,
                "algorithm": v.algorithm,
                "params": v.params,
                "snapshot": snapshot_hashes[v.snapshot_id],
                "revision": revision_refs[v.revision_id],
                "metrics": v.metrics,
                "latency_p50_ms": v.latency_p50_ms,
                "latency_p99_ms": v.latency_p99_ms,
                "throughput_docs_per_s": v.throughput_docs_per_s,
                "parent": version_refs.get(v.parent_id),
                "training_run": run_keys.get(v.training_run_id),
                "created_by": users.get(v.created_by_id),
                "created_at": _ts(v.created_at),
                "notes": v.notes,
            }
            for v in sorted(versions, key=lambda v: _sort_key(version_refs[v.pk]))
        ],
        "aliases": [
            {
                "registered_model": model_refs[a.registered_model_id],
                "name": a.name,
                "version": version_refs[a.version_id],
                "updated_at": _ts(a.updated_at),
            }
            for a in sorted(
                ModelAlias.objects.all(),
                key=lambda a: (_sort_key(model_refs[a.registered_model_id]), a.name),
            )
        ],
        "alias_events": [
            {
                "registered_model": model_refs[e.registered_model_id],
                "alias": e.alias,
                "from_version": version_refs.get(e.from_version_id),
                "to_version": version_refs[e.to_version_id],
                "actor": users.get(e.actor_id),
                "reason": e.reason,
                "action": e.action,
                "at": _ts(e.at),
            }
            for e in AliasEvent.objects.order_by("at", "id")
        ],
    }


def export_bundle(path: Path) -> dict[str, Any]:
    """Write a bundle to `path` (a new directory, or a .tar.gz/.tgz file). Returns the manifest."""
    path = Path(path)
    data = collect()
    shas = sorted({v["artifact_sha256"] for v in data["versions"]})
    as_tar = path.name.endswith((".tar.gz", ".tgz", ".tar"))
    if path.exists() and (as_tar or any(path.iterdir())):
        raise BundleError(
            f"{path} already exists; choose a new path (bundles are never overwritten)."
        )
    with tempfile.TemporaryDirectory(prefix="registry-bundle-") as scratch:
        target = Path(scratch) / "bundle" if as_tar else path
        (target / "artifacts").mkdir(parents=True, exist_ok=True)
        sizes = {}
        for sha in shas:
            source = artifacts.verify(sha)  # never back up bytes that no longer match
            shutil.copyfile(source, target / "artifacts" / f"{sha}.joblib")
            sizes[sha] = source.stat().st_size
        manifest = {
            "format": BUNDLE_FORMAT,
            "exported_at": timezone.now().isoformat(),
            "counts": {key: len(value) for key, value in data.items()},
            "artifacts": sizes,
        }
        (target / "registry.json").write_text(
            json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8"
        )
        (target / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if as_tar:
            mode = "w:gz" if path.name.endswith(("gz", "tgz")) else "w"
            path.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path, mode) as tar:
                tar.add(target, arcname="bundle")
    return manifest
