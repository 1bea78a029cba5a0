"""Read a bundle back: verify every artifact first, then write idempotently, all or nothing."""

from __future__ import annotations

import json
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
from registry.bundle.format import BUNDLE_FORMAT, BundleError
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
from registry.services.datasets import sample_labels, snapshot_content_hash
from taxonomy.models import Label, LabelSet, LabelSetMember, LabelSetRevision
from tenants.models import Need, Tenant


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


def _dt(value: str | None):
    return parse_datetime(value) if value else None


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
                test_hashes=[h for _, h in row["test"]],
                parent_hash=row.get("parent"),
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
                parent=self.snapshots.get(row.get("parent") or ""),
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
