from __future__ import annotations

from django.db import models
from django.utils import timezone

from tenants.querysets import TenantQuerySet


class Channel(models.TextChoices):
    SYNC = "sync", "Synchronous"
    STREAM = "stream", "Stream"
    BATCH = "batch", "Batch"


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
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.item_ref} -> {self.top_label}"
