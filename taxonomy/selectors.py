"""Reads of the taxonomy: search, the tree, term resolution and label-set reuse scoring.

Reuse scoring (documented in README): for the requested labels R and a candidate's labels S
(a label set's current revision, or the revision a live model was trained on), each requested
label r *lands on* one class of S: r itself when r ∈ S, else its nearest ancestor in S (the
candidate answers more coarsely: `news.sport` for `news.sport.football`), else nothing.

- `coverage = Σ_c credit(c) / |R|` over the *distinct* classes c that requested labels land on:
  several requested labels landing on one class count once (the candidate cannot tell them
  apart: "8 of your labels would all come back as Business"); credit is 1 when c is itself a
  requested label, 0.5 when it is only a coarser ancestor;
- `jaccard  = |R ∩ S| / |R ∪ S|` (exact label matches: how alike the two tasks are);
- `score    = 0.7·coverage + 0.3·jaccard`, ranked high to low; candidates with no credit at all
  are left out. Coverage weighs more because a tenant mostly cares whether its labels are answered;
  jaccard breaks ties in favour of the candidate with fewer unrelated labels.
- `fits` is true only when every requested label lands on a class of its own (none missing, none
  sharing a class): only then does the candidate answer the need; `reasons` says why not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext as _

from taxonomy.models import Label, LabelSet, LabelSetMember, LabelStatus

COVERAGE_WEIGHT = 0.7
JACCARD_WEIGHT = 0.3
ANCESTOR_CREDIT = 0.5


def label_list(*, query: str = "", status: str | None = None) -> QuerySet[Label]:
    """Labels matching `query` in the key, either name, the description or the aliases."""
    labels = Label.objects.select_related("parent", "replaced_by")
    if status:
        labels = labels.filter(status=status)
    query = (query or "").strip()
    if not query:
        return labels
    text_match = (
        Q(key__icontains=query)
        | Q(name_en__icontains=query)
        | Q(name_zh__icontains=query)
        | Q(description__icontains=query)
    )
    # Aliases are a JSON list; matching them in Python keeps SQLite and PostgreSQL identical.
    folded = query.casefold()
    alias_ids = [
        pk
        for pk, aliases in Label.objects.values_list("pk", "aliases")
        if any(folded in alias.casefold() for alias in aliases or [])
    ]
    return labels.filter(text_match | Q(pk__in=alias_ids))


def label_tree(*, labels: Iterable[Label] | None = None) -> list[dict]:
    """The whole tree as nested dicts (`label`, `children`), roots first, ordered by key."""
    labels = list(labels if labels is not None else Label.objects.order_by("key"))
    by_parent: dict[int | None, list[Label]] = {}
    ids = {label.pk for label in labels}
    for label in labels:
        parent = label.parent_id if label.parent_id in ids else None
        by_parent.setdefault(parent, []).append(label)

    def build(parent_id: int | None) -> list[dict]:
        return [
            {"label": label, "children": build(label.pk)} for label in by_parent.get(parent_id, [])
        ]

    return build(None)


def _canonical(label: Label) -> Label:
    """Follow `replaced_by` to the label in force (deprecated labels resolve to replacements)."""
    seen = {label.pk}
    while label.status == LabelStatus.DEPRECATED and label.replaced_by_id:
        nxt = label.replaced_by
        if nxt.pk in seen:
            break
        seen.add(nxt.pk)
        label = nxt
    return label


@dataclass
class Resolution:
    labels: list[Label] = field(default_factory=list)
    #: term -> the label key it resolved to
    matched: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [label.key for label in self.labels]


def resolve_terms(terms: Iterable[str]) -> Resolution:
    """Resolve what a person typed to labels: a key, an English/Chinese name or an alias.

    Matching is case-insensitive; a key beats a name, a name beats an alias, and an alias beats
    the key's last segment ("sport" -> news.sport). Deprecated labels resolve to their replacement.
    A term matching several labels at the same level picks the shallowest (then the first key).
    """
    labels = list(Label.objects.select_related("replaced_by").order_by("key"))
    by_key, by_name, by_alias, by_segment = {}, {}, {}, {}
    for label in sorted(labels, key=lambda lb: (lb.key.count("."), lb.key)):
        by_key.setdefault(label.key.casefold(), label)
        for name in (label.name_en, label.name_zh):
            if name:
                by_name.setdefault(name.strip().casefold(), label)
        for alias in label.aliases or []:
            by_alias.setdefault(alias.strip().casefold(), label)
        by_segment.setdefault(label.key.rsplit(".", 1)[-1].casefold(), label)
    result = Resolution()
    for term in terms:
        term = (term or "").strip()
        if not term or term in result.matched or term in result.unknown:
            continue
        folded = term.casefold()
        label = next(
            (index[folded] for index in (by_key, by_name, by_alias, by_segment) if folded in index),
            None,
        )
        if label is None:
            result.unknown.append(term)
            continue
        label = _canonical(label)
        result.matched[term] = label.key
        if label not in result.labels:
            result.labels.append(label)
    return result


def split_terms(text: str) -> list[str]:
    """Split what was typed into a labels box: commas (ASCII or Chinese), semicolons, new lines."""
    for sep in ("，", "、", ";", "；", "\n"):
        text = text.replace(sep, ",")
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass
class Overlap:
    score: float
    coverage: float
    jaccard: float
    matched: list[str]
    partial: list[str]
    missing: list[str]
    extra: list[str]
    #: How many distinct candidate classes the requested labels land on (what it can tell apart).
    distinct: int = 0
    #: How many labels were asked for.
    requested: int = 0
    #: Requested label key -> the candidate class it lands on (itself, or a coarser ancestor).
    lands_on: dict[str, str] = field(default_factory=dict)
    #: Candidate classes that several requested labels land on: [{"label", "name", "requested"}].
    collapsed: list[dict] = field(default_factory=list)
    #: Every requested label lands on a class of its own: the candidate answers the need.
    fits: bool = False
    #: Why it does not fit (or where it answers more coarsely), in words.
    reasons: list[str] = field(default_factory=list)


def _display(label: Label) -> str:
    return label.name_en or label.key


def overlap(requested: list[Label], candidate_keys: list[str]) -> Overlap:
    """Score `candidate_keys` against the requested labels (see the module docstring)."""
    wanted = [label.key for label in requested]
    have = set(candidate_keys)
    matched, partial, missing = [], [], []
    lands_on: dict[str, str] = {}
    class_labels: dict[str, Label] = {}
    for label in requested:
        if label.key in have:
            matched.append(label.key)
            lands_on[label.key] = label.key
            class_labels[label.key] = label
            continue
        ancestor = label.parent
        seen = set()
        while ancestor is not None and ancestor.pk not in seen and ancestor.key not in have:
            seen.add(ancestor.pk)
            ancestor = ancestor.parent
        if ancestor is not None and ancestor.key in have:
            partial.append(label.key)
            lands_on[label.key] = ancestor.key
            class_labels.setdefault(ancestor.key, ancestor)
        else:
            missing.append(label.key)
    groups: dict[str, list[str]] = {}
    for key, target in lands_on.items():
        groups.setdefault(target, []).append(key)
    wanted_set = set(wanted)
    credit = sum(1.0 if target in wanted_set else ANCESTOR_CREDIT for target in groups)
    names = {label.key: _display(label) for label in requested}
    collapsed = [
        {"label": target, "name": _display(class_labels[target]), "requested": keys}
        for target, keys in groups.items()
        if len(keys) > 1
    ]
    reasons = []
    for group in collapsed:
        values = {
            "n": len(group["requested"]),
            "name": group["name"],
            "labels": ", ".join(names[k] for k in group["requested"]),
        }
        if len(group["requested"]) == len(wanted):
            reason = _(
                "%(n)s of your labels would all come back as %(name)s (%(labels)s): "
                "it cannot tell them apart."
            )
        else:
            reason = _(
                "%(n)s of your labels would come back as %(name)s (%(labels)s): "
                "it cannot tell them apart."
            )
        reasons.append(reason % values)
    if missing:
        reasons.append(
            _("It has no class for %(labels)s.") % {"labels": ", ".join(names[k] for k in missing)}
        )
    coarser = [k for k in partial if len(groups[lands_on[k]]) == 1]
    if coarser:
        reasons.append(
            _("Answered more coarsely: %(labels)s.")
            % {
                "labels": ", ".join(
                    _("%(label)s as %(class)s")
                    % {"label": names[k], "class": _display(class_labels[lands_on[k]])}
                    for k in coarser
                )
            }
        )
    union = wanted_set | have
    jaccard = len(wanted_set & have) / len(union) if union else 0.0
    coverage = credit / len(wanted) if wanted else 0.0
    return Overlap(
        score=round(COVERAGE_WEIGHT * coverage + JACCARD_WEIGHT * jaccard, 4),
        coverage=round(coverage, 4),
        jaccard=round(jaccard, 4),
        matched=matched,
        partial=partial,
        missing=missing,
        extra=sorted(have - wanted_set),
        distinct=len(groups),
        requested=len(wanted),
        lands_on=lands_on,
        collapsed=collapsed,
        fits=bool(wanted) and not missing and not collapsed,
        reasons=reasons,
    )


def revision_keys(revision_ids: Iterable[int]) -> dict[int, list[str]]:
    """Label keys of each label-set revision, in position order."""
    keys: dict[int, list[str]] = {}
    for revision_id, key in (
        LabelSetMember.objects.filter(revision_id__in=list(revision_ids))
        .order_by("revision_id", "position")
        .values_list("revision_id", "label__key")
    ):
        keys.setdefault(revision_id, []).append(key)
    return keys


def requested_labels(resolution: Resolution) -> list[Label]:
    """The resolved labels, with their ancestors loaded, in the order they were asked for."""
    requested = list(
        Label.objects.filter(pk__in=[label.pk for label in resolution.labels]).select_related(
            "parent__parent__parent"
        )
    )
    requested.sort(key=lambda label: resolution.keys.index(label.key))
    return requested


def label_set_suggestions(*, tenant, requested: list[Label]) -> list[dict]:
    """Label sets the tenant can see (shared and its own) ranked by overlap with `requested`;
    part of `registry.selectors.reuse_suggestions`, which adds the live models."""
    label_sets = list(LabelSet.objects.for_tenant(tenant).select_related("tenant"))
    current = {}
    for label_set in label_sets:
        revision = label_set.revisions.order_by("-number").first()
        if revision is not None:
            current[label_set.pk] = revision
    set_keys = revision_keys(r.pk for r in current.values())
    set_rows = []
    for label_set in label_sets:
        revision = current.get(label_set.pk)
        if revision is None:
            continue
        result = overlap(requested, set_keys.get(revision.pk, []))
        if result.score > 0:
            set_rows.append({"label_set": label_set, "revision": revision, "overlap": result})
    set_rows.sort(key=lambda row: (-row["overlap"].score, row["label_set"].slug))
    return set_rows


def visible_label_sets(*, tenant) -> QuerySet[LabelSet]:
    return LabelSet.objects.for_tenant(tenant).select_related("tenant").order_by("slug")


def visible_label_set(*, tenant, slug: str) -> LabelSet | None:
    """The label set `slug` as `tenant` sees it: its own if it has one, else the shared one."""
    return (
        LabelSet.objects.for_tenant(tenant)
        .filter(slug=slug)
        .order_by(F("tenant").asc(nulls_last=True))
        .first()
    )


def label_names(keys: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
    """{key: (name_en, name_zh)} of the given labels (all labels when `keys` is None)."""
    qs = Label.objects.all()
    if keys is not None:
        qs = qs.filter(key__in=list(keys))
    return {key: (en, zh) for key, en, zh in qs.values_list("key", "name_en", "name_zh")}


def localized_label_name(names: tuple[str, str] | None, key: str, language: str | None) -> str:
    """A label's name in `language` (zh*: name_zh, falling back to name_en), or its key."""
    if names is None:
        return key
    en, zh = names
    if (language or "").lower().startswith("zh") and zh:
        return zh
    return en or key
