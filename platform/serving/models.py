from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.querysets import TenantQuerySet


class Channel(models.TextChoices):
    SYNC = "sync", _("Synchronous")
    STREAM = "stream", _("Stream")
    BATCH = "batch", _("Batch")


class PredictionLog(models.Model):
    """One row per prediction served, for monitoring. Written in bulk off the hot path.

    `day` is the time bucket the monitoring aggregates group by; (need, day) is indexed so a day's
    aggregation is an index range scan, never a full-table scan.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
    day = models.DateField()
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="prediction_logs"
    )
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    item_ref = models.CharField(max_length=200, blank=True)
    text_hash = models.CharField(max_length=64)
    #: Global label keys assigned after thresholds and top-k (may be empty).
    labels = models.JSONField(default=list)
    #: {global label key: score} for the labels considered.
    scores = models.JSONField(default=dict)
    top_label = models.CharField(max_length=200)
    top_score = models.FloatField()
    above_threshold = models.BooleanField(default=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["need", "day"], name="predlog_need_day"),
            models.Index(fields=["day"], name="predlog_day"),
            # The read API lists a tenant's recent predictions.
            models.Index(fields=["tenant", "created_at"], name="predlog_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.item_ref} -> {self.top_label}"


class PredictionLogFlush(models.Model):
    """One batch of buffered log lines moved from Redis into the log, committed in the same
    transaction as its rows. A flusher that died after taking a batch out of the buffer left the
    batch in Redis under its token: the batch is written if this row is missing, dropped if it
    exists, so no line is lost or written twice. Platform-wide; kept a day."""

    token = models.CharField(max_length=32, unique=True)
    lines = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"flush {self.token} ({self.lines} lines)"


class PredictionLogRetiredDay(models.Model):
    """A day of the prediction log that retention dropped (its daily aggregates were stored
    first). Platform-wide, not tenant-owned. The aggregation never recomputes a retired day, so
    its aggregates can never be replaced by the empty result of a dropped partition."""

    day = models.DateField(unique=True)
    #: Rows the day held when it was dropped; equal to its aggregated volume.
    rows = models.BigIntegerField()
    dropped_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.day} ({self.rows} rows)"


class ItemStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    TAGGED = "tagged", _("Tagged")
    FAILED = "failed", _("Failed")


class Item(models.Model):
    """A streamed item: ingested once per (need, external id), tagged by the online queue."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.PROTECT, related_name="items")
    external_id = models.CharField(max_length=200)
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    status = models.CharField(
        max_length=8, choices=ItemStatus.choices, default=ItemStatus.PENDING, db_index=True
    )
    #: Tenant-facing result: {"labels": [...], "scores": [[name, score], ...] (best first),
    #: "model": {"name", "version"}}. Scores are a ranked list because jsonb re-sorts object keys.
    result = models.JSONField(null=True, blank=True)
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    error = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    tagged_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["need", "external_id"], name="uniq_item_need_extid")
        ]
        indexes = [
            models.Index(fields=["need", "received_at"], name="item_need_received"),
            models.Index(fields=["need", "id"], name="item_need_id"),
        ]

    def __str__(self) -> str:
        return f"{self.need_id}/{self.external_id} [{self.status}]"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    DEAD = "dead", _("Dead letter")


class WebhookDelivery(models.Model):
    """One signed POST of stream results to the tenant's webhook, retried with backoff.

    After `WEBHOOK_MAX_ATTEMPTS` failures the row becomes a dead letter (status=dead); replaying it
    resets the attempts and sends the same payload again.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.PROTECT, related_name="+")
    payload = models.JSONField()
    item_count = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    dead_at = models.DateTimeField(null=True, blank=True)
    replays = models.PositiveIntegerField(default=0)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "status"], name="delivery_tenant_status")]

    def __str__(self) -> str:
        return f"delivery {self.pk} [{self.status}, {self.attempts} attempts]"


class BatchSource(models.TextChoices):
    UPLOAD = "upload", _("Uploaded file")
    ITEMS = "items", _("Stored items")
    SCHEDULE = "schedule", _("Scheduled run")


class BatchStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


BATCH_ACTIVE = (BatchStatus.QUEUED, BatchStatus.RUNNING)


class BatchJob(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.PROTECT, related_name="batch_jobs")
    source = models.CharField(max_length=12, choices=BatchSource.choices)
    filename = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=12, choices=BatchStatus.choices, default=BatchStatus.QUEUED, db_index=True
    )
    total_items = models.PositiveIntegerField(default=0)
    done_items = models.PositiveIntegerField(default=0)
    chunk_size = models.PositiveIntegerField(default=500)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    #: Measured seconds per chunk (moving average over the committed ones); sizes the lease.
    chunk_seconds = models.FloatField(null=True, blank=True)
    #: The schedule that made this job (source "schedule"), while it exists.
    scheduled = models.ForeignKey(
        "ScheduledBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"batch {self.pk} [{self.status} {self.done_items}/{self.total_items}]"

    @property
    def is_active(self) -> bool:
        return self.status in BATCH_ACTIVE

    @property
    def progress(self) -> dict:
        """done/total, percent, docs/s since start and the ETA in seconds (None when unknown)."""
        total, done = self.total_items, self.done_items
        end = self.finished_at or timezone.now()
        elapsed = (end - self.started_at).total_seconds() if self.started_at else 0.0
        rate = done / elapsed if elapsed > 0 and done else 0.0
        eta = (total - done) / rate if rate and self.is_active else None
        return {
            "done": done,
            "total": total,
            "percent": round(100.0 * done / total, 1) if total else 100.0,
            "rate_per_s": round(rate, 1),
            "eta_seconds": round(eta, 1) if eta is not None else None,
            "elapsed_seconds": round(elapsed, 1),
        }


class BatchItem(models.Model):
    """One input row of a batch job, in file order (`position`)."""

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    external_id = models.CharField(max_length=200)
    text = models.TextField()

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="uniq_batchitem_position")
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.position}"


class ChunkStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")
    #: Given up after BATCH_CHUNK_MAX_ATTEMPTS claims (a poison chunk that kills its worker).
    FAILED = "failed", _("Failed")


class BatchChunk(models.Model):
    """A slice [start, end) of a job's positions, claimed by compare-and-set with a lease."""

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    status = models.CharField(
        max_length=12, choices=ChunkStatus.choices, default=ChunkStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    #: Set by each successful claim; only the latest claimer may commit the chunk's results.
    claim = models.CharField(max_length=32, blank=True)
    #: The Celery task id of the latest claim. A redelivery of that same message means the
    #: claimer died (a broker delivers a message to one consumer at a time), so it takes over
    #: at once instead of waiting for the lease.
    claim_task = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    #: When a task message for this chunk was last sent (creation, sweeper, admin re-queue).
    queued_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    #: Claim to commit, in seconds, of the run that committed it.
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="uniq_batchchunk_index")
        ]

    def __str__(self) -> str:
        return f"{self.job_id}/chunk {self.index} [{self.status}]"


class BatchResult(models.Model):
    """Exactly one row per (job, position): redelivered chunks insert with ignore_conflicts."""

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="results")
    position = models.PositiveIntegerField()
    external_id = models.CharField(max_length=200)
    #: Tenant label names assigned (top-k above thresholds), best first.
    labels = models.JSONField(default=list)
    #: Every label's score as [[name, score], ...], best first (serving.ranked): a list, because
    #: jsonb re-sorts object keys and "the first key" stops being the best label.
    scores = models.JSONField(default=list)
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["job", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "position"], name="uniq_batchresult_position")
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.position} -> {self.labels}"


class ScheduledBatch(models.Model):
    """A recurring batch ("tag everything new since the last run"), fired by django-celery-beat.

    `cursor_item_id` is the highest Item id already included; each run takes the items above it.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    crontab = models.CharField(
        max_length=100, default="0 2 * * *", help_text="minute hour day month weekday (UTC)"
    )
    enabled = models.BooleanField(default=True)
    cursor_item_id = models.BigIntegerField(default=0)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey(
        BatchJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "scheduled batches"
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="uniq_scheduledbatch_name")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.name} ({self.crontab})"
