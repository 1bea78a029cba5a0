"""Writes to project records: sections, problems, lessons and retrospectives, each edit a revision.

Every write names the revision it was based on (`base_revision`; 0 for something new). When
someone else saved in between, the write is refused with `stale_revision` (409) rather than
silently overwriting their text. Links (a model version, labels) are resolved inside the need's
tenant: another tenant's object is "not found" here as everywhere else.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import DomainError
from records.models import (
    SINGLE_KINDS,
    Milestone,
    ProblemStatus,
    ProjectRecord,
    Section,
    SectionKind,
    SectionRevision,
)
from registry.models import ModelVersion
from review.models import Case
from taxonomy.models import Label
from tenants.models import Need

MAX_BODY = 50_000
MAX_TITLE = 200
MAX_TAGS = 20
MAX_TAG = 50

#: What each list kind may carry besides title and body.
_ITEM_FIELDS = {
    SectionKind.PROBLEM: {"status", "model_version", "label", "case", "labels", "tags"},
    SectionKind.LESSON: {"labels", "tags", "shareable"},
    SectionKind.RETROSPECTIVE: {"milestone", "since"},
}


class StaleRevision(DomainError):
    def __init__(self, section: Section):
        super().__init__(
            "stale_revision",
            f"Someone else saved this section since you opened it (now revision "
            f"{section.revision}, by {section.updated_by or 'someone'}). Reload it, merge your "
            "changes and save again.",
            status_code=409,
            fields={
                "base_revision": [
                    _("Current revision is %(revision)s.") % {"revision": section.revision}
                ]
            },
        )
        self.current = section


def _invalid(code: str, field: str, message: str) -> DomainError:
    return DomainError(code, message, status_code=400, fields={field: [message]})


def record_ensure(*, need: Need) -> ProjectRecord:
    record, _ = ProjectRecord.objects.get_or_create(tenant_id=need.tenant_id, need=need)
    return record


def _diff(before: str, after: str, *, number: int) -> str:
    return "\n".join(
        difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=f"r{number - 1}",
            tofile=f"r{number}",
            lineterm="",
        )
    )


def _check_text(*, title: str | None, body: str | None) -> None:
    if title is not None and len(title) > MAX_TITLE:
        raise _invalid("too_long", "title", f"A title has at most {MAX_TITLE} characters.")
    if body is not None and len(body) > MAX_BODY:
        raise _invalid("too_long", "body", f"A section has at most {MAX_BODY} characters.")


def _clean_tags(tags: Iterable[str]) -> list[str]:
    cleaned = []
    for tag in tags:
        tag = str(tag).strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise _invalid("invalid_tag", "tags", f"A tag has at most {MAX_TAG} characters.")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise _invalid("invalid_tag", "tags", f"At most {MAX_TAGS} tags.")
    return cleaned


def _resolve_labels(keys: Iterable[str]) -> list[Label]:
    keys = list(dict.fromkeys(keys))
    found = {label.key: label for label in Label.objects.filter(key__in=keys)}
    unknown = [k for k in keys if k not in found]
    if unknown:
        raise _invalid(
            "unknown_label", "labels", f"Not in the taxonomy: {', '.join(sorted(unknown))}."
        )
    return [found[k] for k in keys]


def _resolve_version(*, need: Need, version_id: int | None) -> ModelVersion | None:
    if version_id is None:
        return None
    # The need's tenant's versions and shared ones; another tenant's is simply not found.
    version = ModelVersion.objects.for_tenant(need.tenant_id).filter(pk=version_id).first()
    if version is None:
        raise _invalid("invalid_link", "model_version", f"Model version {version_id} not found.")
    return version


def _text(section: Section) -> str:
    """What a revision's diff compares: the title, the problem's status and link, the body."""
    head = []
    if section.title:
        head.append(f"# {section.title}")
    if section.kind == SectionKind.PROBLEM:
        head.append(f"status: {section.status}")
        if section.model_version_id:
            head.append(f"model version: {section.model_version_id}")
        if section.case_id:
            head.append(f"case: {section.case_id}")
    if section.kind == SectionKind.LESSON:
        head.append(f"shareable: {'yes' if section.shareable else 'no'}")
    return "\n".join([*head, "", section.body]) if head else section.body


def _resolve_case(*, need: Need, case_id: int | None) -> Case | None:
    if case_id is None:
        return None
    # A case of this need; another need's (or tenant's) is not found.
    case = Case.objects.for_tenant(need.tenant_id).filter(pk=case_id, need=need).first()
    if case is None:
        raise _invalid("invalid_link", "case", f"Case {case_id} of this need not found.")
    return case


def _revise(section: Section, *, before: str, author, at: datetime) -> None:
    """Write the revision row for the section as it now stands (its `revision` already bumped)."""
    SectionRevision.objects.create(
        tenant_id=section.tenant_id,
        section=section,
        number=section.revision,
        title=section.title,
        body=section.body,
        diff=_diff(before, _text(section), number=section.revision),
        author=author,
        at=at,
    )


def section_save(*, need: Need, kind: str, body: str, base_revision: int, author) -> Section:
    """Write one of the record's single sections (goal, data, tried, next)."""
    if kind not in SINGLE_KINDS:
        raise _invalid("invalid_kind", "kind", f"'{kind}' is not a single section.")
    _check_text(title=None, body=body)
    now = timezone.now()
    try:
        with transaction.atomic():
            record = record_ensure(need=need)
            section = (
                Section.objects.for_tenant(need.tenant_id)
                .select_for_update()
                .filter(record=record, kind=kind)
                .first()
            )
            before = ""
            if section is None:
                if base_revision != 0:
                    raise _invalid(
                        "invalid_revision", "base_revision", "This section has no revisions yet."
                    )
                section = Section.objects.create(
                    tenant_id=need.tenant_id,
                    record=record,
                    kind=kind,
                    body=body,
                    revision=1,
                    created_by=author,
                    created_at=now,
                    updated_by=author,
                    updated_at=now,
                )
            else:
                if base_revision != section.revision:
                    raise StaleRevision(section)
                if section.body == body:
                    return section  # nothing changed: no empty revision
                before = _text(section)
                section.body = body
                section.revision += 1
                section.updated_by, section.updated_at = author, now
                section.save(update_fields=["body", "revision", "updated_by", "updated_at"])
            _revise(section, before=before, author=author, at=now)
            ProjectRecord.objects.for_tenant(need.tenant_id).filter(pk=record.pk).update(
                updated_at=now
            )
    except IntegrityError:
        # Two people created the section at once: the other one won.
        current = Section.objects.for_tenant(need.tenant_id).get(record__need=need, kind=kind)
        raise StaleRevision(current) from None
    return section


def _item_fields(*, need: Need, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    allowed = _ITEM_FIELDS[SectionKind(kind)]
    extra = set(fields) - allowed
    if extra:
        raise _invalid(
            "invalid_field",
            sorted(extra)[0],
            f"A {kind} does not take {', '.join(sorted(extra))}.",
        )
    out: dict[str, Any] = {}
    if "status" in fields:
        if fields["status"] not in ProblemStatus.values:
            raise _invalid("invalid_status", "status", "Status is open, solved or wont_fix.")
        out["status"] = fields["status"]
    if "model_version" in fields:
        out["model_version"] = _resolve_version(need=need, version_id=fields["model_version"])
    if "case" in fields:
        out["case"] = _resolve_case(need=need, case_id=fields["case"])
    if "label" in fields:
        out["label"] = _resolve_labels([fields["label"]])[0] if fields["label"] else None
    if "labels" in fields:
        out["labels"] = _resolve_labels(fields["labels"] or [])
    if "tags" in fields:
        out["tags"] = _clean_tags(fields["tags"] or [])
    if "shareable" in fields:
        out["shareable"] = bool(fields["shareable"])
    if "milestone" in fields:
        if fields["milestone"] not in Milestone.values:
            raise _invalid(
                "invalid_milestone", "milestone", "Milestone is launch, retrain or incident."
            )
        out["milestone"] = fields["milestone"]
    if "since" in fields:
        out["since"] = fields["since"]
    return out


def _apply(section: Section, values: dict[str, Any], *, now: datetime) -> tuple[bool, list | None]:
    """Set the values on the section; (whether something changed, the labels to set after
    saving or None to leave them)."""
    changed = False
    labels = values.pop("labels", None)
    for name, value in values.items():
        if getattr(section, name) != value:
            setattr(section, name, value)
            changed = True
    if section.kind == SectionKind.PROBLEM:
        closed = section.status != ProblemStatus.OPEN
        if closed and section.resolved_at is None:
            section.resolved_at = now
        elif not closed:
            section.resolved_at = None
    if labels is not None:
        current = {label.pk for label in section.labels.all()} if section.pk else set()
        changed = changed or current != {label.pk for label in labels}
    return changed, labels


def item_create(*, need: Need, kind: str, title: str, body: str, author, **fields: Any) -> Section:
    """A new problem, lesson or retrospective on the need's record (its revision 1)."""
    if kind not in _ITEM_FIELDS:
        raise _invalid(
            "invalid_kind", "kind", f"'{kind}' is not a problem, lesson or retrospective."
        )
    if not title.strip():
        raise _invalid("required", "title", "Give it a title.")
    _check_text(title=title, body=body)
    if kind == SectionKind.PROBLEM:
        fields.setdefault("status", ProblemStatus.OPEN)
    if kind == SectionKind.RETROSPECTIVE:
        fields.setdefault("milestone", Milestone.LAUNCH)
    values = _item_fields(need=need, kind=kind, fields=fields)
    now = timezone.now()
    with transaction.atomic():
        record = record_ensure(need=need)
        section = Section(
            tenant_id=need.tenant_id,
            record=record,
            kind=kind,
            title=title.strip(),
            body=body,
            revision=1,
            created_by=author,
            created_at=now,
            updated_by=author,
            updated_at=now,
        )
        _, labels = _apply(section, values, now=now)
        section.save()
        if labels is not None:
            section.labels.set(labels)
        _revise(section, before="", author=author, at=now)
        ProjectRecord.objects.for_tenant(need.tenant_id).filter(pk=record.pk).update(updated_at=now)
    return section


def item_update(
    *,
    section: Section,
    base_revision: int,
    author,
    title: str | None = None,
    body: str | None = None,
    **fields: Any,
) -> Section:
    """Change a problem, lesson or retrospective; refused (409) when it is no longer at
    `base_revision`."""
    if section.kind not in _ITEM_FIELDS:
        raise _invalid("invalid_kind", "kind", "Single sections are written with section_save.")
    _check_text(title=title, body=body)
    if title is not None and not title.strip():
        raise _invalid("required", "title", "Give it a title.")
    need = section.record.need
    values = _item_fields(need=need, kind=section.kind, fields=fields)
    if title is not None:
        values["title"] = title.strip()
    if body is not None:
        values["body"] = body
    now = timezone.now()
    with transaction.atomic():
        locked = (
            Section.objects.for_tenant(section.tenant_id).select_for_update().get(pk=section.pk)
        )
        if locked.revision != base_revision:
            raise StaleRevision(locked)
        before = _text(locked)
        changed, labels = _apply(locked, values, now=now)
        if not changed:
            return locked
        locked.revision += 1
        locked.updated_by, locked.updated_at = author, now
        locked.save()
        if labels is not None:
            locked.labels.set(labels)
        _revise(locked, before=before, author=author, at=now)
        ProjectRecord.objects.for_tenant(section.tenant_id).filter(pk=locked.record_id).update(
            updated_at=now
        )
    return locked
