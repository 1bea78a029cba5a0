"""Portable registry bundles: the backup against losing a server.

A bundle is a directory (or a .tar.gz of one) holding `manifest.json`, `registry.json` and
`artifacts/<sha256>.joblib`. Rows are written with natural keys only (slugs, label keys, version
numbers, text hashes, usernames), never database ids, so a bundle restores into any database.

Import verifies every artifact's bytes before it writes anything, refuses a bundle that disagrees
with what the database already holds (same version, different artifact), and is idempotent:
importing the same bundle twice changes nothing the second time.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry import artifacts
from registry.models import (
    AliasEvent,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
    TrainingSample,
    TrainingSampleLabel,
)
from registry.services import sample_labels, snapshot_content_hash
from taxonomy.models import Label, LabelSet, LabelSetMember, LabelSetRevision
from tenants.models import Need, Tenant

BUNDLE_FORMAT = 1


class BundleError(Exception):
    """The bundle is unreadable, corrupted or conflicts with this database; nothing was written."""


@dataclass
class ImportSummary:
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    existing: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    warnings: list[str] = field(default_factory=list)
    artifacts_copied: int = 0

    def add(self, kind: str, created: bool) -> None:
        (self.created if created else self.existing)[kind] += 1

    @property
    def changed(self) -> bool:
        return bool(sum(self.created.values())) or bool(self.artifacts_copied)


def _ts(value) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None):
    return parse_datetime(value) if value else None


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


# --- Import ----------------------------------------------------------------------------------
@contextmanager
def _opened(path: Path):
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.exists():
        raise BundleError(f"{path} does not exist.")
    with tempfile.TemporaryDirectory(prefix="registry-import-") as scratch:
        try:
            with tarfile.open(path) as tar:
                tar.extractall(scratch, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BundleError(f"{path} is not a readable bundle: {exc}") from exc
        inner = Path(scratch) / "bundle"
        yield inner if inner.is_dir() else Path(scratch)


def _read(root: Path) -> tuple[dict, dict]:
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        data = json.loads((root / "registry.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"The bundle's metadata is missing or unreadable: {exc}") from exc
    if manifest.get("format", 0) > BUNDLE_FORMAT:
        raise BundleError(f"Bundle format {manifest['format']} is newer than this platform reads.")
    return manifest, data


def _verify_artifacts(root: Path, manifest: dict, data: dict) -> list[str]:
    """Every artifact a version needs is in the bundle and hashes to its name. Else refuse."""
    needed = sorted({v["artifact_sha256"] for v in data["versions"]})
    problems = []
    for sha in needed:
        file = root / "artifacts" / f"{sha}.joblib"
        if not file.exists():
            if not artifacts.exists_intact(sha):
                problems.append(f"artifact {sha[:12]}… is missing from the bundle")
            continue
        actual = artifacts.file_sha256(file)
        if actual != sha:
            problems.append(
                f"artifact {sha[:12]}… in the bundle hashes to {actual[:12]}… (corrupted)"
            )
    if problems:
        raise BundleError("Refusing the bundle, nothing was imported: " + "; ".join(problems) + ".")
    return needed


def import_bundle(path: Path) -> ImportSummary:
    with _opened(Path(path)) as root:
        manifest, data = _read(root)
        needed = _verify_artifacts(root, manifest, data)
        summary = ImportSummary()
        with transaction.atomic():
            _Importer(data, summary).run()
            # Copy bytes last, inside the transaction: a refused import leaves only unreferenced,
            # content-addressed files, never a row pointing at a missing artifact.
            for sha in needed:
                source = root / "artifacts" / f"{sha}.joblib"
                if artifacts.exists_intact(sha):
                    continue
                artifacts.import_file(source, sha)
                summary.artifacts_copied += 1
        return summary


class _Importer:
    def __init__(self, data: dict, summary: ImportSummary):
        self.data = data
        self.summary = summary
        self.tenants: dict[str | None, Tenant | None] = {None: None}
        self.users: dict[str | None, Any] = {None: None}
        self.label_sets: dict[tuple, LabelSet] = {}
        self.revisions: dict[tuple, LabelSetRevision] = {}
        self.samples: dict[tuple, int] = {}
        self.snapshots: dict[str, DatasetSnapshot] = {}
        self.models: dict[tuple, RegisteredModel] = {}
        self.versions: dict[tuple, ModelVersion] = {}
        self.runs: dict[str, TrainingRun] = {}

    def run(self) -> None:
        for row in self.data["tenants"]:
            tenant, created = Tenant.objects.get_or_create(
                slug=row["slug"], defaults={"name": row["name"]}
            )
            self.tenants[row["slug"]] = tenant
            self.summary.add("tenants", created)
        self._labels()
        self._label_sets()
        self._samples()
        self._snapshots()
        self._models()
        self._runs_and_versions()
        self._aliases()

    def user(self, username: str | None):
        if username not in self.users:
            User = get_user_model()
            user = User.objects.filter(username=username).first()
            if user is None:
                # A placeholder keeps "who" in the history; it cannot log in until reactivated.
                user = User(username=username, is_active=False)
                user.set_unusable_password()
                user.save()
                self.summary.add("users", True)
            self.users[username] = user
        return self.users[username]

    def _labels(self) -> None:
        for row in self.data["labels"]:
            parent = Label.objects.get(key=row["parent"]) if row["parent"] else None
            _, created = Label.objects.get_or_create(
                key=row["key"],
                defaults={
                    "parent": parent,
                    "name_en": row["name_en"],
                    "name_zh": row["name_zh"],
                    "description": row["description"],
                    "aliases": row["aliases"],
                    "status": row["status"],
                },
            )
            self.summary.add("labels", created)

    def _label_sets(self) -> None:
        for row in self.data["label_sets"]:
            label_set, created = LabelSet.objects.dangerously_unscoped().get_or_create(
                tenant=self.tenants[row["tenant"]],
                slug=row["slug"],
                defaults={
                    "name": row["name"],
                    "description": row["description"],
                    "kind": row["kind"],
                    "created_at": _dt(row["created_at"]) or timezone.now(),
                },
            )
            self.label_sets[(row["tenant"], row["slug"])] = label_set
            self.summary.add("label_sets", created)
        for row in self.data["revisions"]:
            owner, slug, number = row["ref"]
            label_set = self.label_sets[(owner, slug)]
            revision = LabelSetRevision.objects.filter(label_set=label_set, number=number).first()
            if revision is not None:
                if revision.label_keys() != row["labels"]:
                    raise BundleError(
                        f"Revision {slug}@r{number} exists here with different labels; refusing."
                    )
                self.summary.add("revisions", False)
            else:
                revision = LabelSetRevision.objects.create(
                    label_set=label_set,
                    number=number,
                    note=row["note"],
                    created_by=self.user(row["created_by"]),
                    created_at=_dt(row["created_at"]) or timezone.now(),
                )
                keys = dict(Label.objects.filter(key__in=row["labels"]).values_list("key", "id"))
                LabelSetMember.objects.bulk_create(
                    LabelSetMember(revision=revision, label_id=keys[key], position=i)
                    for i, key in enumerate(row["labels"])
                )
                self.summary.add("revisions", True)
            self.revisions[tuple(row["ref"])] = revision

    def _samples(self) -> None:
        rows = self.data["samples"]
        by_revision = defaultdict(list)
        for row in rows:
            by_revision[(tuple(row["revision"]), row["tenant"])].append(row)
        label_ids = dict(Label.objects.values_list("key", "id"))
        for (revision_ref, owner), group in by_revision.items():
            revision = self.revisions[revision_ref]
            tenant = self.tenants[owner]
            existing = dict(
                TrainingSample.objects.dangerously_unscoped()
                .filter(
                    revision=revision, tenant=tenant, text_hash__in=[r["text_hash"] for r in group]
                )
                .values_list("text_hash", "id")
            )
            new = [r for r in group if r["text_hash"] not in existing]
            created = TrainingSample.objects.bulk_create(
                TrainingSample(
                    tenant=tenant,
                    revision=revision,
                    text=r["text"],
                    text_hash=r["text_hash"],
                    source=r["source"],
                    source_ref=r["source_ref"],
                    origin_split=r["origin_split"],
                    created_at=_dt(r["created_at"]) or timezone.now(),
                )
                for r in new
            )
            TrainingSampleLabel.objects.bulk_create(
                TrainingSampleLabel(sample=sample, label_id=label_ids[key])
                for sample, r in zip(created, new, strict=True)
                for key in r["labels"]
            )
            for sample in created:
                existing[sample.text_hash] = sample.pk
            for text_hash, pk in existing.items():
                self.samples[(revision_ref, owner, text_hash)] = pk
            self.summary.created["samples"] += len(new)
            self.summary.existing["samples"] += len(group) - len(new)

    def _snapshots(self) -> None:
        for row in self.data["snapshots"]:
            found = (
                DatasetSnapshot.objects.dangerously_unscoped()
                .filter(content_hash=row["content_hash"])
                .first()
            )
            if found is not None:
                self.snapshots[row["content_hash"]] = found
                self.summary.add("snapshots", False)
                continue
            ref = tuple(row["revision"])
            revision = self.revisions[ref]
            train_ids = [self.samples[(ref, owner, h)] for owner, h in row["train"]]
            test_ids = [self.samples[(ref, owner, h)] for owner, h in row["test"]]
            labels = sample_labels(train_ids + test_ids)
            recomputed = snapshot_content_hash(
                revision=revision,
                tenant=self.tenants[row["tenant"]],
                entries=[
                    (h, labels[pk])
                    for (_, h), pk in zip(
                        row["train"] + row["test"], train_ids + test_ids, strict=True
                    )
                ],
                seed=row["seed"],
                test_fraction=row["test_fraction"],
                split=row["split_strategy"],
            )
            if recomputed != row["content_hash"]:
                raise BundleError(
                    f"Snapshot {row['content_hash'][:12]}… does not match its samples "
                    f"(recomputed {recomputed[:12]}…); refusing the bundle."
                )
            self.snapshots[row["content_hash"]] = DatasetSnapshot.objects.create(
                tenant=self.tenants[row["tenant"]],
                revision=revision,
                content_hash=row["content_hash"],
                seed=row["seed"],
                test_fraction=row["test_fraction"],
                split_strategy=row["split_strategy"],
                train_sample_ids=train_ids,
                test_sample_ids=test_ids,
                label_distribution=row["label_distribution"],
                description=row["description"],
                created_by=self.user(row["created_by"]),
                created_at=_dt(row["created_at"]) or timezone.now(),
            )
            self.summary.add("snapshots", True)

    def _models(self) -> None:
        for row in self.data["registered_models"]:
            model, created = RegisteredModel.objects.dangerously_unscoped().get_or_create(
                tenant=self.tenants[row["tenant"]],
                name=row["name"],
                defaults={
                    "label_set": self.label_sets[tuple(row["label_set"])],
                    "algorithm": row["algorithm"],
                    "description": row["description"],
                    "created_at": _dt(row["created_at"]) or timezone.now(),
                },
            )
            self.models[(row["tenant"], row["name"])] = model
            self.summary.add("registered_models", created)

    def _version(self, ref) -> ModelVersion | None:
        return self.versions.get(tuple(ref)) if ref else None

    def _runs_and_versions(self) -> None:
        runs_by_key = {row["key"]: row for row in self.data["training_runs"]}
        version_for_run = {
            row["training_run"]: row for row in self.data["versions"] if row["training_run"]
        }
        # Versions in number order so parents exist before children; runs just in time.
        for row in sorted(
            self.data["versions"], key=lambda r: (r["ref"][0] or "", r["ref"][1], r["ref"][2])
        ):
            owner, name, number = row["ref"]
            model = self.models[(owner, name)]
            version = (
                ModelVersion.objects.dangerously_unscoped()
                .filter(registered_model=model, version=number)
                .first()
            )
            if version is not None:
                if version.artifact_sha256 != row["artifact_sha256"]:
                    raise BundleError(
                        f"{name}@v{number} exists here with a different artifact; refusing."
                    )
                self.versions[(owner, name, number)] = version
                if version.training_run_id and row["training_run"]:
                    self.runs[row["training_run"]] = version.training_run
                self.summary.add("versions", False)
                continue
            run = self._run(runs_by_key[row["training_run"]]) if row["training_run"] else None
            version = ModelVersion.objects.create(
                registered_model=model,
                version=number,
                status=row["status"],
                artifact_sha256=row["artifact_sha256"],
                artifact_size=row["artifact_size"],
                artifact_format=row["artifact_format"],
                python_version=row["python_version"],
                sklearn_version=row["sklearn_version"],
                algorithm=row["algorithm"],
                params=row["params"],
                snapshot=self.snapshots[row["snapshot"]],
                revision=self.revisions[tuple(row["revision"])],
                metrics=row["metrics"],
                latency_p50_ms=row["latency_p50_ms"],
                latency_p99_ms=row["latency_p99_ms"],
                throughput_docs_per_s=row["throughput_docs_per_s"],
                parent=self._version(row["parent"]),
                training_run=run,
                created_by=self.user(row["created_by"]),
                created_at=_dt(row["created_at"]) or timezone.now(),
                notes=row["notes"],
            )
            self.versions[(owner, name, number)] = version
            self.summary.add("versions", True)
        for key, row in runs_by_key.items():
            if key not in self.runs and key not in version_for_run:
                self._run(row)

    def _run(self, row: dict) -> TrainingRun:
        if row["key"] in self.runs:
            return self.runs[row["key"]]
        model = self.models[tuple(row["registered_model"])]
        created_at = _dt(row["created_at"])
        run = (
            TrainingRun.objects.dangerously_unscoped()
            .filter(registered_model=model, created_at=created_at)
            .first()
        )
        created = run is None
        if created:
            need = None
            if row["need"]:
                need = (
                    Need.objects.dangerously_unscoped()
                    .filter(tenant__slug=row["need"][0], slug=row["need"][1])
                    .first()
                )
            run = TrainingRun.objects.create(
                tenant=self.tenants[row["tenant"]],
                registered_model=model,
                snapshot=self.snapshots[row["snapshot"]],
                algorithm=row["algorithm"],
                params=row["params"],
                parent_version=self._version(row["parent_version"]),
                need=need,
                status=row["status"],
                progress=row["progress"],
                log=row["log"],
                error=row["error"],
                promote_to=row["promote_to"],
                created_by=self.user(row["created_by"]),
                created_at=created_at or timezone.now(),
                started_at=_dt(row["started_at"]),
                finished_at=_dt(row["finished_at"]),
            )
        self.runs[row["key"]] = run
        self.summary.add("training_runs", created)
        return run

    def _aliases(self) -> None:
        for row in self.data["alias_events"]:
            model = self.models[tuple(row["registered_model"])]
            at = _dt(row["at"])
            to_version = self._version(row["to_version"])
            exists = AliasEvent.objects.filter(
                registered_model=model, alias=row["alias"], to_version=to_version, at=at
            ).exists()
            if not exists:
                AliasEvent.objects.create(
                    registered_model=model,
                    alias=row["alias"],
                    from_version=self._version(row["from_version"]),
                    to_version=to_version,
                    actor=self.user(row["actor"]),
                    reason=row["reason"],
                    action=row["action"],
                    at=at,
                )
            self.summary.add("alias_events", not exists)
        for row in self.data["aliases"]:
            model = self.models[tuple(row["registered_model"])]
            version = self._version(row["version"])
            current = ModelAlias.objects.filter(registered_model=model, name=row["name"]).first()
            if current is None:
                ModelAlias.objects.create(
                    registered_model=model,
                    name=row["name"],
                    version=version,
                    updated_at=_dt(row["updated_at"]),
                )
                self.summary.add("aliases", True)
            else:
                if current.version_id != version.pk:
                    # Live state wins over a backup: serving may rely on the current pointer.
                    self.summary.warnings.append(
                        f"{model.name}:{row['name']} points at v{current.version.version} here, "
                        f"v{version.version} in the bundle; kept v{current.version.version}."
                    )
                self.summary.add("aliases", False)
