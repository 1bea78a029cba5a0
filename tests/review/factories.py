"""A live need with real-looking traffic: stream items (their texts are stored) and the
prediction-log rows serving wrote for them."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.utils import timezone

from registry.models import TrainingSample, TrainingSampleLabel
from serving.models import Channel, Item, ItemStatus, PredictionLog
from taxonomy.models import Label
from tests.monitoring.factories import make_monitored_need


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def live_need(tenant, slug="topics", labels=("t.a", "t.b", "t.c"), kind="multiclass"):
    need, version = make_monitored_need(
        tenant=tenant, slug=slug, baseline={k: 100 for k in labels}, kind=kind
    )
    version.metrics = {"accuracy": 0.91}
    version.save(update_fields=["metrics"])
    return need, version


def log_stream(
    need,
    version,
    texts_by_label: dict[str, list[str]],
    *,
    score=0.9,
    ago_hours=12,
    channel=Channel.STREAM,
    store_text=True,
    prefix="it",
) -> list[PredictionLog]:
    """One stored item and one prediction per text (predicted label = the dict key)."""
    at = timezone.now() - timedelta(hours=ago_hours)
    rows = []
    n = PredictionLog.objects.for_tenant(need.tenant).filter(need=need).count()
    for label, texts in texts_by_label.items():
        for text in texts:
            n += 1
            ref = f"{prefix}-{n}"
            if store_text:
                Item.objects.create(
                    tenant_id=need.tenant_id,
                    need=need,
                    external_id=ref,
                    text=text,
                    text_hash=sha(text),
                    status=ItemStatus.TAGGED,
                    model_version=version,
                )
            above = score >= need.threshold
            rows.append(
                PredictionLog(
                    created_at=at,
                    day=at.date(),
                    tenant_id=need.tenant_id,
                    need=need,
                    model_version=version,
                    channel=channel,
                    item_ref=ref,
                    text_hash=sha(text),
                    labels=[label] if above else [],
                    scores={label: score},
                    top_label=label,
                    top_score=score,
                    above_threshold=above,
                )
            )
    return PredictionLog.objects.bulk_create(rows)


def texts(label: str, n: int, start: int = 0) -> list[str]:
    return [f"article {i} about {label} topics and news" for i in range(start, start + n)]


def add_training_samples(version, rows: list[tuple[str, list[str]]]) -> list[int]:
    """Training samples of the version's revision, put in its snapshot's training split."""
    ids = []
    for text, keys in rows:
        sample = TrainingSample.objects.create(
            tenant=version.registered_model.tenant,
            revision=version.revision,
            text=text,
            text_hash=sha(text),
        )
        for key in keys:
            TrainingSampleLabel.objects.create(sample=sample, label=Label.objects.get(key=key))
        ids.append(sample.pk)
    snapshot = version.snapshot
    snapshot.train_sample_ids = list(snapshot.train_sample_ids or []) + ids
    snapshot.save(update_fields=["train_sample_ids"])
    return ids


def log_sync(need, version, texts_by_label, *, share, ago_hours=6, score=0.9):
    """Sync predictions whose texts were kept for review with probability `share`."""
    at = timezone.now() - timedelta(hours=ago_hours)
    rows = [
        PredictionLog(
            created_at=at,
            day=at.date(),
            tenant_id=need.tenant_id,
            need=need,
            model_version=version,
            channel=Channel.SYNC,
            item_ref=f"s-{label}-{i}",
            text_hash=sha(text),
            labels=[label] if score >= need.threshold else [],
            scores={label: score},
            top_label=label,
            top_score=score,
            above_threshold=score >= need.threshold,
            text=text,
            text_share=share,
        )
        for label, texts in texts_by_label.items()
        for i, text in enumerate(texts)
    ]
    return PredictionLog.objects.bulk_create(rows)
