"""Reads for serving: items, predictions, dead letters, batch jobs and their results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from serving.models import (
    BatchChunk,
    BatchItem,
    BatchJob,
    BatchResult,
    ChunkStatus,
    DeliveryStatus,
    Item,
    PredictionLog,
    WebhookDelivery,
)
from serving.ranked import ranked_scores
from taxonomy.selectors import label_names, localized_label_name
from tenants.models import Need, NeedStatus


def live_need_ids_all_tenants(*, limit: int) -> list[int]:
    """The live needs with a model, most recently changed first, of every tenant: what a shared
    serving process warms at start. Platform-wide by nature (one process serves every tenant),
    hence the separately named all-tenant read."""
    return list(
        Need.objects.dangerously_unscoped()
        .filter(status=NeedStatus.LIVE, model__isnull=False)
        .order_by("-updated_at")
        .values_list("pk", flat=True)[:limit]
    )


def need_for(*, tenant, slug: str) -> Need | None:
    return Need.objects.for_tenant(tenant).filter(slug=slug).first()


def items_for(
    *, tenant, need: Need, since=None, ids: list[str] | None = None, status: str = ""
) -> QuerySet[Item]:
    items = Item.objects.for_tenant(tenant).filter(need=need).order_by("pk")
    if since is not None:
        items = items.filter(received_at__gte=since)
    if ids:
        items = items.filter(external_id__in=ids)
    if status:
        items = items.filter(status=status)
    return items


def predictions_for(
    *, tenant, need_slug: str = "", channel: str = "", since=None
) -> QuerySet[PredictionLog]:
    rows = (
        PredictionLog.objects.for_tenant(tenant)
        .select_related("need", "model_version__registered_model")
        .defer("text")  # a kept sync text is for review only, never listed
        .order_by("-created_at", "-id")
    )
    if need_slug:
        rows = rows.filter(need__slug=need_slug)
    if channel:
        rows = rows.filter(channel=channel)
    if since is not None:
        # `day` is the tenant's calendar day of created_at, never more than a day before its UTC
        # date: the extra bound lets PostgreSQL prune older partitions.
        rows = rows.filter(
            created_at__gte=since, day__gte=since.astimezone(UTC).date() - timedelta(days=1)
        )
    return rows


def dead_letters_for(*, tenant) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.for_tenant(tenant)
        .filter(status=DeliveryStatus.DEAD)
        .select_related("need")
        .order_by("-dead_at", "-id")
    )


def batch_jobs_for(*, tenant) -> QuerySet[BatchJob]:
    return BatchJob.objects.for_tenant(tenant).select_related("need").order_by("-created_at", "-id")


def batch_result_rows(*, job: BatchJob, include_text: bool = False) -> Iterator[dict]:
    """A job's results in file order; `scores` ranked best first (serving.ranked)."""
    results = BatchResult.objects.filter(job=job).order_by("position")
    fields = [
        "external_id",
        "labels",
        "scores",
        "model_version__registered_model__name",
        "model_version__version",
    ]
    if include_text:
        # (job, position) is unique on both tables: one index probe per row.
        results = results.annotate(
            text=Subquery(
                BatchItem.objects.filter(job=OuterRef("job"), position=OuterRef("position")).values(
                    "text"
                )[:1]
            )
        )
        fields.append("text")
    for row in results.values_list(*fields).iterator(chunk_size=2000):
        external_id, labels, scores, model, version = row[:5]
        yield {
            "id": external_id,
            "labels": labels,
            "scores": ranked_scores(scores),
            "model": model,
            "model_version": version,
            "text": row[5] if include_text else None,
        }


def batch_chunk_status(*, job: BatchJob) -> dict:
    """Chunks by status, and the chunks a job is waiting on: running ones whose claimer died
    (lease run out, re-queued by the sweeper) or that are on a retry, with their lease."""
    counts = dict(
        BatchChunk.objects.filter(job=job).values_list("status").annotate(n=Count("id")).order_by()
    )
    now = timezone.now()
    waiting = (
        BatchChunk.objects.filter(job=job, status=ChunkStatus.RUNNING)
        .filter(Q(lease_until__lt=now) | Q(attempts__gt=1))
        .order_by("index")
        .values("index", "start", "end", "attempts", "lease_until")[:20]
    )
    return {
        **{status: counts.get(status, 0) for status in ChunkStatus.values},
        "total": sum(counts.values()),
        "max_attempts": settings.BATCH_CHUNK_MAX_ATTEMPTS,
        "waiting": [
            {
                "index": chunk["index"],
                "first_item": chunk["start"] + 1,
                "last_item": chunk["end"],
                "attempts": chunk["attempts"],
                "lease_until": chunk["lease_until"],
                "lease_seconds_left": round((chunk["lease_until"] - now).total_seconds(), 1)
                if chunk["lease_until"]
                else None,
            }
            for chunk in waiting
        ],
    }


def with_localized_label_names(
    rows: Iterable[dict], *, need: Need, language: str
) -> Iterator[dict]:
    """`rows` with `label_names`: each assigned label's taxonomy name in `language` (the labels
    themselves stay the tenant's names, or global keys where it has none)."""
    to_key = need.label_mapping
    names = label_names()
    for row in rows:
        keys = [to_key.get(label, label) for label in row["labels"]]
        yield {
            **row,
            "label_names": [localized_label_name(names.get(k), k, language) for k in keys],
        }
