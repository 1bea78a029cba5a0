"""Writes to the company-wide taxonomy: labels (with history) and label sets (with revisions).

Every function validates before it writes and runs in one transaction, so bad input raises a
`django.core.exceptions.ValidationError` with field errors (the API turns it into a 400) and
leaves the database as it was. Every change to a label appends a `LabelChange` row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import PROTECT, ForeignObjectRel
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from taxonomy.models import (
    Label,
    LabelChange,
    LabelProposal,
    LabelSet,
    LabelSetKind,
    LabelSetMember,
    LabelSetRevision,
    LabelStatus,
    ProposalStatus,
    label_key_validator,
)

_EDITABLE_FIELDS = ("name_en", "name_zh", "description", "aliases")


def label_snapshot(label: Label) -> dict:
    """The label as history stores it (keys, not ids, so it reads well after merges)."""
    return {
        "key": label.key,
        "parent": label.parent.key if label.parent_id else None,
        "name_en": label.name_en,
        "name_zh": label.name_zh,
        "description": label.description,
        "aliases": list(label.aliases or []),
        "status": label.status,
        "replaced_by": label.replaced_by.key if label.replaced_by_id else None,
    }


def _record(
    *, label: Label, action: str, actor, before: dict, after: dict, note: str = ""
) -> LabelChange:
    return LabelChange.objects.create(
        label=label,
        label_key=label.key,
        action=action,
        actor=actor if getattr(actor, "pk", None) else None,
        before=before,
        after=after,
        note=note[:300],
    )


def _clean_aliases(aliases: Iterable[str] | None) -> list[str]:
    if aliases is None:
        return []
    if isinstance(aliases, str) or not all(isinstance(a, str) for a in aliases):
        raise ValidationError({"aliases": [_("Give a list of strings.")]})
    seen: dict[str, str] = {}
    for alias in aliases:
        alias = alias.strip()
        if alias and alias.casefold() not in seen:
            seen[alias.casefold()] = alias
    return list(seen.values())


def _ancestors(label: Label | None) -> list[Label]:
    chain: list[Label] = []
    seen: set[int] = set()
    while label is not None and label.pk not in seen:
        seen.add(label.pk)
        chain.append(label)
        label = label.parent
    return chain


def check_parent(*, label: Label | None, parent: Label | None) -> None:
    """Raise a `parent` field error if `parent` is deprecated or would make a cycle."""
    if parent is None:
        return
    if parent.status == LabelStatus.DEPRECATED:
        raise ValidationError(
            {"parent": [_("'%(key)s' is deprecated; use its replacement.") % {"key": parent.key}]}
        )
    if label is not None and any(a.pk == label.pk for a in _ancestors(parent)):
        raise ValidationError(
            {
                "parent": [
                    _("Moving '%(key)s' under '%(key2)s' would make a cycle.")
                    % {"key": label.key, "key2": parent.key}
                ]
            }
        )


def key_is_free(key: str) -> bool:
    """Keys are never reused: not by a live label, nor by a deleted one still in history."""
    return not (
        Label.objects.filter(key=key).exists() or LabelChange.objects.filter(label_key=key).exists()
    )


def label_create(
    *,
    key: str,
    name_en: str,
    name_zh: str = "",
    description: str = "",
    aliases: Iterable[str] | None = None,
    parent: Label | None = None,
    actor=None,
) -> Label:
    key = (key or "").strip()
    errors: dict[str, list[str]] = {}
    try:
        label_key_validator(key)
    except ValidationError as exc:
        errors["key"] = list(exc.messages)
    if "key" not in errors and not key_is_free(key):
        errors["key"] = [
            _("The key '%(key)s' is already taken (keys are never reused).") % {"key": key}
        ]
    if not (name_en or "").strip():
        errors["name_en"] = ["An English name is required."]
    if errors:
        raise ValidationError(errors)
    check_parent(label=None, parent=parent)
    with transaction.atomic():
        label = Label.objects.create(
            key=key,
            parent=parent,
            name_en=name_en.strip(),
            name_zh=(name_zh or "").strip(),
            description=description or "",
            aliases=_clean_aliases(aliases),
        )
        _record(
            label=label,
            action=LabelChange.Action.CREATE,
            actor=actor,
            before={},
            after=label_snapshot(label),
        )
    return label


def label_update(*, label: Label, actor=None, note: str = "", **changes) -> Label:
    """Change names, description or aliases. The key is stable and cannot be changed."""
    unknown = set(changes) - set(_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: ["This field cannot be changed here."] for field in unknown})
    if "aliases" in changes:
        changes["aliases"] = _clean_aliases(changes["aliases"])
    if "name_en" in changes and not (changes["name_en"] or "").strip():
        raise ValidationError({"name_en": [_("An English name is required.")]})
    with transaction.atomic():
        label = Label.objects.select_for_update().get(pk=label.pk)
        before = label_snapshot(label)
        for field, value in changes.items():
            setattr(label, field, value.strip() if isinstance(value, str) else value)
        after = label_snapshot(label)
        if after == before:
            return label
        label.save()
        _record(
            label=label,
            action=LabelChange.Action.UPDATE,
            actor=actor,
            before=before,
            after=after,
            note=note,
        )
    return label


def label_move(*, label: Label, new_parent: Label | None, actor=None, note: str = "") -> Label:
    """Re-parent a label (its key stays the same). Refuses cycles."""
    with transaction.atomic():
        label = Label.objects.select_for_update().get(pk=label.pk)
        if new_parent is not None:
            new_parent = Label.objects.get(pk=new_parent.pk)
        check_parent(label=label, parent=new_parent)
        if label.parent_id == (new_parent.pk if new_parent else None):
            return label
        before = label_snapshot(label)
        label.parent = new_parent
        label.save(update_fields=["parent", "updated_at"])
        _record(
            label=label,
            action=LabelChange.Action.MOVE,
            actor=actor,
            before=before,
            after=label_snapshot(label),
            note=note,
        )
    return label


def label_deprecate(
    *, label: Label, replaced_by: Label | None = None, actor=None, note: str = ""
) -> Label:
    with transaction.atomic():
        label = Label.objects.select_for_update().get(pk=label.pk)
        if replaced_by is not None:
            replaced_by = Label.objects.get(pk=replaced_by.pk)
            if replaced_by.pk == label.pk:
                raise ValidationError({"replaced_by": [_("A label cannot replace itself.")]})
            if replaced_by.status == LabelStatus.DEPRECATED:
                raise ValidationError(
                    {
                        "replaced_by": [
                            _("'%(key)s' is deprecated itself.") % {"key": replaced_by.key}
                        ]
                    }
                )
        if label.status == LabelStatus.DEPRECATED and label.replaced_by_id == (
            replaced_by.pk if replaced_by else None
        ):
            return label
        before = label_snapshot(label)
        label.status = LabelStatus.DEPRECATED
        label.replaced_by = replaced_by
        label.save(update_fields=["status", "replaced_by", "updated_at"])
        _record(
            label=label,
            action=LabelChange.Action.DEPRECATE,
            actor=actor,
            before=before,
            after=label_snapshot(label),
            note=note,
        )
    return label


#: The names of taxonomy's own references to a label (those of other apps are named by their model).
_OWN_REFERENCE_NAMES = {
    "taxonomy.labelsetmember.label": gettext_lazy("label set revisions"),
    "taxonomy.label.parent": gettext_lazy("child labels"),
    "taxonomy.label.replaced_by": gettext_lazy("labels it replaces"),
}


def _protecting_references() -> list[ForeignObjectRel]:
    """Every relation that keeps a label from being deleted (`on_delete=PROTECT`), read from
    Django's model registry rather than imported: the apps above taxonomy (needs, training samples,
    records, ...) refer to labels, and taxonomy imports none of them. A new such reference is
    counted, and blocks deletion, without a change here."""
    return [
        f
        for f in Label._meta.get_fields(include_hidden=True)
        if isinstance(f, ForeignObjectRel) and f.one_to_many and f.on_delete is PROTECT
    ]


def _reference_key(relation: ForeignObjectRel) -> str:
    return f"{relation.related_model._meta.label_lower}.{relation.field.name}"


def _reference_name(key: str) -> str:
    if key in _OWN_REFERENCE_NAMES:
        return str(_OWN_REFERENCE_NAMES[key])
    return str(apps.get_model(key.rpartition(".")[0])._meta.verbose_name_plural)


def usage_listed(usage: dict[str, int]) -> str:
    """`usage` (label_usage's non-zero counts) as text in the active language."""
    return ", ".join(
        _("%(what)s: %(count)s") % {"what": _reference_name(what), "count": n}
        for what, n in usage.items()
    )


def label_usage(*, label: Label) -> dict[str, int]:
    """Everything that refers to a label and keeps it from being deleted, one COUNT per kind of
    reference, keyed "app.model.field" (e.g. "tenants.needlabel.label": one row per need and label,
    of every tenant). A label with any usage cannot be deleted."""
    return {
        _reference_key(rel): _references_all_tenants(rel, label).count()
        for rel in _protecting_references()
    }


def _references_all_tenants(relation: ForeignObjectRel, label: Label) -> Any:
    """The rows of one kind of reference to `label`, of every tenant: a company-wide label's
    usage is a platform-wide question."""
    manager = relation.related_model._default_manager
    rows = manager.dangerously_unscoped() if hasattr(manager, "dangerously_unscoped") else manager
    return rows.filter(**{relation.field.name: label})


def label_delete(*, label: Label, actor=None) -> None:
    """Delete an unused label. A label in use can only be deprecated or merged."""
    with transaction.atomic():
        label = Label.objects.select_for_update().get(pk=label.pk)
        usage = {what: n for what, n in label_usage(label=label).items() if n}
        if usage:
            listed = usage_listed(usage)
            raise ValidationError(
                {
                    "label": [
                        _("'%(key)s' is in use (%(listed)s); deprecate it or merge it instead.")
                        % {"key": label.key, "listed": listed}
                    ]
                }
            )
        before = label_snapshot(label)
        _record(label=label, action=LabelChange.Action.DELETE, actor=actor, before=before, after={})
        label.delete()


def _merge_steps() -> dict:
    """The apps above taxonomy rewrite their own rows in a merge, in the order of the setting
    TAXONOMY_LABEL_MERGE_STEPS (count name -> dotted path of `step(*, source, target)`, which
    returns (rows changed, notes)); taxonomy imports none of them."""
    return {name: import_string(path) for name, path in settings.TAXONOMY_LABEL_MERGE_STEPS.items()}


def label_merge(*, source: Label, target: Label, actor=None, note: str = "") -> Label:
    """Merge `source` into `target` in one transaction.

    Rewrites label-set members, then the rows of the apps above (training-sample labels, needs'
    label rows: settings.TAXONOMY_LABEL_MERGE_STEPS) and deprecation pointers to `target`; re-parents `source`'s children under `target`; deprecates
    `source` with `replaced_by=target`; records history on both labels.
    """
    if source.pk == target.pk:
        raise ValidationError({"target": [_("A label cannot be merged into itself.")]})
    with transaction.atomic():
        source = Label.objects.select_for_update().get(pk=source.pk)
        target = Label.objects.select_for_update().get(pk=target.pk)
        if target.status == LabelStatus.DEPRECATED:
            raise ValidationError(
                {
                    "target": [
                        _("'%(key)s' is deprecated; merge into its replacement.")
                        % {"key": target.key}
                    ]
                }
            )
        if any(a.pk == source.pk for a in _ancestors(target)):
            raise ValidationError(
                {
                    "target": [
                        _("'%(key)s' lies under '%(key2)s'; move it out first.")
                        % {"key": target.key, "key2": source.key}
                    ]
                }
            )
        source_before, target_before = label_snapshot(source), label_snapshot(target)

        counts = {"label_set_members": 0}
        for member in LabelSetMember.objects.filter(label=source).select_for_update():
            if LabelSetMember.objects.filter(revision_id=member.revision_id, label=target).exists():
                member.delete()  # the revision already holds the target: one member is enough
            else:
                member.label = target
                member.save(update_fields=["label"])
            counts["label_set_members"] += 1
        notes: dict[str, list[str]] = {}
        for name, step in _merge_steps().items():
            counts[name], notes[name] = step(source=source, target=target)
        children = list(Label.objects.filter(parent=source).select_for_update())
        for child in children:
            label_move(label=child, new_parent=target, actor=actor, note=f"merge of {source.key}")
        counts["children"] = len(children)
        counts["replaces"] = Label.objects.filter(replaced_by=source).update(
            replaced_by=target, updated_at=timezone.now()
        )
        # Aliases of the merged label keep resolving, now to the target.
        merged_aliases = _clean_aliases(
            [*target.aliases, source.name_en, source.name_zh, *source.aliases]
        )
        merged_aliases = [
            a
            for a in merged_aliases
            if a.casefold() not in {target.name_en.casefold(), target.name_zh.casefold()}
        ]
        if merged_aliases != target.aliases:
            target.aliases = merged_aliases
            target.save(update_fields=["aliases", "updated_at"])

        source.status = LabelStatus.DEPRECATED
        source.replaced_by = target
        source.save(update_fields=["status", "replaced_by", "updated_at"])
        summary = ", ".join(f"{what}={n}" for what, n in counts.items())
        rewritten: dict[str, Any] = {"rewritten": counts}
        for name, dropped in notes.items():
            if dropped:  # e.g. a need named both labels: it keeps the target's name
                rewritten[f"{name}_names_dropped"] = dropped
        _record(
            label=source,
            action=LabelChange.Action.MERGE,
            actor=actor,
            before=source_before,
            after={**label_snapshot(source), "merged_into": target.key, **rewritten},
            note=note or f"merged into {target.key} ({summary})",
        )
        _record(
            label=target,
            action=LabelChange.Action.MERGE,
            actor=actor,
            before=target_before,
            after={**label_snapshot(target), "merged_from": source.key, **rewritten},
            note=note or f"absorbed {source.key} ({summary})",
        )
    return target


# --- Label sets -----------------------------------------------------------------------------
def labels_for_keys(keys: Iterable[str], *, field: str = "labels") -> list[Label]:
    """The active labels for `keys`, in order; unknown or deprecated keys are field errors."""
    if isinstance(keys, str):
        raise ValidationError({field: [_("Give a list of label keys.")]})
    ordered: list[str] = []
    for key in keys:
        if not isinstance(key, str):
            raise ValidationError({field: [_("Give a list of label keys.")]})
        if key not in ordered:
            ordered.append(key)
    if not ordered:
        raise ValidationError({field: [_("A label set needs at least one label.")]})
    found = {label.key: label for label in Label.objects.filter(key__in=ordered)}
    problems = [_("Unknown label '%(key)s'.") % {"key": key} for key in ordered if key not in found]
    problems += [
        _("'%(key)s' is deprecated; use '%(replacement)s'.")
        % {"key": key, "replacement": found[key].replaced_by.key}
        if found[key].replaced_by_id
        else _("'%(key)s' is deprecated.") % {"key": key}
        for key in ordered
        if key in found and found[key].status == LabelStatus.DEPRECATED
    ]
    if problems:
        raise ValidationError({field: problems})
    return [found[key] for key in ordered]


def _new_revision(
    *, label_set: LabelSet, labels: list[Label], actor=None, note: str = ""
) -> LabelSetRevision:
    last = label_set.revisions.order_by("-number").values_list("number", flat=True).first() or 0
    revision = LabelSetRevision.objects.create(
        label_set=label_set,
        number=last + 1,
        note=note[:300],
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    LabelSetMember.objects.bulk_create(
        LabelSetMember(revision=revision, label=label, position=position)
        for position, label in enumerate(labels)
    )
    return revision


def label_set_create(
    *,
    slug: str,
    name: str,
    label_keys: Iterable[str],
    tenant=None,
    kind: str = LabelSetKind.MULTICLASS,
    description: str = "",
    actor=None,
) -> LabelSet:
    """A shared (tenant=None) or tenant-owned label set with its first revision."""
    errors: dict[str, list[str]] = {}
    if kind not in LabelSetKind.values:
        errors["kind"] = [
            _("Choose one of %(choices)s.") % {"choices": ", ".join(LabelSetKind.values)}
        ]
    if not slug:
        errors["slug"] = ["A slug is required."]
    # A tenant's own set may not shadow a shared slug (lookups by slug see both).
    elif LabelSet.objects.filter(slug=slug, tenant__isnull=True).exists() or (
        tenant is not None and LabelSet.objects.owned_by(tenant).filter(slug=slug).exists()
    ):
        errors["slug"] = [_("A label set '%(slug)s' already exists.") % {"slug": slug}]
    if errors:
        raise ValidationError(errors)
    labels = labels_for_keys(label_keys)
    if kind == LabelSetKind.MULTICLASS and len(labels) < 2:
        raise ValidationError({"labels": [_("A multi-class label set needs at least two labels.")]})
    with transaction.atomic():
        label_set = LabelSet.objects.create(
            tenant=tenant, slug=slug, name=name or slug, kind=kind, description=description
        )
        _new_revision(label_set=label_set, labels=labels, actor=actor, note="created")
    return label_set


def label_set_revise(
    *,
    label_set: LabelSet,
    label_keys: Iterable[str] | None = None,
    kind: str | None = None,
    name: str | None = None,
    description: str | None = None,
    actor=None,
    note: str = "",
) -> LabelSetRevision | None:
    """Change a label set. Any change makes a new revision (models stay pinned to theirs)."""
    current = label_set.current_revision
    current_keys = current.label_keys() if current else []
    labels = (
        labels_for_keys(label_keys) if label_keys is not None else labels_for_keys(current_keys)
    )
    new_kind = kind or label_set.kind
    if new_kind not in LabelSetKind.values:
        raise ValidationError(
            {
                "kind": [
                    _("Choose one of %(choices)s.") % {"choices": ", ".join(LabelSetKind.values)}
                ]
            }
        )
    if new_kind == LabelSetKind.MULTICLASS and len(labels) < 2:
        raise ValidationError({"labels": [_("A multi-class label set needs at least two labels.")]})
    changes = []
    if [label.key for label in labels] != current_keys:
        changes.append("labels")
    if new_kind != label_set.kind:
        changes.append("kind")
    if name is not None and name != label_set.name:
        changes.append("name")
    if description is not None and description != label_set.description:
        changes.append("description")
    if not changes:
        return None
    with transaction.atomic():
        label_set.kind = new_kind
        if name is not None:
            label_set.name = name
        if description is not None:
            label_set.description = description
        label_set.save()
        return _new_revision(
            label_set=label_set,
            labels=labels,
            actor=actor,
            note=note or f"changed {', '.join(changes)}",
        )


# --- Label proposals (tenants ask, platform staff decide) ------------------------------------
def label_proposal_create(
    *,
    tenant,
    key: str,
    name_en: str,
    name_zh: str = "",
    description: str = "",
    aliases: Iterable[str] | None = None,
    parent: Label | None = None,
    reason: str = "",
    proposed_by=None,
) -> LabelProposal:
    """Ask platform staff for a new label. The key must be free and not already asked for."""
    key = (key or "").strip()
    errors: dict[str, list[str]] = {}
    try:
        label_key_validator(key)
    except ValidationError as exc:
        errors["key"] = list(exc.messages)
    if "key" not in errors and not key_is_free(key):
        errors["key"] = [
            _("The key '%(key)s' is already taken (keys are never reused).") % {"key": key}
        ]
    elif (
        "key" not in errors
        and LabelProposal.objects.owned_by(tenant)
        .filter(key=key, status=ProposalStatus.PENDING)
        .exists()
    ):
        errors["key"] = [
            _("You have already proposed '%(key)s'; it awaits a decision.") % {"key": key}
        ]
    if not (name_en or "").strip():
        errors["name_en"] = ["An English name is required."]
    if errors:
        raise ValidationError(errors)
    check_parent(label=None, parent=parent)
    return LabelProposal.objects.create(
        tenant=tenant,
        key=key,
        name_en=name_en.strip(),
        name_zh=(name_zh or "").strip(),
        description=description or "",
        aliases=_clean_aliases(aliases),
        parent=parent,
        reason=(reason or "")[:500],
        proposed_by=proposed_by if getattr(proposed_by, "pk", None) else None,
    )


def _decidable(proposal: LabelProposal) -> LabelProposal:
    locked = (
        LabelProposal.objects.owned_by(proposal.tenant_id).select_for_update().get(pk=proposal.pk)
    )
    if locked.status != ProposalStatus.PENDING:
        raise ValidationError(
            {
                "status": [
                    _("This proposal is %(locked_status)s already.")
                    % {"locked_status": locked.status}
                ]
            }
        )
    return locked


def label_proposal_approve(*, proposal: LabelProposal, actor, note: str = "") -> LabelProposal:
    """Create the proposed label (platform staff) and mark the proposal approved."""
    with transaction.atomic():
        proposal = _decidable(proposal)
        label = label_create(
            key=proposal.key,
            name_en=proposal.name_en,
            name_zh=proposal.name_zh,
            description=proposal.description,
            aliases=proposal.aliases,
            parent=proposal.parent,
            actor=actor,
        )
        proposal.label = label
        proposal.status = ProposalStatus.APPROVED
        proposal.decided_by = actor if getattr(actor, "pk", None) else None
        proposal.decided_at = timezone.now()
        proposal.decision_note = (note or "")[:300]
        proposal.save()
    return proposal


def label_proposal_reject(*, proposal: LabelProposal, actor, note: str) -> LabelProposal:
    if not (note or "").strip():
        raise ValidationError({"note": [_("Say why, for the tenant.")]})
    with transaction.atomic():
        proposal = _decidable(proposal)
        proposal.status = ProposalStatus.REJECTED
        proposal.decided_by = actor if getattr(actor, "pk", None) else None
        proposal.decided_at = timezone.now()
        proposal.decision_note = note.strip()[:300]
        proposal.save()
    return proposal
