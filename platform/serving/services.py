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
from collections.abc import Iterator
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Max, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import DomainError
from core.querysets import acts_for_tenant
from core.queues import task_send
from serving import batch_io, predlog, webhooks
from serving.batch_io import StagedRows
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
from serving.ranked import ranked_scores
from serving.runtime import get_runtime, text_sha256
from tenants.models import Need, Tenant

logger = logging.getLogger(__name__)

STREAM_TASK_ITEMS = 256  # items per tagging task: one vectorised predict each
SCHEDULED_BATCH_EXPIRE_SECONDS = 12 * 3600


# --- stream -----------------------------------------------------------------------------------
def _enqueue_stream(need_id: int, item_ids: list[int]) -> None:
    for start in range(0, len(item_ids), STREAM_TASK_ITEMS):
        task_send(
            "workers.tasks.online.tag_stream_items",
            need_id,
            item_ids[start : start + STREAM_TASK_ITEMS],
        )


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


@acts_for_tenant(Need, "need_id")
def stream_items_tag(*, need_id: int, item_ids: list[int]) -> int:
    """Tag the still-pending items among `item_ids`; store results, log lines and the webhook.

    Read, predict, then commit, as batch does: no row lock is held while the model runs. The
    commit locks only the items themselves (`of=("self",)`: never the shared tenant and need
    rows, which would make a concurrent task skip all of its items) and writes only those still
    pending, so a concurrent task or a sweeper re-queue for the same items writes nothing twice.
    Log lines go into the same transaction as the results: a kill or a Redis blip loses none.
    """
    pending = list(
        Item.objects.filter(  # in the need's tenant scope (@acts_for_tenant)
            pk__in=item_ids, need_id=need_id, status=ItemStatus.PENDING
        )
        .order_by("pk")
        .values_list("pk", "text")
    )
    if not pending:
        return 0
    served = get_runtime().need_by_id(need_id)
    predicted = dict(
        zip(
            (pk for pk, _ in pending),
            get_runtime().tag(served, [text for _, text in pending]),
            strict=True,
        )
    )
    with transaction.atomic():
        items = list(
            Item.objects.select_for_update(
                of=("self",)
            )  # waits for a concurrent commit, then re-checks
            .filter(pk__in=list(predicted), status=ItemStatus.PENDING)
            .select_related("tenant", "need")
            .order_by("pk")
        )
        if not items:
            return 0
        results = [predicted[item.pk] for item in items]
        now = timezone.now()
        public = []
        for item, result in zip(items, results, strict=True):
            body = result.public(item.external_id)
            item.status = ItemStatus.TAGGED
            # Stored ranked (a list), never as a JSON object whose key order jsonb discards.
            item.result = {
                "labels": result.labels,
                "scores": ranked_scores(result.scores),
                "model": result.model.ref,
            }
            item.model_version_id = result.model.version_id
            item.tagged_at = now
            public.append(body)
        Item.objects.bulk_update(items, ["status", "result", "model_version", "tagged_at"])
        predlog.write_now(
            predlog.entries_for(
                tenant_id=items[0].tenant_id,
                need_id=need_id,
                channel=Channel.STREAM,
                item_refs=[item.external_id for item in items],
                results=results,
            )
        )
        webhooks.delivery_create(tenant=items[0].tenant, need=items[0].need, items=public)
    return len(items)


def stream_pending_requeue(*, older_than_seconds: float = 30.0) -> int:
    """Re-queue items still pending after a while (their task was lost with a worker).

    A sweeper for every tenant, tenant by tenant (one indexed query each, at most 10,000 items
    per sweep in all): it needs no all-tenant read."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    budget = 10_000
    by_need: dict[int, list[int]] = {}
    for tenant_id in Tenant.objects.order_by("pk").values_list("pk", flat=True):
        pending = (
            Item.objects.for_tenant(tenant_id)
            .filter(status=ItemStatus.PENDING, received_at__lt=cutoff)
            # A need that may not serve (requested/retired) keeps its items pending, untried,
            # until staff reinstate it.
            .filter(need__status__in=("approved", "live"))
            .order_by("need_id", "pk")
            .values_list("need_id", "pk")[:budget]
        )
        for need_id, pk in pending:
            by_need.setdefault(need_id, []).append(pk)
            budget -= 1
        if budget <= 0:
            break
    for need_id, pks in by_need.items():
        _enqueue_stream(need_id, pks)
    return sum(len(pks) for pks in by_need.values())


# --- batch ------------------------------------------------------------------------------------
def _check_batch_quota(tenant, count: int) -> None:
    limit = tenant.quota_max_batch_items
    if count > limit:
        # Larger than the quota itself: waiting would never help, so not a 429.
        raise DomainError(
            "too_many_items",
            _(
                "This job has %(count)s items; the tenant may have at most %(limit)s batch items in flight. Split the file into smaller jobs."
            )
            % {"count": count, "limit": limit},
            status_code=413,
        )
    in_flight = (
        BatchJob.objects.for_tenant(tenant)
        .filter(status__in=BATCH_ACTIVE)
        .aggregate(n=Sum(F("total_items") - F("done_items")))["n"]
        or 0
    )
    if in_flight + count > limit:
        raise DomainError(
            "batch_quota_exceeded",
            _(
                "This job has %(count)s items and %(in_flight)s are still in flight; the tenant may have at most %(limit)s batch items in flight. Retry when running jobs finish."
            )
            % {"count": count, "in_flight": in_flight, "limit": limit},
            status_code=429,
            headers={"Retry-After": "60"},
        )


def _enqueue_chunks(chunk_ids: list[int]) -> None:
    BatchChunk.objects.filter(pk__in=chunk_ids).update(queued_at=timezone.now())
    for chunk_id in chunk_ids:
        task_send("workers.tasks.batch.run_batch_chunk", chunk_id)


def batch_job_create(
    *,
    tenant,
    need,
    rows: list[tuple[str, str]] | StagedRows,
    source: str,
    filename: str = "",
    user=None,
) -> BatchJob:
    """Create a job, store its items and chunks, and queue each chunk as soon as it is stored.

    The rows were checked before (batch_io): nothing here refuses a row. The items are stored in
    slices of whole chunks, each in its own transaction (COPY on PostgreSQL), and a slice's
    chunks are queued when it commits, so workers tag the first chunks while the rest is still
    being stored. Slices grow from one chunk to BATCH_INGEST_SLICE_CHUNKS. If storing stops
    part-way (a database error), the job fails with the reason; if the web process dies, the
    stale-chunk sweeper fails it (`batch_ingest_stalled`). A job cancelled meanwhile stores no
    further slice."""
    staged = rows if isinstance(rows, StagedRows) else batch_io.stage_rows(rows)
    try:
        if not len(staged):
            raise DomainError(
                "invalid", _("The batch has no items."), fields={"items": [_("Empty.")]}
            )
        _check_batch_quota(tenant, len(staged))
        job = BatchJob.objects.create(
            tenant=tenant,
            need=need,
            source=source,
            filename=filename[:255],
            total_items=len(staged),
            chunk_size=staged.chunk_size,
            created_by=user if getattr(user, "pk", None) else None,
        )
        try:
            _batch_items_store(job, staged)
        except Exception as exc:
            _batch_fail(job, f"Storing the items stopped: {type(exc).__name__}: {exc}")
            raise
    finally:
        staged.close()
    return job


def _batch_items_store(job: BatchJob, staged: StagedRows) -> None:
    size, total = staged.chunk_size, len(staged)
    chunk_count = -(-total // size)
    first, per_slice = 0, 1
    while first < chunk_count:
        last = min(first + per_slice, chunk_count)
        start, end = first * size, min(last * size, total)
        with transaction.atomic():
            if (
                not BatchJob.objects.owned_by(job.tenant_id)
                .filter(pk=job.pk, status__in=BATCH_ACTIVE)
                .exists()
            ):
                return  # cancelled (or failed) while its items were being stored
            _batch_items_insert(job, staged, start, end)
            chunks = BatchChunk.objects.bulk_create(
                BatchChunk(job=job, index=i, start=i * size, end=min((i + 1) * size, total))
                for i in range(first, last)
            )
            chunk_ids = [c.pk for c in chunks if c.pk] or list(
                BatchChunk.objects.filter(job=job, index__gte=first, index__lt=last)
                .order_by("index")
                .values_list("pk", flat=True)
            )
            transaction.on_commit(partial(_enqueue_slice, job.pk, chunk_ids))
        first, per_slice = last, min(per_slice * 2, settings.BATCH_INGEST_SLICE_CHUNKS)


def _enqueue_slice(job_id: int, chunk_ids: list[int]) -> None:
    """Queue a committed slice's chunks. A broker outage must not stop the upload half-way: the
    chunks stay pending (never sent) and the stale-chunk sweeper sends them once the job shows no
    activity and the broker is back."""
    try:
        _enqueue_chunks(chunk_ids)
    except Exception:
        logger.warning(
            "could not queue %d stored chunks of batch job %s (broker unavailable?); the "
            "stale-chunk sweeper sends them later",
            len(chunk_ids),
            job_id,
            exc_info=True,
        )


def _batch_items_insert(job: BatchJob, staged: StagedRows, start: int, end: int) -> None:
    """Rows [start, end) of `staged` as the job's items: COPY on PostgreSQL, streamed from the
    staging file a block at a time; bulk_create elsewhere."""
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(BatchItem._meta.db_table)
        blocks = staged.copy_blocks(start, end, prefix=b"%d\t" % job.pk)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(
                f"COPY {table} (job_id, position, external_id, text) FROM STDIN",
                _BlockReader(blocks),
            )
        return
    BatchItem.objects.bulk_create(
        (
            BatchItem(job=job, position=position, external_id=item_id, text=text)
            for position, item_id, text in staged.rows(start, end)
        ),
        batch_size=2000,
    )


class _BlockReader:
    """The file-like object psycopg2's copy_expert reads: one block per read()."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks

    def read(self, size: int = -1) -> bytes:
        return next(self._blocks, b"")

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


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
        updated = (
            BatchJob.objects.owned_by(job.tenant_id)
            .filter(pk=job.pk, status__in=BATCH_ACTIVE)
            .update(status=BatchStatus.CANCELLED, finished_at=timezone.now())
        )
        if updated:
            BatchChunk.objects.filter(job=job, status=ChunkStatus.PENDING).update(
                status=ChunkStatus.CANCELLED
            )
    job.refresh_from_db()
    return bool(updated)


def batch_chunk_lease_seconds(*, job: BatchJob) -> float:
    """How long a claim on one of the job's chunks holds: FACTOR x the measured seconds per chunk
    (this job's, else the need's latest measured job's), within MIN..MAX; before anything was
    measured, BATCH_CHUNK_LEASE_SECONDS."""
    measured = job.chunk_seconds
    if measured is None:
        measured = (
            BatchJob.objects.owned_by(job.tenant_id)
            .filter(need_id=job.need_id, chunk_seconds__isnull=False)
            .order_by("-created_at", "-id")
            .values_list("chunk_seconds", flat=True)
            .first()
        )
    if measured is None:
        return settings.BATCH_CHUNK_LEASE_SECONDS
    return min(
        max(measured * settings.BATCH_CHUNK_LEASE_FACTOR, settings.BATCH_CHUNK_LEASE_MIN_SECONDS),
        settings.BATCH_CHUNK_LEASE_MAX_SECONDS,
    )


def batch_chunk_run(*, chunk_id: int, task_id: str = "", worker: str = "") -> str:
    """Process one chunk; returns the outcome ("done", "busy", "failed", "lost-claim", ...).

    "busy": another live claim holds the chunk (e.g. a sweeper's copy arriving while it runs).
    Nothing is scheduled for later: if that claimer dies, its lease runs out and the stale-chunk
    sweeper sends the chunk again (a delayed retry would sit in a worker as a reserved ETA
    message, which a worker that fetches only for free slots cannot afford).

    `task_id` is the Celery message's id: when the chunk's current claim was made by this same
    message, its earlier delivery died (pool process killed, worker lost), so this delivery takes
    the chunk over at once. After BATCH_CHUNK_MAX_ATTEMPTS claims the chunk fails the job.
    `worker` (the Celery node name) is recorded with each claim."""
    chunk = BatchChunk.objects.select_related("job").filter(pk=chunk_id).first()
    if chunk is None:
        return "missing"
    job = chunk.job
    now = timezone.now()
    token = uuid.uuid4().hex
    claimable = Q(status=ChunkStatus.PENDING) | Q(status=ChunkStatus.RUNNING, lease_until__lt=now)
    if task_id:
        claimable |= Q(status=ChunkStatus.RUNNING, claim_task=task_id)
    lease = batch_chunk_lease_seconds(job=job)
    claimed = (
        BatchChunk.objects.filter(pk=chunk_id, job__status__in=BATCH_ACTIVE)
        .filter(claimable, attempts__lt=settings.BATCH_CHUNK_MAX_ATTEMPTS)
        .update(
            status=ChunkStatus.RUNNING,
            claim=token,
            claim_task=task_id[:64],
            claimed_by=worker[:255],
            claimed_at=now,
            lease_until=now + timedelta(seconds=lease),
            attempts=F("attempts") + 1,
        )
    )
    if not claimed:
        chunk.refresh_from_db()
        job.refresh_from_db()
        exhausted = (
            job.status in BATCH_ACTIVE and chunk.attempts >= settings.BATCH_CHUNK_MAX_ATTEMPTS
        )
        if exhausted and (
            BatchChunk.objects.filter(pk=chunk_id)
            .filter(claimable)
            .update(status=ChunkStatus.FAILED, lease_until=None)
        ):
            _batch_fail(
                job,
                f"Chunk {chunk.index} (items {chunk.start + 1}-{chunk.end}) was given up "
                f"after {chunk.attempts} attempts: its worker stopped each time before "
                "finishing it (BATCH_CHUNK_MAX_ATTEMPTS).",
            )
            return "failed"
        if chunk.status == ChunkStatus.RUNNING and job.status in BATCH_ACTIVE:
            return "busy"
        if chunk.status == ChunkStatus.PENDING and job.status not in BATCH_ACTIVE:
            BatchChunk.objects.filter(pk=chunk_id, status=ChunkStatus.PENDING).update(
                status=ChunkStatus.CANCELLED
            )
            return ChunkStatus.CANCELLED
        return chunk.status
    BatchJob.objects.owned_by(job.tenant_id).filter(pk=job.pk, status=BatchStatus.QUEUED).update(
        status=BatchStatus.RUNNING, started_at=now
    )
    started = time.monotonic()
    rows = list(
        BatchItem.objects.filter(job=job, position__gte=chunk.start, position__lt=chunk.end)
        .order_by("position")
        .values_list("position", "external_id", "text")
    )
    try:
        served = get_runtime().need_by_id(job.need_id)
        results = get_runtime().tag(served, [text for _, _, text in rows])
    except Exception as exc:
        BatchChunk.objects.filter(pk=chunk_id, claim=token).update(status=ChunkStatus.FAILED)
        _batch_fail(job, f"{type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        locked = BatchChunk.objects.select_for_update().get(pk=chunk_id)
        if locked.status != ChunkStatus.RUNNING or locked.claim != token:
            return "lost-claim"  # someone re-claimed after our lease ran out; they commit
        if (
            BatchJob.objects.owned_by(job.tenant_id)
            .filter(pk=job.pk, status=BatchStatus.CANCELLED)
            .exists()
        ):
            BatchChunk.objects.filter(pk=chunk_id).update(status=ChunkStatus.CANCELLED)
            return "cancelled"
        BatchResult.objects.bulk_create(
            [
                BatchResult(
                    job=job,
                    position=position,
                    external_id=external_id,
                    labels=result.labels,
                    scores=ranked_scores(result.scores),  # [[label, score], ...] best first
                    model_version_id=result.model.version_id,
                )
                for (position, external_id, _), result in zip(rows, results, strict=True)
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        # The log lines commit with the results (same transaction): a process killed right
        # after the commit loses none, and a chunk that was not committed logged nothing.
        predlog.write(
            tenant_id=job.tenant_id,
            need_id=job.need_id,
            channel=Channel.BATCH,
            item_refs=[external_id for _, external_id, _ in rows],
            results=results,
        )
        seconds = time.monotonic() - started
        BatchChunk.objects.filter(pk=chunk_id).update(
            status=ChunkStatus.DONE, done_at=timezone.now(), lease_until=None, seconds=seconds
        )
        finished = timezone.now()
        last_chunk = Q(status=BatchStatus.RUNNING, done_items__gte=F("total_items") - len(rows))
        # One UPDATE advances the progress, the measured seconds per chunk (which size the next
        # leases) and, on the last chunk, finishes the job.
        BatchJob.objects.owned_by(job.tenant_id).filter(pk=job.pk).update(
            done_items=F("done_items") + len(rows),
            chunk_seconds=Case(
                When(chunk_seconds__isnull=True, then=Value(seconds)),
                default=F("chunk_seconds") * 0.7 + seconds * 0.3,
            ),
            status=Case(When(last_chunk, then=Value(BatchStatus.SUCCEEDED)), default=F("status")),
            finished_at=Case(When(last_chunk, then=Value(finished)), default=F("finished_at")),
        )
    return "done"


def _batch_fail(job: BatchJob, error: str) -> None:
    BatchJob.objects.owned_by(job.tenant_id).filter(pk=job.pk, status__in=BATCH_ACTIVE).update(
        status=BatchStatus.FAILED, error=error[:2000], finished_at=timezone.now()
    )
    BatchChunk.objects.filter(
        job=job, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
    ).update(status=ChunkStatus.CANCELLED)


def _batch_queue_depth() -> int | None:
    """Messages waiting in the broker's `batch` list (None when the broker is not Redis)."""
    url = str(settings.CELERY_BROKER_URL)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        return int(client.llen("batch"))
    finally:
        client.close()


def batch_chunks_sweep() -> int:
    """Send the messages of stale chunks again; returns how many. Beat runs it every
    BATCH_SWEEP_SECONDS (the stale-chunk sweeper).

    Stale: a running chunk whose lease ran out (its claimer died; the copy claims it at once),
    and the pending chunks of an active job that shows no activity (no live claim, nothing
    claimed or finished for BATCH_SWEEP_SECONDS) while the broker's batch queue is empty: their
    messages were reserved by a worker that died and would otherwise wait in Redis's `unacked`
    index for the visibility timeout. A copy of a message that was not lost after all is a no-op
    (the chunk is found done), and a chunk's message is sent at most once per quiet period."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.BATCH_SWEEP_SECONDS)
    recent_send = Q(queued_at__isnull=False, queued_at__gte=cutoff)
    expired = list(
        BatchChunk.objects.filter(
            job__status__in=BATCH_ACTIVE, status=ChunkStatus.RUNNING, lease_until__lt=now
        )
        .exclude(recent_send)
        .values_list("pk", flat=True)
    )
    stranded: list[int] = []
    depth = _batch_queue_depth()
    if not depth:
        # Tenant by tenant: a sweeper needs no all-tenant read.
        active_jobs = (
            job_id
            for tenant_id in Tenant.objects.order_by("pk").values_list("pk", flat=True)
            for job_id in BatchJob.objects.for_tenant(tenant_id)
            .filter(status__in=BATCH_ACTIVE)
            .values_list("pk", flat=True)
        )
        for job_id in active_jobs:
            chunks = BatchChunk.objects.filter(job_id=job_id)
            busy = chunks.filter(
                Q(status=ChunkStatus.RUNNING, lease_until__gte=now)
                | Q(claimed_at__gte=cutoff)
                | Q(done_at__gte=cutoff)
            ).exists()
            if not busy:
                stranded += (
                    chunks.filter(status=ChunkStatus.PENDING)
                    .exclude(recent_send)
                    .values_list("pk", flat=True)
                )
    batch_ingest_stalled()
    chunk_ids = sorted({*expired, *stranded})
    if chunk_ids:
        logger.warning("re-queueing %d stale batch chunk(s): %s", len(chunk_ids), chunk_ids[:20])
        _enqueue_chunks(chunk_ids)
    return len(chunk_ids)


def batch_ingest_stalled() -> int:
    """Fail the active jobs whose items stopped being stored part-way: chunks cover fewer
    positions than the job has items, and no slice was stored for BATCH_INGEST_STALL_SECONDS
    (the web process storing them died). Without this they would wait for ever and hold the
    tenant's in-flight quota. Returns how many jobs were failed."""
    cutoff = timezone.now() - timedelta(seconds=settings.BATCH_INGEST_STALL_SECONDS)
    # Tenant by tenant: a sweeper needs no all-tenant read.
    stalled = (
        job
        for tenant_id in Tenant.objects.order_by("pk").values_list("pk", flat=True)
        for job in BatchJob.objects.for_tenant(tenant_id)
        .filter(status__in=BATCH_ACTIVE, created_at__lt=cutoff)
        .annotate(stored=Coalesce(Max("chunks__end"), 0), last_slice=Max("chunks__queued_at"))
        .filter(stored__lt=F("total_items"))
        .filter(Q(last_slice__isnull=True) | Q(last_slice__lt=cutoff))
    )
    failed = 0
    for job in stalled:
        logger.warning("batch job %s: items stopped being stored at %s", job.pk, job.stored)
        _batch_fail(
            job,
            f"The upload stopped after {job.stored} of {job.total_items} items were stored "
            "(the web process ended); upload the file again.",
        )
        failed += 1
    return failed


def batch_chunks_requeue(*, job: BatchJob) -> int:
    """Admin "re-queue stuck chunks": every unfinished chunk of an active job becomes claimable
    now (its lease is ended) and its message is sent again. A chunk that is in fact still
    running may then be done twice, but only one run commits (claim tokens, unique results)."""
    with transaction.atomic():
        if (
            not BatchJob.objects.owned_by(job.tenant_id)
            .filter(pk=job.pk, status__in=BATCH_ACTIVE)
            .exists()
        ):
            return 0
        chunks = BatchChunk.objects.filter(
            job=job, status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING]
        )
        chunk_ids = list(chunks.values_list("pk", flat=True))
        chunks.filter(status=ChunkStatus.RUNNING).update(lease_until=timezone.now())
        transaction.on_commit(lambda: _enqueue_chunks(chunk_ids))
    return len(chunk_ids)


# --- scheduled batches ------------------------------------------------------------------------
_SCHEDULE_NAME_MAX: int = ScheduledBatch._meta.get_field("name").max_length or 100


def _crontab_parts(crontab: str) -> list[str]:
    """The five fields of a crontab, each checked by Celery's own parser."""
    from celery.schedules import crontab as celery_crontab

    parts = (crontab or "").split()
    if len(parts) != 5:
        raise DomainError(
            "invalid",
            _("A crontab has five fields: minute hour day month weekday."),
            fields={"crontab": [_("Five space-separated fields, e.g. 0 2 * * *.")]},
        )
    minute, hour, day, month, weekday = parts
    try:
        celery_crontab(
            minute=minute, hour=hour, day_of_month=day, month_of_year=month, day_of_week=weekday
        )
    except (ValueError, TypeError) as exc:
        raise DomainError(
            "invalid",
            _("Invalid crontab: %(error)s") % {"error": exc},
            fields={"crontab": [_("Invalid: %(error)s") % {"error": exc}]},
        ) from None
    return parts


def _check_schedule(*, tenant, need, name: str, exclude_pk: int | None = None) -> str:
    name = (name or "").strip()
    fields: dict[str, list[str]] = {}
    if not name or len(name) > _SCHEDULE_NAME_MAX:
        fields["name"] = [
            _("Give a name of 1 to %(max)s characters.") % {"max": _SCHEDULE_NAME_MAX}
        ]
    elif (
        ScheduledBatch.objects.owned_by(tenant)
        .filter(name=name)
        .exclude(pk=exclude_pk or 0)
        .exists()
    ):
        fields["name"] = [_("You already have a schedule named %(name)r.") % {"name": name}]
    if need.tenant_id != tenant.pk:
        fields["need"] = [_("Unknown need.")]
    elif need.status == "retired":
        fields["need"] = [_("%(need)s is retired.") % {"need": need.slug}]
    if fields:
        raise DomainError(
            "invalid", "; ".join(m for ms in fields.values() for m in ms), fields=fields
        )
    return name


def _crontab_schedule(crontab: str, *, time_zone: str):
    from django_celery_beat.models import CrontabSchedule

    minute, hour, day, month, weekday = _crontab_parts(crontab)
    schedule, _created = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day,
        month_of_year=month,
        day_of_week=weekday,
        timezone=time_zone or "UTC",
    )
    return schedule


def scheduled_batches_time_zone_sync(*, tenant) -> int:
    """Move the tenant's scheduled batches onto its (changed) time zone. Idempotent."""
    moved = 0
    scheduled = ScheduledBatch.objects.for_tenant(tenant).filter(periodic_task__isnull=False)
    for batch in scheduled.select_related("periodic_task__crontab"):
        task = batch.periodic_task
        if task.crontab is not None and str(task.crontab.timezone) == tenant.time_zone:
            continue
        with transaction.atomic():
            task.crontab = _crontab_schedule(batch.crontab, time_zone=tenant.time_zone)
            task.save(update_fields=["crontab"])  # django-celery-beat's signal tells beat
        moved += 1
    return moved


def scheduled_batch_create(
    *, tenant, need, name: str, crontab: str = "0 2 * * *", enabled: bool = True
) -> ScheduledBatch:
    """A nightly (by default) "tag everything new since the last run" with a beat schedule.
    The crontab runs on the tenant's wall clock (its time zone)."""
    from django_celery_beat.models import PeriodicTask

    name = _check_schedule(tenant=tenant, need=need, name=name)
    crontab = " ".join(_crontab_parts(crontab))
    with transaction.atomic():
        scheduled = ScheduledBatch.objects.create(
            tenant=tenant, need=need, name=name, crontab=crontab, enabled=enabled
        )
        scheduled.periodic_task = PeriodicTask.objects.create(
            name=f"scheduled-batch-{scheduled.pk}",
            task="workers.tasks.batch.run_scheduled_batch",
            crontab=_crontab_schedule(crontab, time_zone=tenant.time_zone),
            args=json.dumps([scheduled.pk]),
            queue="batch",
            enabled=enabled,
            # A run that waited half a day (beat or workers down) is dropped, not piled up: the
            # next one covers everything since the last, by its cursor.
            expire_seconds=SCHEDULED_BATCH_EXPIRE_SECONDS,
        )
        scheduled.save(update_fields=["periodic_task"])
    return scheduled


def scheduled_batch_update(
    *,
    scheduled: ScheduledBatch,
    name: str | None = None,
    need=None,
    crontab: str | None = None,
    enabled: bool | None = None,
) -> ScheduledBatch:
    """Rename, re-point, re-time, pause (enabled=False) or resume a schedule; its beat entry
    follows (on the tenant's wall clock). A new need starts from the items received from now on
    (the cursor is kept)."""
    from django_celery_beat.models import PeriodicTask

    name = _check_schedule(
        tenant=scheduled.tenant,
        need=need or scheduled.need,
        name=scheduled.name if name is None else name,
        exclude_pk=scheduled.pk,
    )
    crontab = scheduled.crontab if crontab is None else " ".join(_crontab_parts(crontab))
    with transaction.atomic():
        scheduled = (
            ScheduledBatch.objects.owned_by(scheduled.tenant_id)
            .select_for_update()
            .select_related("tenant")
            .get(pk=scheduled.pk)
        )
        scheduled.name, scheduled.crontab = name, crontab
        if need is not None:
            scheduled.need = need
        if enabled is not None:
            scheduled.enabled = enabled
        scheduled.save(update_fields=["name", "crontab", "need", "enabled"])
        if scheduled.periodic_task_id:
            PeriodicTask.objects.filter(pk=scheduled.periodic_task_id).update(
                crontab=_crontab_schedule(crontab, time_zone=scheduled.tenant.time_zone),
                enabled=scheduled.enabled,
            )
            # The beat scheduler re-reads its entries when this changes.
            from django_celery_beat.models import PeriodicTasks

            PeriodicTasks.update_changed()
    return scheduled


def scheduled_batch_delete(*, scheduled: ScheduledBatch) -> None:
    """Delete a schedule and its beat entry; the batch jobs it made stay (no longer linked)."""
    from django_celery_beat.models import PeriodicTask

    with transaction.atomic():
        task_id = scheduled.periodic_task_id
        ScheduledBatch.objects.owned_by(scheduled.tenant_id).filter(pk=scheduled.pk).delete()
        if task_id:
            PeriodicTask.objects.filter(pk=task_id).delete()


@acts_for_tenant(ScheduledBatch, "scheduled_id")
def scheduled_batch_run(*, scheduled_id: int) -> BatchJob | None:
    """Create a job for the items received since the last run and advance the cursor."""
    with transaction.atomic():
        scheduled = (
            ScheduledBatch.objects.select_for_update()
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
            BatchJob.objects.owned_by(scheduled.tenant_id).filter(pk=job.pk).update(
                scheduled=scheduled
            )
            scheduled.cursor_item_id = last_pk
            scheduled.last_job = job
        scheduled.save(update_fields=["last_run_at", "cursor_item_id", "last_job"])
    return job
