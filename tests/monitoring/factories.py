"""Minimal rows for monitoring tests: a need served by a model version with a known baseline,
and prediction-log rows with known label counts (created directly, no artifact bytes)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time

from registry.models import DatasetSnapshot, ModelAlias, ModelVersion, RegisteredModel
from serving.models import PredictionLog
from tenants.models import Need, NeedStatus, Tenant
from tests.factories import make_label_set


def make_monitored_need(
    *,
    tenant: Tenant,
    slug: str,
    baseline: dict[str, int],
    kind: str = "multiclass",
    threshold: float = 0.5,
) -> tuple[Need, ModelVersion]:
    """A live need whose production model version was trained on a snapshot with `baseline`."""
    label_set = make_label_set(slug=f"{tenant.slug}-{slug}", keys_=list(baseline), kind=kind)
    revision = label_set.revisions.get()
    snapshot = DatasetSnapshot.objects.create(
        tenant=tenant,
        revision=revision,
        content_hash=hashlib.sha256(f"{tenant.slug}/{slug}".encode()).hexdigest(),
        label_distribution=baseline,
    )
    registered = RegisteredModel.objects.create(
        tenant=tenant,
        name=f"{label_set.slug}/tfidf-logreg",
        label_set=label_set,
        algorithm="tfidf-logreg",
    )
    version = ModelVersion.objects.create(
        registered_model=registered,
        version=1,
        artifact_sha256="0" * 64,
        artifact_size=0,
        python_version="3.11",
        sklearn_version="1.5",
        algorithm="tfidf-logreg",
        snapshot=snapshot,
        revision=revision,
    )
    ModelAlias.objects.create(registered_model=registered, name="production", version=version)
    need = Need.objects.create(
        tenant=tenant,
        slug=slug,
        name=slug.replace("-", " ").title(),
        label_set=label_set,
        model=registered,
        status=NeedStatus.LIVE,
        threshold=threshold,
    )
    return need, version


def log_predictions(
    *,
    need: Need,
    version: ModelVersion,
    day: date,
    counts: dict[str, int],
    score: float = 0.9,
    scores: list[float] | None = None,
    model=PredictionLog,
) -> int:
    """Multi-class rows: `counts[label]` predictions of `label` on `day`. `scores` (cycled) lets a
    test control the confidences; otherwise every row has `score`. `model`: a migration test
    passes the log's historical model (the table has an older state's columns)."""
    rows = []
    at = datetime.combine(day, time(12), tzinfo=UTC)
    i = 0
    for label, n in counts.items():
        for _ in range(n):
            s = scores[i % len(scores)] if scores else score
            i += 1
            rows.append(
                model(
                    created_at=at,
                    day=day,
                    tenant_id=need.tenant_id,
                    need_id=need.pk,
                    model_version_id=version.pk,
                    channel="sync",
                    item_ref=f"item-{i}",
                    text_hash=f"{i:064d}",
                    labels=[label] if s >= need.threshold else [],
                    scores={label: s},
                    top_label=label,
                    top_score=s,
                    above_threshold=s >= need.threshold,
                )
            )
    model.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def log_multilabel(
    *, need: Need, version: ModelVersion, day: date, rows: list[dict[str, float]]
) -> int:
    """Multi-label rows: each dict is {label: score}; labels >= the need's threshold are assigned."""
    objs = []
    at = datetime.combine(day, time(12), tzinfo=UTC)
    for i, scores in enumerate(rows):
        assigned = [k for k, v in scores.items() if v >= need.threshold]
        top = max(scores, key=scores.get)
        objs.append(
            PredictionLog(
                created_at=at,
                day=day,
                tenant_id=need.tenant_id,
                need=need,
                model_version=version,
                channel="batch",
                item_ref=f"ml-{i}",
                text_hash=f"{i:064d}",
                labels=assigned,
                scores=scores,
                top_label=top,
                top_score=scores[top],
                above_threshold=bool(assigned),
            )
        )
    PredictionLog.objects.bulk_create(objs)
    return len(objs)
