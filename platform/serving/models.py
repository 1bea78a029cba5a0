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

    id = models.BigAutoField(primary_key=True, verbose_name=_("id"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    day = models.DateField(verbose_name=_("day"))
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need",
        on_delete=models.PROTECT,
        related_name="prediction_logs",
        verbose_name=_("need"),
    )
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("model version"),
    )
    channel = models.CharField(max_length=8, choices=Channel.choices, verbose_name=_("channel"))
    item_ref = models.CharField(max_length=200, blank=True, verbose_name=_("item ref"))
    text_hash = models.CharField(max_length=64, verbose_name=_("text hash"))
    #: Global label keys assigned after thresholds and top-k (may be empty).
    labels = models.JSONField(default=list, verbose_name=_("labels"))
    #: {global label key: score} for the labels considered.
    scores = models.JSONField(default=dict, verbose_name=_("scores"))
    top_label = models.CharField(max_length=200, verbose_name=_("top label"))
    top_score = models.FloatField(verbose_name=_("top score"))
    above_threshold = models.BooleanField(default=True, verbose_name=_("above threshold"))
    #: The text of a sync prediction kept for review (a sampled share, set per need by the
    #: review app); null for every other row. Stream and batch texts live with their items.
    #: Purged after the need's retention (review.sync_texts), or with the day's partition.
    text = models.TextField(null=True, blank=True, verbose_name=_("text"))
    #: The probability that this prediction's text was kept: the log's sync sample rate times
    #: the need's share when it was served. Its inverse is the row's weight in review rounds.
    text_share = models.FloatField(null=True, blank=True, verbose_name=_("text share"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("prediction log")
        verbose_name_plural = _("prediction logs")
        indexes = [
            models.Index(fields=["need", "day"], name="predlog_need_day"),
            # Kept sync texts: review rounds find them and the purge clears them through this
            # small index, never by scanning a day's whole log.
            models.Index(
                fields=["need", "day"],
                condition=models.Q(text__isnull=False),
                name="predlog_need_day_text",
            ),
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

    token = models.CharField(max_length=32, unique=True, verbose_name=_("token"))
    lines = models.PositiveIntegerField(verbose_name=_("lines"))
    created_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=_("created at")
    )

    class Meta:
        verbose_name = _("prediction log flush")
        verbose_name_plural = _("prediction log flushes")

    def __str__(self) -> str:
        return f"flush {self.token} ({self.lines} lines)"


class PredictionLogRetiredDay(models.Model):
    """A day of the prediction log that retention dropped (its daily aggregates were stored
    first). Platform-wide, not tenant-owned. The aggregation never recomputes a retired day, so
    its aggregates can never be replaced by the empty result of a dropped partition."""

    day = models.DateField(unique=True, verbose_name=_("day"))
    #: Rows the day held when it was dropped; equal to its aggregated volume.
    rows = models.BigIntegerField(verbose_name=_("rows"))
    dropped_at = models.DateTimeField(default=timezone.now, verbose_name=_("dropped at"))

    class Meta:
        verbose_name = _("prediction log retired day")
        verbose_name_plural = _("prediction log retired days")

    def __str__(self) -> str:
        return _("%(day)s (%(rows)s rows)") % {"day": self.day, "rows": self.rows}


class ItemStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    TAGGED = "tagged", _("Tagged")
    FAILED = "failed", _("Failed")


class Item(models.Model):
    """A streamed item: ingested once per (need, external id), tagged by the online queue."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="items", verbose_name=_("need")
    )
    external_id = models.CharField(max_length=200, verbose_name=_("external id"))
    text = models.TextField(verbose_name=_("text"))
    text_hash = models.CharField(max_length=64, verbose_name=_("text hash"))
    status = models.CharField(
        max_length=8,
        choices=ItemStatus.choices,
        default=ItemStatus.PENDING,
        db_index=True,
        verbose_name=_("status"),
    )
    #: Tenant-facing result: {"labels": [...], "scores": [[name, score], ...] (best first),
    #: "model": {"name", "version"}}. Scores are a ranked list because jsonb re-sorts object keys.
    result = models.JSONField(null=True, blank=True, verbose_name=_("result"))
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("model version"),
    )
    error = models.CharField(max_length=300, blank=True, verbose_name=_("error"))
    received_at = models.DateTimeField(default=timezone.now, verbose_name=_("received at"))
    tagged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("tagged at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("item")
        verbose_name_plural = _("items")
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["need", "external_id"], name="uniq_item_need_extid")
        ]
        indexes = [
            models.Index(fields=["need", "received_at"], name="item_need_received"),
            models.Index(fields=["need", "id"], name="item_need_id"),
        ]

    def __str__(self) -> str:
        return f"{self.need_id}/{self.external_id} [{self.get_status_display()}]"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    DEAD = "dead", _("Dead letter")


class WebhookDelivery(models.Model):
    """One signed POST of stream results to the tenant's webhook, retried with backoff.

    After `WEBHOOK_MAX_ATTEMPTS` failures the row becomes a dead letter (status=dead); replaying it
    resets the attempts and sends the same payload again.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="+", verbose_name=_("need")
    )
    payload = models.JSONField(verbose_name=_("payload"))
    item_count = models.PositiveIntegerField(default=0, verbose_name=_("item count"))
    status = models.CharField(
        max_length=12,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        verbose_name=_("status"),
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    last_error = models.CharField(max_length=500, blank=True, verbose_name=_("last error"))
    last_status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, verbose_name=_("last status code")
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=_("next attempt at"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    delivered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("delivered at"))
    dead_at = models.DateTimeField(null=True, blank=True, verbose_name=_("dead at"))
    replays = models.PositiveIntegerField(default=0, verbose_name=_("replays"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "status"], name="delivery_tenant_status")]

    def __str__(self) -> str:
        return _("delivery %(pk)s [%(status)s, %(attempts)s attempts]") % {
            "pk": self.pk,
            "status": self.get_status_display(),
            "attempts": self.attempts,
        }


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
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="batch_jobs", verbose_name=_("need")
    )
    source = models.CharField(max_length=12, choices=BatchSource.choices, verbose_name=_("source"))
    filename = models.CharField(max_length=255, blank=True, verbose_name=_("filename"))
    status = models.CharField(
        max_length=12,
        choices=BatchStatus.choices,
        default=BatchStatus.QUEUED,
        db_index=True,
        verbose_name=_("status"),
    )
    total_items = models.PositiveIntegerField(default=0, verbose_name=_("total items"))
    done_items = models.PositiveIntegerField(default=0, verbose_name=_("done items"))
    chunk_size = models.PositiveIntegerField(default=500, verbose_name=_("chunk size"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    started_at = models.DateTimeField(null=True, blank=True, verbose_name=_("started at"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))
    #: Measured seconds per chunk (moving average over the committed ones); sizes the lease.
    chunk_seconds = models.FloatField(null=True, blank=True, verbose_name=_("chunk seconds"))
    #: The schedule that made this job (source "schedule"), while it exists.
    scheduled = models.ForeignKey(
        "ScheduledBatch",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        verbose_name=_("scheduled"),
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("batch job")
        verbose_name_plural = _("batch jobs")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return _("batch %(pk)s [%(status)s %(done)s/%(total)s]") % {
            "pk": self.pk,
            "status": self.get_status_display(),
            "done": self.done_items,
            "total": self.total_items,
        }

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

    job = models.ForeignKey(
        BatchJob, on_delete=models.CASCADE, related_name="items", verbose_name=_("job")
    )
    position = models.PositiveIntegerField(verbose_name=_("position"))
    external_id = models.CharField(max_length=200, verbose_name=_("external id"))
    text = models.TextField(verbose_name=_("text"))

    class Meta:
        verbose_name = _("batch item")
        verbose_name_plural = _("batch items")
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

    job = models.ForeignKey(
        BatchJob, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("job")
    )
    index = models.PositiveIntegerField(verbose_name=_("index"))
    start = models.PositiveIntegerField(verbose_name=_("start"))
    end = models.PositiveIntegerField(verbose_name=_("end"))
    status = models.CharField(
        max_length=12,
        choices=ChunkStatus.choices,
        default=ChunkStatus.PENDING,
        verbose_name=_("status"),
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    #: Set by each successful claim; only the latest claimer may commit the chunk's results.
    claim = models.CharField(max_length=32, blank=True, verbose_name=_("claim"))
    #: The Celery task id of the latest claim. A redelivery of that same message means the
    #: claimer died (a broker delivers a message to one consumer at a time), so it takes over
    #: at once instead of waiting for the lease.
    claim_task = models.CharField(max_length=64, blank=True, verbose_name=_("claim task"))
    #: The Celery node (`<queue>-<n>@<host>`) of the latest claim: the one that committed a done
    #: chunk. With workers on several hosts it tells who did what, and where a lost host's
    #: chunks were taken over.
    claimed_by = models.CharField(max_length=255, blank=True, verbose_name=_("claimed by"))
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("claimed at"))
    lease_until = models.DateTimeField(null=True, blank=True, verbose_name=_("lease until"))
    #: When a task message for this chunk was last sent (creation, sweeper, admin re-queue).
    queued_at = models.DateTimeField(null=True, blank=True, verbose_name=_("queued at"))
    done_at = models.DateTimeField(null=True, blank=True, verbose_name=_("done at"))
    #: Claim to commit, in seconds, of the run that committed it.
    seconds = models.FloatField(null=True, blank=True, verbose_name=_("seconds"))

    class Meta:
        verbose_name = _("batch chunk")
        verbose_name_plural = _("batch chunks")
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="uniq_batchchunk_index")
        ]

    def __str__(self) -> str:
        return _("%(job)s/chunk %(index)s [%(status)s]") % {
            "job": self.job_id,
            "index": self.index,
            "status": self.get_status_display(),
        }


class BatchResult(models.Model):
    """Exactly one row per (job, position): redelivered chunks insert with ignore_conflicts."""

    job = models.ForeignKey(
        BatchJob, on_delete=models.CASCADE, related_name="results", verbose_name=_("job")
    )
    position = models.PositiveIntegerField(verbose_name=_("position"))
    external_id = models.CharField(max_length=200, verbose_name=_("external id"))
    #: Tenant label names assigned (top-k above thresholds), best first.
    labels = models.JSONField(default=list, verbose_name=_("labels"))
    #: Every label's score as [[name, score], ...], best first (serving.ranked): a list, because
    #: jsonb re-sorts object keys and "the first key" stops being the best label.
    scores = models.JSONField(default=list, verbose_name=_("scores"))
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("model version"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("batch result")
        verbose_name_plural = _("batch results")
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

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="+", verbose_name=_("need")
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    crontab = models.CharField(
        max_length=100,
        default="0 2 * * *",
        help_text=_("minute hour day month weekday (UTC)"),
        verbose_name=_("crontab"),
    )
    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    cursor_item_id = models.BigIntegerField(default=0, verbose_name=_("cursor item id"))
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("periodic task"),
    )
    last_run_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last run at"))
    last_job = models.ForeignKey(
        BatchJob,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("last job"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("scheduled batch")
        verbose_name_plural = _("scheduled batches")
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="uniq_scheduledbatch_name")
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.name} ({self.crontab})"
