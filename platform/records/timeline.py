"""A need's timeline, derived at read time from the facts the other apps keep.

Nothing is copied into the record: each entry is built from its source row when the page (or the
API, or the export) asks, and links to that row. A row that is gone leaves no entry behind.

Sources are plain functions, one per kind of fact, registered with `@timeline_source`. Each
reads its rows in one query (whatever their number), scoped to the need's tenant (own rows, plus
shared platform rows where a model has them). The improvement loop adds its own: review rounds
and cases (the review app), retrains with their champion/challenger comparison (retraining) and
optimisation runs (optimisation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils.translation import gettext as _

from monitoring.evidence import plain_sentence
from monitoring.models import Alert
from optimisation.models import OptimisationRun
from registry.models import AliasAction, AliasEvent, DatasetSnapshot, TrainingRun, TrainingSample
from retraining.models import Retrain
from review.models import Case, CaseSource, CaseStatus, ReviewRound
from taxonomy.models import LabelSetRevision
from tenants.models import Need, NeedStatus, NeedStatusChange, Tenant


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str
    title: str
    url: str
    object_type: str
    object_id: int | str
    detail: str = ""
    actor: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimelineContext:
    need: Need
    tenant: Tenant
    #: The record's own sections (problems, retrospectives), when the caller read them already.
    sections: tuple = ()


Source = Callable[[TimelineContext], Iterable[Entry]]
SOURCES: dict[str, Source] = {}

#: The metrics a timeline entry and a retrospective compare (registry.evaluation's keys).
HEADLINE_METRICS = ("macro_f1", "accuracy", "micro_f1")


def timeline_source(name: str) -> Callable[[Source], Source]:
    def register(func: Source) -> Source:
        SOURCES[name] = func
        return func

    return register


def build(
    *, need: Need, tenant: Tenant, sections: Iterable = (), only: Iterable[str] | None = None
) -> list[Entry]:
    """Every entry of every source (or of the sources named in `only`), oldest first."""
    if need.tenant_id != tenant.pk:
        raise ValueError("A timeline is built for the need's own tenant.")
    context = TimelineContext(need=need, tenant=tenant, sections=tuple(sections))
    names = list(SOURCES) if only is None else [n for n in SOURCES if n in set(only)]
    entries = [entry for name in names for entry in SOURCES[name](context)]
    entries.sort(key=lambda e: (e.at, e.kind, str(e.object_id)))
    return entries


def _need_rows(model, context: TimelineContext, *related: str):
    """The need's own rows of a tenant-owned model, oldest first, with `related` joined."""
    return (
        model.objects.for_tenant(context.tenant)
        .filter(need=context.need)
        .select_related(*related)
        .order_by("created_at", "pk")
    )


def _name(user) -> str:
    return user.get_username() if user is not None else ""


def _headline(metrics: dict | None) -> dict[str, float]:
    metrics = metrics or {}
    return {k: metrics[k] for k in HEADLINE_METRICS if isinstance(metrics.get(k), int | float)}


def _metric_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k.replace('_', '-')} {v:.3f}" for k, v in metrics.items())


# --- the sources ---------------------------------------------------------------------------


@timeline_source("need")
def need_lifecycle(context: TimelineContext) -> list[Entry]:
    need = context.need
    url = reverse("tenants:need-detail", args=[need.slug])
    entries = [
        Entry(
            at=need.created_at,
            kind="need_requested",
            title=_("Need “%(name)s” requested") % {"name": need.name},
            detail=need.goal,
            url=url,
            object_type="tenants.need",
            object_id=need.pk,
            actor=_name(need.created_by) if need.created_by_id else "",
        )
    ]
    changes = list(
        NeedStatusChange.objects.for_tenant(context.tenant)
        .filter(need=need)
        .select_related("actor")
        .order_by("at", "pk")
    )
    for change in changes:
        entries.append(
            Entry(
                at=change.at,
                kind=f"need_{change.to_status}",
                title=_("Need %(from)s → %(to)s")
                % {"from": change.from_status, "to": change.to_status},
                detail=change.reason,
                url=url,
                object_type="tenants.needstatuschange",
                object_id=change.pk,
                actor=_name(change.actor) or change.api_key_prefix,
            )
        )
    approved_logged = any(c.to_status == NeedStatus.APPROVED for c in changes)
    if need.approved_at and not approved_logged:
        entries.append(
            Entry(
                at=need.approved_at,
                kind="need_approved",
                title=_("Need approved"),
                url=url,
                object_type="tenants.need",
                object_id=need.pk,
                actor=_name(need.approved_by) if need.approved_by_id else "",
            )
        )
    return entries


@timeline_source("label_set")
def label_set_revisions(context: TimelineContext) -> list[Entry]:
    need = context.need
    if need.label_set_id is None:
        return []
    rows = (
        LabelSetRevision.objects.filter(label_set_id=need.label_set_id)
        .select_related("label_set", "created_by")
        .annotate(n_labels=Count("members"))
        .order_by("number")
    )
    return [
        Entry(
            at=rev.created_at,
            kind="label_set_revision",
            title=_("Label set %(slug)s revision %(number)s (%(n)s labels)")
            % {"slug": rev.label_set.slug, "number": rev.number, "n": rev.n_labels},
            detail=rev.note,
            url=reverse("taxonomy-api:label-set-detail", args=[rev.label_set.slug]),
            object_type="taxonomy.labelsetrevision",
            object_id=rev.pk,
            actor=_name(rev.created_by) if rev.created_by_id else "",
        )
        for rev in rows
    ]


@timeline_source("import")
def data_imports(context: TimelineContext) -> list[Entry]:
    """Training data as imported: one entry per (revision, source, source reference)."""
    need = context.need
    if need.label_set_id is None:
        return []
    groups = (
        TrainingSample.objects.for_tenant(context.tenant)
        .filter(revision__label_set_id=need.label_set_id)
        .values("revision_id", "revision__number", "revision__label_set__slug", "source")
        .annotate(first_at=Min("created_at"), n=Count("id"), ref=Min("source_ref"))
        .order_by("first_at")
    )
    # Grouping by the reference too would split a file into one group per row when refs are
    # row ids (cases); a source per revision is what a reader calls "an import".
    return [
        Entry(
            at=group["first_at"],
            kind="data_import",
            title=_("%(n)s training samples (%(source)s) for %(slug)s r%(number)s")
            % {
                "n": group["n"],
                "source": group["source"],
                "slug": group["revision__label_set__slug"],
                "number": group["revision__number"],
            },
            detail=group["ref"] or "",
            url=reverse("taxonomy-api:label-set-detail", args=[group["revision__label_set__slug"]]),
            object_type="taxonomy.labelsetrevision",
            object_id=group["revision_id"],
            metrics={"samples": group["n"]},
        )
        for group in groups
    ]


@timeline_source("snapshot")
def snapshots(context: TimelineContext) -> list[Entry]:
    need = context.need
    if need.label_set_id is None:
        return []
    first_run = (
        TrainingRun.objects.for_tenant(context.tenant)
        .filter(snapshot=OuterRef("pk"))
        .order_by("pk")
        .values("pk")[:1]
    )
    rows = (
        DatasetSnapshot.objects.for_tenant(context.tenant)
        .filter(revision__label_set_id=need.label_set_id)
        .select_related("revision__label_set", "created_by")
        .annotate(run_id=Subquery(first_run))
    )
    entries = []
    for snap in rows:
        # A snapshot without sample ids (a stand-in) still says how many rows it describes.
        size = len(snap.train_sample_ids) + len(snap.test_sample_ids) or sum(
            snap.label_distribution.values()
        )
        distribution = dict(sorted(snap.label_distribution.items(), key=lambda kv: (-kv[1], kv[0])))
        entries.append(
            Entry(
                at=snap.created_at,
                kind="snapshot",
                title=_("Snapshot %(hash)s: %(size)s samples (%(train)s train, %(test)s test)")
                % {
                    "hash": snap.content_hash[:12],
                    "size": size,
                    "train": len(snap.train_sample_ids),
                    "test": len(snap.test_sample_ids),
                },
                detail=", ".join(f"{k} {v}" for k, v in distribution.items()),
                url=reverse("registry:run", args=[snap.run_id])
                if snap.run_id
                else reverse("taxonomy-api:label-set-detail", args=[snap.revision.label_set.slug]),
                object_type="registry.datasetsnapshot",
                object_id=snap.pk,
                actor=_name(snap.created_by) if snap.created_by_id else "",
                metrics={"size": size, "distribution": distribution},
            )
        )
    return entries


@timeline_source("training")
def training_runs(context: TimelineContext) -> list[Entry]:
    need = context.need
    which = Q(need=need)
    if need.model_id is not None:
        which |= Q(registered_model_id=need.model_id)
    rows = (
        TrainingRun.objects.for_tenant(context.tenant)
        .filter(which)
        .select_related("registered_model", "created_by", "model_version")
        .order_by("created_at", "pk")
    )
    entries = []
    for run in rows:
        version = getattr(run, "model_version", None)
        metrics = _headline(version.metrics) if version is not None else {}
        outcome = f" → v{version.version}" if version is not None else ""
        entries.append(
            Entry(
                at=run.finished_at or run.created_at,
                kind="training_run",
                title=_("Training run #%(pk)s %(status)s: %(model)s%(outcome)s")
                % {
                    "pk": run.pk,
                    "status": run.status,
                    "model": run.registered_model.name,
                    "outcome": outcome,
                },
                detail=_metric_text(metrics) or run.error[:300],
                url=reverse("registry:run", args=[run.pk]),
                object_type="registry.trainingrun",
                object_id=run.pk,
                actor=_name(run.created_by) if run.created_by_id else "",
                metrics=metrics,
            )
        )
    return entries


@timeline_source("alias")
def promotions(context: TimelineContext) -> list[Entry]:
    need = context.need
    if need.model_id is None:
        return []
    rows = (
        AliasEvent.objects.filter(registered_model_id=need.model_id)
        .select_related("registered_model", "from_version", "to_version", "actor")
        .order_by("at", "pk")
    )
    entries = []
    for event in rows:
        to, previous = event.to_version, event.from_version
        before = f"v{previous.version} → " if previous is not None else ""
        rollback = event.action == AliasAction.ROLLBACK
        metrics = _headline(to.metrics)
        if previous is not None:
            old = _headline(previous.metrics)
            metrics.update(
                {f"{k}_delta": round(v - old[k], 4) for k, v in metrics.items() if k in old}
            )
        entries.append(
            Entry(
                at=event.at,
                kind="rollback" if rollback else "promotion",
                title=(
                    _("Rollback of %(alias)s: %(change)s")
                    if rollback
                    else _("%(alias)s: %(change)s")
                )
                % {"alias": event.alias, "change": f"{before}v{to.version}"},
                detail=event.reason,
                url=reverse("registry:card", args=[event.registered_model_id, to.version]),
                object_type="registry.aliasevent",
                object_id=event.pk,
                actor=_name(event.actor) if event.actor_id else "",
                metrics=metrics,
            )
        )
    return entries


@timeline_source("alert")
def alerts(context: TimelineContext) -> list[Entry]:
    need = context.need
    rows = Alert.objects.for_tenant(context.tenant).filter(need=need).order_by("created_at", "pk")
    base = reverse("monitoring:need", args=[need.slug])
    entries = []
    found = list(
        rows.only(
            "id",
            "kind",
            "label",
            "severity",
            "status",
            "evidence",
            "consecutive_days",
            "created_at",
            "resolved_at",
            "need",
        )
    )
    for alert in found:
        url = f"{base}#alert-{alert.pk}"
        entries.append(
            Entry(
                at=alert.created_at,
                kind="alert",
                title=_("Alert (%(severity)s): %(kind)s%(label)s")
                % {
                    "severity": alert.get_severity_display(),
                    "kind": alert.get_kind_display(),
                    "label": f" {alert.label}" if alert.label else "",
                },
                # The stored `message` is in the language of the worker that wrote it; the
                # sentence is rebuilt from the evidence in the reader's. Labels stay keys (as
                # in the title): their names would cost this source more than its one query.
                detail=plain_sentence(alert, {}),
                url=url,
                object_type="monitoring.alert",
                object_id=alert.pk,
            )
        )
        if alert.resolved_at:
            entries.append(
                Entry(
                    at=alert.resolved_at,
                    kind="alert_resolved",
                    title=_("Alert resolved: %(kind)s%(label)s")
                    % {
                        "kind": alert.get_kind_display(),
                        "label": f" {alert.label}" if alert.label else "",
                    },
                    url=url,
                    object_type="monitoring.alert",
                    object_id=alert.pk,
                )
            )
    return entries


@timeline_source("record")
def record_items(context: TimelineContext) -> list[Entry]:
    """The record's own problems and retrospectives (read once by the caller, no query here)."""
    url = reverse("records:record", args=[context.need.slug])
    entries = []
    for section in context.sections:
        if section.kind == "problem":
            entries.append(
                Entry(
                    at=section.created_at,
                    kind="problem",
                    title=_("Problem noted: %(title)s") % {"title": section.title},
                    url=f"{url}#section-{section.pk}",
                    object_type="records.section",
                    object_id=section.pk,
                    actor=_name(section.created_by) if section.created_by_id else "",
                )
            )
            if section.resolved_at:
                entries.append(
                    Entry(
                        at=section.resolved_at,
                        kind="problem_closed",
                        title=_("Problem %(status)s: %(title)s")
                        % {"status": section.get_status_display(), "title": section.title},
                        url=f"{url}#section-{section.pk}",
                        object_type="records.section",
                        object_id=section.pk,
                    )
                )
        elif section.kind == "retrospective":
            entries.append(
                Entry(
                    at=section.created_at,
                    kind="retrospective",
                    title=_("Retrospective (%(milestone)s): %(title)s")
                    % {"milestone": section.get_milestone_display(), "title": section.title},
                    url=f"{url}#section-{section.pk}",
                    object_type="records.section",
                    object_id=section.pk,
                    actor=_name(section.created_by) if section.created_by_id else "",
                )
            )
    return entries


# --- the improvement loop: review rounds and cases (the review app) ------------------------


@timeline_source("review_round")
def review_rounds(context: TimelineContext) -> list[Entry]:
    rows = _need_rows(ReviewRound, context, "created_by", "signoff_by", "model_version")
    entries = []
    for review in rows:
        url = reverse("review:round", args=[review.pk])
        version = f" of v{review.model_version.version}" if review.model_version_id else ""
        entries.append(
            Entry(
                at=review.created_at,
                kind="review_round",
                title=_("Review round #%(pk)s started (%(trigger)s)%(version)s: %(n)s items")
                % {
                    "pk": review.pk,
                    "trigger": review.get_trigger_display(),
                    "version": version,
                    "n": review.sample_size,
                },
                url=url,
                object_type="review.reviewround",
                object_id=review.pk,
                actor=_name(review.created_by) if review.created_by_id else "",
            )
        )
        accuracy = (review.result or {}).get("accuracy") or {}
        if review.closed_at:
            estimate = accuracy.get("estimate")
            interval = (
                _("accuracy %(p).1f%% (95%% interval %(low).1f–%(high).1f%%), target %(t).0f%%")
                % {
                    "p": estimate * 100,
                    "low": accuracy["low"] * 100,
                    "high": accuracy["high"] * 100,
                    "t": review.accuracy_target * 100,
                }
                if estimate is not None
                else _("no verdicts")
            )
            entries.append(
                Entry(
                    at=review.closed_at,
                    kind="review_closed",
                    title=_("Review round #%(pk)s closed: %(interval)s")
                    % {"pk": review.pk, "interval": interval},
                    url=url,
                    object_type="review.reviewround",
                    object_id=review.pk,
                    metrics={k: accuracy[k] for k in ("estimate", "low", "high") if k in accuracy},
                )
            )
        if review.signoff_at:
            entries.append(
                Entry(
                    at=review.signoff_at,
                    kind="review_signoff",
                    title=_("Review round #%(pk)s signed off: %(decision)s")
                    % {"pk": review.pk, "decision": review.get_signoff_display()},
                    detail=review.signoff_note,
                    url=url,
                    object_type="review.reviewround",
                    object_id=review.pk,
                    actor=_name(review.signoff_by) if review.signoff_by_id else "",
                )
            )
    return entries


@timeline_source("case")
def cases(context: TimelineContext) -> list[Entry]:
    """Cases per day and source (a busy need has thousands: one entry per case would drown the
    rest), with how many were accepted as training samples; each links to the need's cases."""
    groups = (
        Case.objects.for_tenant(context.tenant)
        .filter(need=context.need)
        .annotate(day=TruncDate("created_at"))
        .values("day", "source")
        .annotate(
            first_at=Min("created_at"),
            n=Count("id"),
            accepted=Count("id", filter=Q(status=CaseStatus.ACCEPTED)),
            first_id=Min("id"),
        )
        .order_by("first_at")
    )
    url = reverse("review:cases") + f"?need={context.need.slug}"
    return [
        Entry(
            at=group["first_at"],
            kind="cases",
            title=_("%(n)s case(s): %(source)s, %(accepted)s accepted as samples")
            % {
                "n": group["n"],
                "source": CaseSource(group["source"]).label,
                "accepted": group["accepted"],
            },
            url=url,
            object_type="review.case",
            object_id=group["first_id"],
            metrics={"cases": group["n"], "accepted": group["accepted"]},
        )
        for group in groups
    ]


# --- the improvement loop: retrains and optimisation runs ----------------------------------


def _f1_pair(comparison: dict | None, part: str) -> str:
    section = (comparison or {}).get(part) or {}
    f1 = (section.get("overall") or {}).get("macro_f1") or {}
    if f1.get("champion") is None or f1.get("challenger") is None:
        return ""
    return _("%(part)s macro-F1 %(a).3f → %(b).3f (n=%(n)s)") % {
        "part": {"test": _("test set"), "fresh": _("fresh set")}.get(part, part),
        "a": f1["champion"],
        "b": f1["challenger"],
        "n": section.get("n", 0),
    }


@timeline_source("retrain")
def retrains(context: TimelineContext) -> list[Entry]:
    """A retrain (its trigger, the accepted samples it added, the comparison on the champion's
    test set and the fresh set, the guard's verdict) and, when it happened, its promotion."""
    rows = _need_rows(Retrain, context, "created_by", "promoted_by", "champion", "challenger")
    entries = []
    for retrain in rows:
        url = reverse("retraining:detail", args=[retrain.pk])
        comparison = retrain.comparison or {}
        detail = "; ".join(
            text for text in (_f1_pair(comparison, "test"), _f1_pair(comparison, "fresh")) if text
        )
        if retrain.guard is not None:
            verdict = _("guard passed") if retrain.guard.get("passed") else _("guard refused")
            detail = f"{detail}; {verdict}" if detail else verdict
        entries.append(
            Entry(
                at=retrain.finished_at or retrain.created_at,
                kind="retrain",
                title=_(
                    "Retrain #%(pk)s %(status)s (%(trigger)s): %(added)s accepted samples added"
                )
                % {
                    "pk": retrain.pk,
                    "status": retrain.get_status_display(),
                    "trigger": retrain.get_trigger_display(),
                    "added": retrain.accepted_added,
                },
                detail=detail or retrain.error[:300] or retrain.reason,
                url=url,
                object_type="retraining.retrain",
                object_id=retrain.pk,
                actor=_name(retrain.created_by) if retrain.created_by_id else "",
            )
        )
        if retrain.promoted_at:
            entries.append(
                Entry(
                    at=retrain.promoted_at,
                    kind="retrain_promoted",
                    title=_("Retrain #%(pk)s promoted: the challenger serves") % {"pk": retrain.pk},
                    detail=_("staff override: %(reason)s") % {"reason": retrain.override_reason}
                    if retrain.override_reason
                    else "",
                    url=url,
                    object_type="retraining.retrain",
                    object_id=retrain.pk,
                    actor=_name(retrain.promoted_by) if retrain.promoted_by_id else "",
                )
            )
    return entries


@timeline_source("optimisation")
def optimisation_runs(context: TimelineContext) -> list[Entry]:
    """An optimisation run with its budgets and what it chose (or why nothing fitted)."""
    rows = _need_rows(OptimisationRun, context, "created_by", "chosen_trial")
    entries = []
    for run in rows:
        chosen = run.chosen_trial
        if chosen is not None and chosen.macro_f1 is not None:
            detail = _("chosen: macro-F1 %(f1).3f, p99 %(p99).1f ms, %(kb).0f KB") % {
                "f1": chosen.macro_f1,
                "p99": chosen.p99_ms or 0.0,
                "kb": (chosen.size_bytes or 0) / 1024,
            }
        else:
            misses = (run.result or {}).get("nothing_fits") or {}
            detail = str(misses.get("reason") or run.error[:300] or "")
        entries.append(
            Entry(
                at=run.finished_at or run.created_at,
                kind="optimisation_run",
                title=_("Optimisation run #%(pk)s %(status)s: budgets p99 %(ms)s ms, %(kb)s KB")
                % {
                    "pk": run.pk,
                    "status": run.get_status_display(),
                    "ms": f"{run.latency_budget_ms:g}",
                    "kb": run.size_budget_kb,
                },
                detail=detail,
                url=reverse("optimisation:run", args=[run.pk]),
                object_type="optimisation.optimisationrun",
                object_id=run.pk,
                actor=_name(run.created_by) if run.created_by_id else "",
            )
        )
    return entries
