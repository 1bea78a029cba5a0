"""Writes for serving: stream ingestion and tagging, batch jobs and their chunks, schedules.

Everything here is idempotent by construction: items are unique per (need, external id), batch
results per (job, position), chunks are claimed by compare-and-set with a lease and a claim token,
and work is enqueued with `transaction.on_commit` so a worker never sees an uncommitted row.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, Sum, Value, When
from django.utils import timezone

from serving import predlog, webhooks
from serving.models import (
    BATCH_ACTIVE,
    BatchChunk,
    BatchItem,
    BatchJob,
    BatchResult,
    BatchSource,
    BatchStatus,
    Channel,
    ChunkStatus,
    Item,
    ItemStatus,
    ScheduledBatch,
)
from tagging_platform.errors import ApiError
from workers.runtime import get_runtime, text_sha256

logger = logging.getLogger(__name__)

STREAM_TASK_ITEMS = 256  # items per tagging task: one vectorised predict each


# --- stream -----------------------------------------------------------------------------------
def _enqueue_stream(need_id: int, item_ids: list[int]) -> None:
    from workers.tasks.online import tag_stream_items

    for start in range(0, len(item_ids), STREAM_TASK_ITEMS):
        tag_stream_items.delay(need_id, item_ids[start : start + STREAM_TASK_ITEMS])


def _enqueue_stream_committed(need_id: int, item_ids: list[int]) -> None:
    """Queue items that are already committed. A broker outage must not turn the POST into an
    error (a client retrying it would be told its items are duplicates): they stay pending and
    `stream_pending_requeue` (beat) queues them once the broker is back."""
    try:
        _enqueue_stream(need_id, item_ids)
    except Exception:
        logger.warning(
            "could not queue %d committed stream items of need %s (broker unavailable?); "
            "they stay pending until the stream sweeper re-queues them",
            len(item_ids),
            need_id,
            exc_info=True,
        )


def stream_items_ingest(*, tenant, need, ids: list[str], texts: list[str]) -> dict:
    """Store new items (an id already ingested for this need is not re-ingested) and queue them."""
    with transaction.atomic():
        existing = set(
            Item.objects.for_tenant(tenant)
            .filter(need=need, external_id__in=ids)
            .values_list("external_id", flat=True)
        )
        seen: set[str] = set()
        new: list[Item] = []
        duplicates: list[str] = []
        now = timezone.now()
        for item_id, text in zip(ids, texts, strict=True):
            if item_id in existing or item_id in seen:
                duplicates.append(item_id)
                continue
            seen.add(item_id)
            new.append(
                Item(
                    tenant=tenant,
                    need=need,
                    external_id=item_id,
                    text=text,
                    text_hash=text_sha256(text),
                    received_at=now,
                )
            )
        Item.objects.bulk_create(new, ignore_conflicts=True, batch_size=500)
        created = list(
            Item.objects.for_tenant(tenant)
            .filter(need=need, external_id__in=list(seen), status=ItemStatus.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if created:
            transaction.on_commit(lambda: _enqueue_stream_committed(need.pk, created))
    return {"accepted": len(new), "duplicates": duplicates}


def stream_items_tag(*, need_id: int, item_ids: list[int]) -> int:
    """Tag the still-pending items among `item_ids`; store results; queue the webhook."""
    served = get_runtime().need_by_id(need_id)
    with transaction.atomic():
        items = list(
            Item.objects.unscoped()  # the task was given ids of one need; tenancy came from it
            .select_for_update(skip_locked=True)
            .filter(pk__in=item_ids, need_id=need_id, status=ItemStatus.PENDING)
            .select_related("tenant", "need")
            .order_by("pk")
        )
        if not items:
            return 0
        results = get_runtime().tag(served, [item.text for item in items])
        now = timezone.now()
        public = []
        for item, result in zip(items, results, strict=True):
            body = result.public(item.external_id)
            item.status = ItemStatus.TAGGED
            item.result = {k: v for k, v in body.items() if k != "id"}
            item.model_version_id = result.model.version_id
            item.tagged_at = now
            public.append(body)
        Item.objects.bulk_update(items, ["status", "result", "model_version", "tagged_at"])
        refs = [item.external_id for item in items]
        transaction.on_commit(
            lambda: predlog.record(
                tenant_id=served.tenant_id,
                need_id=need_id,
                channel=Channel.STREAM,
                item_refs=refs,
                results=results,
            )
        )
        webhooks.delivery_create(tenant=items[0].tenant, need=items[0].need, items=public)
    return len(items)


def stream_pending_requeue(*, older_than_seconds: float = 30.0) -> int:
    """Re-queue items still pending after a while (their task was lost with a worker)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = (
        Item.objects.unscoped()
        .filter(status=ItemStatus.PENDING, received_at__lt=cutoff)
        .order_by("need_id", "pk")
        .values_list("need_id", "pk")[:10_000]
    )
    by_need: dict[int, list[int]] = {}
    for need_id, pk in pending:
        by_need.setdefault(need_id, []).append(pk)
    for need_id, pks in by_need.items():
        _enqueue_stream(need_id, pks)
    return sum(len(pks) for pks in by_need.values())


# --- batch ------------------------------------------------------------------------------------
def _check_batch_quota(tenant, count: int) -> None:
    in_flight = (
        BatchJob.objects.for_tenant(tenant)
        .filter(status__in=BATCH_ACTIVE)
        .aggregate(n=Sum(F("total_items") - F("done_items")))["n"]
        or 0
    )
    limit = tenant.quota_max_batch_items
    if in_flight + count > limit:
        raise ApiError(
            "batch_quota_exceeded",
            f"This job has {count} items and {in_flight} are still in flight; the tenant may have "
            f"at most {limit} batch items in flight. Retry when running jobs finish.",
            status_code=429,
            headers={"Retry-After": "60"},
        )


def _enqueue_chunks(chunk_ids: list[int]) -> None:
    from workers.tasks.batch import run_batch_chunk

    for chunk_id in chunk_ids:
        run_batch_chunk.delay(chunk_id)


def batch_job_create(
    *, tenant, need, rows: list[tuple[str, str]], source: str, filename: str = "", user=None
) -> BatchJob:
    """Create a job with its items and chunks; chunks are queued once the transaction commits."""
    if not rows:
        raise ApiError("invalid", "The batch has no items.", fields={"items": ["Empty."]})
    _check_batch_quota(tenant, len(rows))
    chunk_size = settings.BATCH_CHUNK_SIZE
    with transaction.atomic():
        job = BatchJob.objects.create(
            tenant=tenant,
            need=need,
            source=source,
            filename=filename[:255],
            total_items=len(rows),
            chunk_size=chunk_size,
            created_by=user if getattr(user, "pk", None) else None,
        )
        BatchItem.objects.bulk_create(
            (
                BatchItem(job=job, position=n, external_id=item_id, text=text)
                for n, (item_id, text) in enumerate(rows)
            ),
            batch_size=2000,
        )
        chunks = BatchChunk.objects.bulk_create(
            BatchChunk(job=job, index=i, start=start, end=min(start + chunk_size, len(rows)))
            for i, start in enumerate(range(0, len(rows), chunk_size))
        )
        chunk_ids = [c.pk for c in chunks] or list(
            BatchChunk.objects.filter(job=job).order_by("index").values_list("pk", flat=True)
        )
        transaction.on_commit(lambda: _enqueue_chunks(chunk_ids))
    return job


def batch_rows_from_items(
    *, tenant, need, item_ids: list[str] | None = None, since=None, after_pk: int | None = None
):
    """(id, text) rows from stored stream items, and the highest Item pk included."""
    items = Item.objects.for_tenant(tenant).filter(need=need)
    if item_ids is not None:
        items = items.filter(external_id__in=item_ids)
    if since is not None:
        items = items.filter(received_at__gte=since)
    if after_pk is not None:
        items = items.filter(pk__gt=after_pk)
    rows = list(items.order_by("pk").values_list("pk", "external_id", "text"))
    return [(ext, text) for _, ext, text in rows], (rows[-1][0] if rows else None)


def batch_job_cancel(*, job: BatchJob) -> bool:
    with transaction.atomic():
        updated = BatchJob.objects.filter(pk=job.pk, status__in=BATCH_ACTIVE).update(
            status=BatchStatus.CANCELLED, finished_at=timezone.now()
        )
        if updated:
            BatchChunk.objects.filter(job=job, status=ChunkStatus.PENDING).update(
                status=ChunkStatus.CANCELLED
            )
    job.refresh_from_db()
    return bool(updated)


def batch_chunk_run(*, chunk_id: int) -> tuple[str, float | None]:
    """Process one chunk. Returns (outcome, retry_in_seconds) — retry when another live claim
    holds the chunk (e.g. a redelivery arriving before a dead worker's lease ran out)."""
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        BatchChunk.objects.filter(pk=chunk_id, job__status__in=BATCH_ACTIVE)
        .filter(Q(status=ChunkStatus.PENDING) | Q(status=ChunkStatus.RUNNING, lease_until__lt=now))
        .update(
            status=ChunkStatus.RUNNING,
            claim=token,
            lease_until=now + timedelta(seconds=settings.BATCH_CHUNK_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    )
    chunk = BatchChunk.objects.select_related("job").filter(pk=chunk_id).first()
    if chunk is None:
        return "missing", None
    if not claimed:
        if chunk.status == ChunkStatus.RUNNING and chunk.job.status in BATCH_ACTIVE:
            wait = (chunk.lease_until - timezone.now()).total_seconds() if chunk.lease_until else 1
            return "busy", max(0.5, wait + 0.5)
        if chunk.status == ChunkStatus.PENDING:  # job cancelled or finished
            BatchChunk.objects.filter(pk=chunk_id, status=ChunkStatus.PENDING).update(
                status=ChunkStatus.CANCELLED
            )
        return chunk.status, None
    job = chunk.job
    BatchJob.objects.filter(pk=job.pk, status=BatchStatus.QUEUED).update(
        status=BatchStatus.RUNNING, started_at=now
    )
    rows = list(
        BatchItem.objects.filter(job=job, position__gte=chunk.start, position__lt=chunk.end)
        .order_by("position")
        .values_list("position", "external_id", "text")
    )
    try:
        served = get_runtime().need_by_id(job.need_id)
        results = get_runtime().tag(served, [text for _, _, text in rows])
    except Exception as exc:
        _batch_fail(job, chunk, f"{type(exc).__name__}: {exc}")
        raise
    if settings.BATCH_CHUNK_DELAY_SECONDS:
        time.sleep(settings.BATCH_CHUNK_DELAY_SECONDS)  # tests: a window to kill the worker in
    with transaction.atomic():
        locked = BatchChunk.objects.select_for_update().get(pk=chunk_id)
        if locked.status != ChunkStatus.RUNNING or locked.claim != token:
            return "lost-claim", None  # someone re-claimed after our lease ran out; they commit
        if BatchJob.objects.filter(pk=job.pk, status=BatchStatus.CANCELLED).exists():
            BatchChunk.objects.filter(pk=chunk_id).update(status=ChunkStatus.CANCELLED)
            return "cancelled", None
        BatchResult.objects.bulk_create(
            [
                BatchResult(
                    job=job,
                    position=position,
                    external_id=external_id,
                    labels=result.labels,
                    scores=result.scores,
                    model_version_id=result.model.version_id,
                )
                for (position, external_id, _), result in zip(rows, results, strict=True)
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        # Logged only once this chunk's results are committed, through the same buffer as the
        # other channels: a chunk redone after a crash was never committed, so never logged.
        refs = [external_id for _, external_id, _ in rows]
        transaction.on_commit(
            lambda: predlog.record(
                tenant_id=job.tenant_id,
                need_id=job.need_id,
                channel=Channel.BATCH,
                item_refs=refs,
                results=results,
                background=False,  # a worker killed right after commit must not lose lines
            )
        )
        BatchChunk.objects.filter(pk=chunk_id).update(
            status=ChunkStatus.DONE, done_at=timezone.now(), lease_until=None
        )
        finished = timezone.now()
        # One UPDATE advances the progress and, on the last chunk, finishes the job.
        BatchJob.objects.filter(pk=job.pk).update(
            done_items=F("done_items") + len(rows),
            status=Case(
                When(
                    status=BatchStatus.RUNNING,
                    done_items__gte=F("total_items") - len(rows),
                    then=Value(BatchStatus.SUCCEEDED),
                ),
                default=F("status"),
            ),
            finished_at=Case(
                When(
                    status=BatchStatus.RUNNING,
                    done_items__gte=F("total_items") - len(rows),
                    then=Value(finished),
                ),
                default=F("finished_at"),
            ),
        )
    return "done", None


def _batch_fail(job: BatchJob, chunk: BatchChunk, error: str) -> None:
    BatchJob.objects.filter(pk=job.pk, status__in=BATCH_ACTIVE).update(
        status=BatchStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )
    BatchChunk.objects.filter(
        job=job, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
    ).update(status=ChunkStatus.CANCELLED)


# --- scheduled batches ------------------------------------------------------------------------
def scheduled_batch_create(
    *, tenant, need, name: str, crontab: str = "0 2 * * *"
) -> ScheduledBatch:
    """A nightly (by default) "tag everything new since the last run" with a beat schedule."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    minute, hour, day, month, weekday = _crontab_parts(crontab)
    with transaction.atomic():
        scheduled = ScheduledBatch.objects.create(
            tenant=tenant, need=need, name=name, crontab=crontab
        )
        schedule, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day,
            month_of_year=month,
            day_of_week=weekday,
            timezone="UTC",
        )
        scheduled.periodic_task = PeriodicTask.objects.create(
            name=f"scheduled-batch-{scheduled.pk}",
            task="workers.tasks.batch.run_scheduled_batch",
            crontab=schedule,
            args=json.dumps([scheduled.pk]),
            queue="batch",
        )
        scheduled.save(update_fields=["periodic_task"])
    return scheduled


def _crontab_parts(crontab: str) -> list[str]:
    parts = crontab.split()
    if len(parts) != 5:
        raise ApiError(
            "invalid",
            "A crontab has five fields: minute hour day month weekday.",
            fields={"crontab": ["Five space-separated fields."]},
        )
    return parts


def scheduled_batch_run(*, scheduled_id: int) -> BatchJob | None:
    """Create a job for the items received since the last run and advance the cursor."""
    with transaction.atomic():
        scheduled = (
            ScheduledBatch.objects.unscoped()
            .select_for_update()
            .select_related("tenant", "need")
            .get(pk=scheduled_id)
        )
        if not scheduled.enabled:
            return None
        rows, last_pk = batch_rows_from_items(
            tenant=scheduled.tenant, need=scheduled.need, after_pk=scheduled.cursor_item_id
        )
        scheduled.last_run_at = timezone.now()
        job = None
        if rows:
            job = batch_job_create(
                tenant=scheduled.tenant,
                need=scheduled.need,
                rows=rows,
                source=BatchSource.SCHEDULE,
                filename=scheduled.name,
            )
            scheduled.cursor_item_id = last_pk
            scheduled.last_job = job
        scheduled.save(update_fields=["last_run_at", "cursor_item_id", "last_job"])
    return job
