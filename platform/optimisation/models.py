"""Optimisation runs and their trials (one model variant each, with its measured objectives)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.querysets import TenantQuerySet


class OptimisationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded (a variant fits)"
    NOTHING_FITS = "nothing_fits", "Finished: nothing fits the budgets"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (OptimisationStatus.QUEUED, OptimisationStatus.RUNNING)


class OptimisationRun(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="optimisation_runs"
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="optimisation_runs"
    )
    #: The split every trial is evaluated on: the champion's snapshot when the need has one.
    snapshot = models.ForeignKey(
        "registry.DatasetSnapshot", on_delete=models.PROTECT, related_name="optimisation_runs"
    )
    status = models.CharField(
        max_length=16, choices=OptimisationStatus.choices, default=OptimisationStatus.QUEUED
    )
    latency_budget_ms = models.FloatField(help_text="p99 single-item latency budget, ms")
    size_budget_kb = models.PositiveIntegerField(help_text="artifact size budget, KB (1024 bytes)")
    time_limit_seconds = models.PositiveIntegerField()
    max_trials = models.PositiveIntegerField(null=True, blank=True)
    seed = models.PositiveIntegerField(default=42)
    target_requests_per_s = models.FloatField(null=True, blank=True)
    progress = models.FloatField(default=0.0)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    #: Bumped with every progress write; a running run whose heartbeat is older than
    #: OPTIMISATION_STALE_SECONDS lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    #: The Celery message (task id) whose delivery holds the claim: the same message delivered
    #: again means its first delivery's worker died, so it starts the run over at once.
    claim_task = models.CharField(max_length=64, blank=True, default="")
    #: The measurement protocol (warm-up, repetitions, process, load) and the outcome: chosen
    #: trial, explanation when nothing fits, closest misses, capacity plan, default model.
    measurement = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    chosen_trial = models.ForeignKey(
        "optimisation.OptimisationTrial",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    registered_version = models.OneToOneField(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="optimisation_run",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one queued or running run per need, held by the database.
            models.UniqueConstraint(
                fields=["need"],
                condition=Q(status__in=["queued", "running"]),
                name="uniq_active_optimisation_per_need",
            ),
            models.CheckConstraint(
                condition=Q(latency_budget_ms__gt=0), name="optimisation_latency_budget_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"optimisation #{self.pk} of {self.need_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class TrialState(models.TextChoices):
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"


class _TrialQuerySet(TenantQuerySet):
    tenant_field = "run__tenant"


class OptimisationTrial(models.Model):
    run = models.ForeignKey(OptimisationRun, on_delete=models.CASCADE, related_name="trials")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=TrialState.choices)
    #: The variant: representation, vectoriser, selection, classifier, precision.
    params = models.JSONField(default=dict)
    macro_f1 = models.FloatField(null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    #: Measured after the search, serially, on the serving path (see run.measurement).
    p50_ms = models.FloatField(null=True, blank=True)
    p99_ms = models.FloatField(null=True, blank=True)
    mean_ms = models.FloatField(null=True, blank=True)
    docs_per_s = models.FloatField(null=True, blank=True)
    scorer_path = models.CharField(max_length=32, blank=True)
    #: The quick in-search p99 that guided the sampler (never used to choose).
    search_p99_ms = models.FloatField(null=True, blank=True)
    fit_seconds = models.FloatField(null=True, blank=True)
    pareto = models.BooleanField(default=False)
    fits = models.BooleanField(default=False)
    is_default = models.BooleanField(default=False)
    error = models.TextField(blank=True)

    objects = _TrialQuerySet.as_manager()

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="uniq_optimisation_trial")
        ]

    def __str__(self) -> str:
        return f"trial {self.number} of run {self.run_id}"
