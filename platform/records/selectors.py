"""Reads of project records: the record page, history, search, related lessons, retrospectives.

Every selector takes the tenant it reads for. The two cross-tenant reads are named so
(`*_all_tenants`): shareable lessons offered to other units, and the staff overview.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from core.localtime import tenant_localtime
from monitoring.models import Alert
from records import timeline
from records.models import (
    SINGLE_KINDS,
    Milestone,
    ProblemStatus,
    ProjectRecord,
    Section,
    SectionKind,
    SectionRevision,
)
from registry.models import AliasEvent, ModelVersion
from registry.selectors import serving_version
from review.models import Case, CaseStatus
from taxonomy.models import Label
from taxonomy.selectors import resolve_terms
from tenants.models import Need, NeedStatus, Tenant


def _postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def needs_with_records(*, tenant: Tenant) -> QuerySet[Need]:
    """The tenant's needs with what their records hold (one query)."""
    sections = Section.objects.for_tenant(tenant)
    return (
        Need.objects.for_tenant(tenant)
        .select_related("project_record", "model")
        .annotate(
            n_sections=Count("project_record__sections", distinct=True),
            open_problems=Count(
                "project_record__sections",
                filter=Q(
                    project_record__sections__kind=SectionKind.PROBLEM,
                    project_record__sections__status=ProblemStatus.OPEN,
                ),
                distinct=True,
            ),
            has_retrospective=Exists(
                sections.filter(record__need=OuterRef("pk"), kind=SectionKind.RETROSPECTIVE)
            ),
        )
        .order_by("slug")
    )


def need_for_record(*, tenant: Tenant, slug: str) -> Need:
    """The tenant's need (raises Need.DoesNotExist for another tenant's, like a missing one)."""
    return (
        Need.objects.for_tenant(tenant)
        .select_related("tenant", "label_set", "model", "created_by", "approved_by")
        .get(slug=slug)
    )


def record_sections(*, tenant: Tenant, need: Need) -> list[Section]:
    return list(
        Section.objects.for_tenant(tenant)
        .filter(record__need=need)
        .select_related("created_by", "updated_by", "label", "model_version__registered_model")
        .prefetch_related(Prefetch("labels", queryset=Label.objects.order_by("key")))
        .order_by("created_at", "pk")
    )


@dataclass
class RecordView:
    need: Need
    record: ProjectRecord | None
    singles: list[tuple[str, str, Section | None]]
    problems: list[Section]
    lessons: list[Section]
    retrospectives: list[Section]
    timeline: list[timeline.Entry] = field(default_factory=list)


def record_view(*, tenant: Tenant, need: Need, with_timeline: bool = True) -> RecordView:
    sections = record_sections(tenant=tenant, need=need)
    by_kind: dict[str, list[Section]] = {}
    for section in sections:
        by_kind.setdefault(section.kind, []).append(section)
    record = sections[0].record if sections else None
    if record is None:
        record = ProjectRecord.objects.for_tenant(tenant).filter(need=need).first()
    singles: list[tuple[str, str, Section | None]] = [
        (kind.value, str(kind.label), next(iter(by_kind.get(kind, [])), None))
        for kind in SINGLE_KINDS
    ]
    problems = sorted(
        by_kind.get(SectionKind.PROBLEM, []),
        key=lambda s: (s.status != ProblemStatus.OPEN, -s.created_at.timestamp()),
    )
    return RecordView(
        need=need,
        record=record,
        singles=singles,
        problems=problems,
        lessons=by_kind.get(SectionKind.LESSON, []),
        retrospectives=sorted(
            by_kind.get(SectionKind.RETROSPECTIVE, []), key=lambda s: s.created_at, reverse=True
        ),
        timeline=timeline.build(need=need, tenant=tenant, sections=sections)
        if with_timeline
        else [],
    )


def section_for(*, tenant: Tenant, need: Need, pk: int) -> Section:
    return (
        Section.objects.for_tenant(tenant)
        .select_related("record__need", "updated_by", "model_version__registered_model", "label")
        .prefetch_related("labels")
        .get(record__need=need, pk=pk)
    )


def single_section(*, tenant: Tenant, need: Need, kind: str) -> Section | None:
    return (
        Section.objects.for_tenant(tenant)
        .select_related("updated_by")
        .filter(record__need=need, kind=kind)
        .first()
    )


def section_history(*, tenant: Tenant, section: Section) -> list[SectionRevision]:
    return list(
        SectionRevision.objects.for_tenant(tenant)
        .filter(section=section)
        .select_related("author")
        .order_by("-number")
    )


def linkable_versions(*, tenant: Tenant, need: Need) -> QuerySet[ModelVersion]:
    """The versions a problem on this need can point at: its model's, newest first."""
    if need.model_id is None:
        return ModelVersion.objects.none()
    return (
        ModelVersion.objects.for_tenant(tenant)
        .filter(registered_model_id=need.model_id)
        .select_related("registered_model")
        .order_by("-version")
    )


# --- search -------------------------------------------------------------------------------


@dataclass
class SearchHit:
    need: Need
    section: Section | None
    kind: str
    title: str
    excerpt: str


def _excerpt(text: str, query: str, width: int = 160) -> str:
    lowered, term = text.lower(), query.lower().split()[0] if query.split() else ""
    at = lowered.find(term) if term else -1
    start = max(0, at - width // 3) if at >= 0 else 0
    snippet = text[start : start + width].replace("\n", " ")
    return ("…" if start else "") + snippet + ("…" if start + width < len(text) else "")


def record_search(*, tenant: Tenant, query: str, limit: int = 50) -> list[SearchHit]:
    """Sections (and needs) of the tenant's records matching `query`: PostgreSQL full-text search
    (websearch syntax, ranked), with a substring match beside it for text that has no word
    boundaries to stem (Chinese); `icontains` alone on SQLite."""
    query = query.strip()[:200]
    if not query:
        return []
    sections = Section.objects.for_tenant(tenant).select_related("record__need")
    needs = Need.objects.for_tenant(tenant)
    if _postgres():
        from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

        search = SearchQuery(query, search_type="websearch", config="english")
        vector = SearchVector("title", weight="A", config="english") + SearchVector(
            "body", weight="B", config="english"
        )
        # `@@` decides what matches (ts_rank is never 0, not even for a miss); the rank orders.
        sections = (
            sections.annotate(vector=vector, rank=SearchRank(vector, search))
            .filter(Q(vector=search) | Q(title__icontains=query) | Q(body__icontains=query))
            .order_by("-rank", "-updated_at")
        )
        need_vector = SearchVector("name", weight="A", config="english") + SearchVector(
            "goal", weight="B", config="english"
        )
        needs = (
            needs.annotate(vector=need_vector, rank=SearchRank(need_vector, search))
            .filter(Q(vector=search) | Q(name__icontains=query) | Q(goal__icontains=query))
            .order_by("-rank", "slug")
        )
    else:
        sections = sections.filter(Q(title__icontains=query) | Q(body__icontains=query)).order_by(
            "-updated_at"
        )
        needs = needs.filter(Q(name__icontains=query) | Q(goal__icontains=query)).order_by("slug")
    hits = [
        SearchHit(
            need=need,
            section=None,
            kind="need",
            title=need.name,
            excerpt=_excerpt(need.goal, query),
        )
        for need in needs[:limit]
    ]
    hits += [
        SearchHit(
            need=section.record.need,
            section=section,
            kind=section.kind,
            title=section.title or section.get_kind_display(),
            excerpt=_excerpt(section.body, query),
        )
        for section in sections[:limit]
    ]
    return hits[:limit]


# --- lessons that travel ------------------------------------------------------------------


def _related_keys(keys: list[str]) -> Q:
    """Labels equal to, above or below any of `keys` in the taxonomy tree (keys are paths)."""
    ancestors = {".".join(key.split(".")[:i]) for key in keys for i in range(1, key.count(".") + 1)}
    condition = Q(labels__key__in=set(keys) | ancestors)
    for key in keys:
        condition |= Q(labels__key__startswith=f"{key}.")
    return condition


def _shareable_lessons_all_tenants(*, keys: list[str], exclude_tenant: Tenant, limit: int):
    """Other tenants' lessons that their owner marked shareable, on labels related to `keys`.
    Deliberately cross-tenant, and only ever the lesson itself: never its record's other
    sections, the need it came from, or anything not marked shareable."""
    return (
        Section.objects.dangerously_unscoped()
        .filter(kind=SectionKind.LESSON, shareable=True)
        .exclude(tenant=exclude_tenant)
        .filter(_related_keys(keys))
        .prefetch_related(Prefetch("labels", queryset=Label.objects.order_by("key")))
        .distinct()
        .order_by("-updated_at")[:limit]
    )


def related_lessons(
    *, tenant: Tenant, terms: list[str], exclude_need: Need | None = None, limit: int = 5
) -> list[dict[str, Any]]:
    """Lessons learned on needs with overlapping labels: the tenant's own (from its other
    records) and other units' shareable ones. `terms` are label keys or what a user typed."""
    keys = [label.key for label in resolve_terms(terms).labels] if terms else []
    if not keys:
        return []
    own = (
        Section.objects.for_tenant(tenant)
        .filter(kind=SectionKind.LESSON)
        .filter(_related_keys(keys))
        .select_related("record__need")
        .prefetch_related(Prefetch("labels", queryset=Label.objects.order_by("key")))
        .distinct()
        .order_by("-updated_at")
    )
    if exclude_need is not None:
        own = own.exclude(record__need=exclude_need)
    rows: list[dict[str, Any]] = [
        {"lesson": lesson, "own": True, "need": lesson.record.need} for lesson in own[:limit]
    ]
    rows += [
        {"lesson": lesson, "own": False, "need": None}
        for lesson in _shareable_lessons_all_tenants(keys=keys, exclude_tenant=tenant, limit=limit)
    ]
    for row in rows:
        row["labels"] = [label.key for label in row["lesson"].labels.all()]
    return rows


# --- retrospectives -----------------------------------------------------------------------


def _version_at(*, need: Need, at: datetime) -> ModelVersion | None:
    """The version the need's alias pointed at, at `at` (from the alias history)."""
    if need.model_id is None:
        return None
    event = (
        AliasEvent.objects.filter(
            registered_model_id=need.model_id, alias=need.model_alias, at__lte=at
        )
        .select_related("to_version")
        .order_by("-at", "-pk")
        .first()
    )
    return event.to_version if event else None


def retrospective_draft(*, tenant: Tenant, need: Need, milestone: str) -> dict[str, Any]:
    """A retrospective pre-filled with what changed since the last one (or since the need was
    registered): metric deltas of the serving version, alerts, training runs, promotions and
    problems. The text is a draft for people to finish, so numbers come from the facts now."""
    last = (
        Section.objects.for_tenant(tenant)
        .filter(record__need=need, kind=SectionKind.RETROSPECTIVE)
        .order_by("-created_at")
        .first()
    )
    since = last.created_at if last else need.created_at
    now = timezone.now()
    before = _version_at(need=need, at=since)
    current = serving_version(need)
    # A draft in the reader's language (the active one), with times on the tenant's clock.
    local_since = tenant_localtime(tenant, since)
    lines = [
        "### "
        + _("What changed since %(since)s (%(zone)s)")
        % {"since": f"{local_since:%Y-%m-%d %H:%M}", "zone": tenant.time_zone},
        "",
    ]
    metric_rows = []
    if current is not None:
        old = (before.metrics if before else {}) or {}
        for key in timeline.HEADLINE_METRICS:
            if key in (current.metrics or {}):
                new_value = current.metrics[key]
                old_value = old.get(key)
                delta = new_value - old_value if isinstance(old_value, int | float) else None
                metric_rows.append((key, old_value, new_value, delta))
        serving = f"{current.registered_model.name} v{current.version}"
        if before and before.pk != current.pk:
            serving += " " + _("(was v%(version)s)") % {"version": before.version}
        lines.append("**" + _("Serving version:") + f"** {serving}")
        lines.append("")
        if metric_rows:
            lines += [
                "| " + " | ".join((_("metric"), _("before"), _("now"), _("change"))) + " |",
                "|---|---|---|---|",
            ]
            for key, old_value, new_value, delta in metric_rows:
                lines.append(
                    f"| {key} | {'—' if old_value is None else f'{old_value:.3f}'} "
                    f"| {new_value:.3f} | {'—' if delta is None else f'{delta:+.3f}'} |"
                )
            lines.append("")
    else:
        lines += [_("No version serves this need yet."), ""]
    entries = [
        e
        for e in timeline.build(
            need=need, tenant=tenant, only=["training", "alias", "alert", "need", "review_round"]
        )
        if e.at > since
    ]
    alert_entries = [e for e in entries if e.kind == "alert"]
    open_alerts = (
        Alert.objects.for_tenant(tenant).filter(need=need, resolved_at__isnull=True).count()
    )
    lines += [
        "**"
        + _("Alerts:")
        + "** "
        + _("%(raised)s raised, %(open)s still open.")
        % {"raised": len(alert_entries), "open": open_alerts},
        "",
    ]
    lines += [f"- {_day(tenant, e.at)} {e.title}" for e in alert_entries[:20]]
    lines.append("")
    others = [e for e in entries if e.kind in ("training_run", "promotion", "rollback")]
    lines += ["**" + _("Training and promotions:") + f"** {len(others)}.", ""]
    lines += [
        f"- {_day(tenant, e.at)} {e.title}" + (f" — {e.detail}" if e.detail else "") for e in others
    ]
    lines.append("")
    handled = (
        Case.objects.for_tenant(tenant)
        .filter(need=need, created_at__gt=since)
        .aggregate(
            n=Count("id"),
            accepted=Count("id", filter=Q(status=CaseStatus.ACCEPTED)),
            rejected=Count("id", filter=Q(status=CaseStatus.REJECTED)),
        )
    )
    lines += [
        "**"
        + _("Cases:")
        + "** "
        + _(
            "%(reported)s reported, %(accepted)s accepted as training samples, "
            "%(rejected)s rejected."
        )
        % {
            "reported": handled["n"],
            "accepted": handled["accepted"],
            "rejected": handled["rejected"],
        },
        "",
    ]
    rounds = [e for e in entries if e.kind == "review_closed"]
    if rounds:
        lines += ["**" + _("Review rounds closed:") + f"** {len(rounds)}.", ""]
        lines += [f"- {_day(tenant, e.at)} {e.title}" for e in rounds]
        lines.append("")
    problems = list(
        Section.objects.for_tenant(tenant)
        .filter(record__need=need, kind=SectionKind.PROBLEM)
        .filter(Q(created_at__gt=since) | Q(resolved_at__gt=since))
        .order_by("created_at")
    )
    lines += ["**" + _("Problems noted or closed:") + f"** {len(problems)}.", ""]
    lines += [f"- [{p.get_status_display()}] {p.title}" for p in problems]
    lines += ["", "### " + _("What went well"), "", "", "### " + _("What to change"), ""]
    return {
        "title": _("%(milestone)s retrospective, %(day)s")
        % {"milestone": Milestone(milestone).label, "day": _day(tenant, now)},
        "body": "\n".join(lines),
        "since": since,
        "milestone": milestone,
        "metrics": [
            {"metric": k, "before": o, "now": n, "change": d} for k, o, n, d in metric_rows
        ],
    }


def _day(tenant: Tenant, moment: datetime) -> str:
    return f"{tenant_localtime(tenant, moment):%Y-%m-%d}"


# --- staff overview -----------------------------------------------------------------------


def live_needs_without_retrospective_all_tenants() -> QuerySet[Need]:
    return (
        Need.objects.dangerously_unscoped()
        .filter(status=NeedStatus.LIVE)
        .exclude(
            Exists(
                Section.objects.dangerously_unscoped().filter(
                    record__need=OuterRef("pk"), kind=SectionKind.RETROSPECTIVE
                )
            )
        )
        .select_related("tenant")
        .order_by("tenant__slug", "slug")
    )


def problems_open_longer_than_all_tenants(*, days: int) -> QuerySet[Section]:
    cutoff = timezone.now() - timedelta(days=days)
    return (
        Section.objects.dangerously_unscoped()
        .filter(kind=SectionKind.PROBLEM, status=ProblemStatus.OPEN, created_at__lt=cutoff)
        .select_related("tenant", "record__need")
        .order_by("created_at")
    )
