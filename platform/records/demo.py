"""Demo step: project records for tenant-a/news-topics and tenant-b/zh-sentiment, written from
what the demo actually did (the need, the imported data, the snapshot, the training runs and
their metrics, the alerts), never from numbers typed here.

Runs after the registry step. The demo models train in the background, so the first run may find
only the imported data and a queued run; `manage.py records_demo` (run again any time, e.g. after
training finished or after `monitoring_demo`) rewrites the generated sections from the facts as
they are then: changed text becomes a new revision, unchanged text is left alone.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Count, Min

from monitoring.models import Alert, AlertStatus
from records import selectors, services
from records.models import Milestone, Section, SectionKind
from registry.model_card import WEAK_F1
from registry.models import DatasetSnapshot, ModelVersion, RunStatus, TrainingRun, TrainingSample
from registry.selectors import serving_version
from taxonomy.models import Label
from tenants.models import Need, NeedStatus

#: (tenant slug, need slug, demo user who writes it, lessons shareable with other units)
DEMO_RECORDS = [
    ("tenant-a", "news-topics", "alice", True),
    ("tenant-b", "zh-sentiment", "bob", True),
]


def _pct(share: float) -> str:
    return f"{share:.1%}"


def _facts(need: Need) -> dict:
    tenant = need.tenant
    # One line per (revision, source), as the timeline groups imports: refs are per row for a
    # corpus (one file per sample), so grouping by them listed thousands of "imports".
    imports = list(
        TrainingSample.objects.for_tenant(tenant)
        .filter(revision__label_set_id=need.label_set_id)
        .values("revision__number", "source")
        .annotate(n=Count("id"), ref=Min("source_ref"))
        .order_by("revision__number", "source")
    )
    snapshot = (
        DatasetSnapshot.objects.for_tenant(tenant)
        .filter(revision__label_set_id=need.label_set_id)
        .order_by("-created_at")
        .first()
    )
    runs = list(
        TrainingRun.objects.for_tenant(tenant)
        .filter(registered_model_id=need.model_id)
        .select_related("model_version")
        .order_by("created_at")
    )
    version = serving_version(need)
    if version is not None:
        version = (
            ModelVersion.objects.for_tenant(tenant).select_related("snapshot").get(pk=version.pk)
        )
    alerts = list(Alert.objects.for_tenant(tenant).filter(need=need).order_by("created_at"))
    return {
        "imports": imports,
        "snapshot": snapshot,
        "runs": runs,
        "version": version,
        "alerts": alerts,
    }


def _goal(need: Need, facts: dict) -> str:
    revision = need.label_set.current_revision
    keys = list(need.label_mapping.values()) or (revision.label_keys() if revision else [])
    labels = ", ".join(f"`{key}`" for key in keys) or "—"
    lines = [
        f"**Goal:** {need.goal or need.name}.",
        "",
        "**Success criteria** (as set on the need):",
        "",
        f"- tags with the labels {labels} of the shared label set `{need.label_set.slug}`",
        f"- top {need.top_k} label(s), abstaining below a confidence of {need.threshold}",
    ]
    if need.latency_budget_ms:
        lines.append(f"- p99 latency within {need.latency_budget_ms:g} ms")
    lines.append(f"- delivered {', '.join(need.delivery)}")
    return "\n".join(lines)


def _data(need: Need, facts: dict) -> str:
    lines = ["**Imported:**", ""]
    lines += [
        f"- {row['n']} samples ({row['source']}, revision {row['revision__number']})"
        + (f", e.g. `{row['ref']}`" if row["ref"] else "")
        for row in facts["imports"]
    ] or ["- nothing yet"]
    snapshot = facts["snapshot"]
    if snapshot is not None:
        total = sum(snapshot.label_distribution.values()) or 1
        size = len(snapshot.train_sample_ids) + len(snapshot.test_sample_ids) or total
        lines += [
            "",
            f"**Snapshot** `{snapshot.content_hash[:12]}`: {size} samples, "
            f"{len(snapshot.train_sample_ids)} for training and {len(snapshot.test_sample_ids)} "
            f"held out ({snapshot.split_strategy} split, seed {snapshot.seed}).",
            "",
            "| label | samples | share |",
            "|---|---|---|",
        ]
        for label, n in sorted(snapshot.label_distribution.items(), key=lambda kv: -kv[1]):
            lines.append(f"| `{label}` | {n} | {_pct(n / total)} |")
    return "\n".join(lines)


def _tried(need: Need, facts: dict) -> str:
    if not facts["runs"]:
        return "No training run yet."
    lines = []
    for run in facts["runs"]:
        version = getattr(run, "model_version", None)
        if run.status == RunStatus.SUCCEEDED and version is not None:
            m = version.metrics
            lines.append(
                f"- Run #{run.pk}: `{run.algorithm}` → v{version.version}, macro-F1 "
                f"{m.get('macro_f1', 0):.3f}, accuracy {m.get('accuracy', 0):.3f} on "
                f"{m.get('n_test', 0)} held-out samples"
                + (
                    f"; p99 {version.latency_p99_ms:.2f} ms"
                    if version.latency_p99_ms is not None
                    else ""
                )
            )
        else:
            lines.append(f"- Run #{run.pk}: `{run.algorithm}`, {run.status}")
    return "\n".join(lines)


def _weak_labels(version: ModelVersion | None) -> list[tuple[str, dict]]:
    if version is None:
        return []
    per_label = (version.metrics or {}).get("per_label", {})
    return sorted(
        ((label, row) for label, row in per_label.items() if row.get("support")),
        key=lambda kv: kv[1]["f1"],
    )


def _next(need: Need, facts: dict) -> str:
    weak = _weak_labels(facts["version"])
    lines = []
    if weak:
        label, row = weak[0]
        lines.append(
            f"- Collect more examples of `{label}`, the weakest label (F1 {row['f1']:.3f})."
        )
    open_alerts = [a for a in facts["alerts"] if a.status != AlertStatus.RESOLVED]
    if open_alerts:
        lines.append(
            f"- Look into the {len(open_alerts)} open monitoring alert(s) before the next "
            "retrain; retrain on recent data if the drift persists."
        )
    if not lines:
        lines.append("- Wait for the first production traffic and feedback.")
    return "\n".join(lines)


def _upsert_item(*, need: Need, kind: str, title: str, body: str, author, **fields) -> None:
    existing = (
        Section.objects.for_tenant(need.tenant)
        .filter(record__need=need, kind=kind, title=title)
        .first()
    )
    if existing is None:
        services.item_create(need=need, kind=kind, title=title, body=body, author=author, **fields)
    else:  # a revision only when something changed
        services.item_update(
            section=existing, base_revision=existing.revision, author=author, body=body, **fields
        )


def _write_record(need: Need, author, shareable: bool, stdout) -> None:
    facts = _facts(need)
    for kind, text in (
        (SectionKind.GOAL, _goal(need, facts)),
        (SectionKind.DATA, _data(need, facts)),
        (SectionKind.TRIED, _tried(need, facts)),
        (SectionKind.NEXT, _next(need, facts)),
    ):
        current = selectors.single_section(tenant=need.tenant, need=need, kind=kind)
        services.section_save(
            need=need,
            kind=kind,
            body=text,
            base_revision=current.revision if current else 0,
            author=author,
        )
    version = facts["version"]
    weak = _weak_labels(version)
    for label, row in weak:
        if row["f1"] >= WEAK_F1:
            break
        _upsert_item(
            need=need,
            kind=SectionKind.PROBLEM,
            title=f"Low F1 on {label}",
            body=(
                f"v{version.version} scores F1 {row['f1']:.3f} (precision {row['precision']:.3f}, "
                f"recall {row['recall']:.3f}) on {row['support']} held-out samples of `{label}`."
            ),
            author=author,
            status="open",
            model_version=version.pk,
            label=label,
            labels=[label],
            tags=["model-quality"],
        )
    known = set(
        Label.objects.filter(key__in=[a.label for a in facts["alerts"] if a.label]).values_list(
            "key", flat=True
        )
    )
    for alert in facts["alerts"]:
        label_known = alert.label in known
        _upsert_item(
            need=need,
            kind=SectionKind.PROBLEM,
            title=f"Monitoring alert #{alert.pk}: {alert.get_kind_display()}",
            body=f"{alert.message}\n\nFirst seen {alert.first_seen}, last seen {alert.last_seen}.",
            author=author,
            status="solved" if alert.status == AlertStatus.RESOLVED else "open",
            label=alert.label if label_known else "",
            labels=[alert.label] if label_known else [],
            tags=["monitoring", alert.kind],
        )
    if weak and version is not None:
        label, row = weak[0]
        distribution = version.snapshot.label_distribution or {}
        total = sum(distribution.values()) or 1
        script = (
            "Chinese character n-grams" if version.params.get("script") == "cjk" else "word n-grams"
        )
        _upsert_item(
            need=need,
            kind=SectionKind.LESSON,
            title=f"The weakest label was {label}",
            body=(
                f"With {script} and `{version.algorithm}`, `{label}` scored F1 {row['f1']:.3f} "
                f"with {distribution.get(label, 0)} training samples "
                f"({_pct(distribution.get(label, 0) / total)} of the snapshot), against macro-F1 "
                f"{version.metrics.get('macro_f1', 0):.3f} overall. Check the share and the "
                "examples of such labels before training a similar need."
            ),
            author=author,
            labels=sorted(distribution),
            tags=["data", "class-balance"],
            shareable=shareable,
        )
    if (
        need.status == NeedStatus.LIVE
        and not Section.objects.for_tenant(need.tenant)
        .filter(record__need=need, kind=SectionKind.RETROSPECTIVE)
        .exists()
    ):
        draft = selectors.retrospective_draft(
            tenant=need.tenant, need=need, milestone=Milestone.LAUNCH
        )
        services.item_create(
            need=need,
            kind=SectionKind.RETROSPECTIVE,
            title=draft["title"],
            body=draft["body"],
            author=author,
            milestone=Milestone.LAUNCH,
            since=draft["since"],
        )
    stdout.write(
        f"  {need.tenant.slug}/{need.slug}: record written from "
        f"{len(facts['imports'])} import(s), {len(facts['runs'])} run(s), "
        f"{len(facts['alerts'])} alert(s)"
        + (f", serving v{version.version}" if version else ", no serving version yet")
    )


def load_records(stdout) -> None:
    User = get_user_model()
    for tenant_slug, need_slug, username, shareable in DEMO_RECORDS:
        need = (
            Need.objects.dangerously_unscoped()
            .select_related("tenant", "label_set", "model")
            .filter(tenant__slug=tenant_slug, slug=need_slug)
            .first()
        )
        if need is None or need.label_set_id is None:
            stdout.write(f"  {tenant_slug}/{need_slug} not found; no record written")
            continue
        _write_record(need, User.objects.filter(username=username).first(), shareable, stdout)
