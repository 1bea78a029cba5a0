"""Optimisation runs and their trials (one model variant each, with its measured objectives)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.querysets import TenantQuerySet


class OptimisationStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded (a variant fits)")
    NOTHING_FITS = "nothing_fits", _("Finished: nothing fits the budgets")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")


ACTIVE_STATUSES = (OptimisationStatus.QUEUED, OptimisationStatus.RUNNING)


class OptimisationRun(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,
        related_name="optimisation_runs",
        verbose_name=_("tenant"),
    )
    need = models.ForeignKey(
        "tenants.Need",
        on_delete=models.PROTECT,
        related_name="optimisation_runs",
        verbose_name=_("need"),
    )
    #: The split every trial is evaluated on: the champion's snapshot when the need has one.
    snapshot = models.ForeignKey(
        "registry.DatasetSnapshot",
        on_delete=models.PROTECT,
        related_name="optimisation_runs",
        verbose_name=_("snapshot"),
    )
    status = models.CharField(
        max_length=16,
        choices=OptimisationStatus.choices,
        default=OptimisationStatus.QUEUED,
        verbose_name=_("status"),
    )
    latency_budget_ms = models.FloatField(
        help_text=_("p99 single-item latency budget, ms"), verbose_name=_("latency budget ms")
    )
    size_budget_kb = models.PositiveIntegerField(
        help_text=_("artifact size budget, KB (1024 bytes)"), verbose_name=_("size budget kb")
    )
    time_limit_seconds = models.PositiveIntegerField(verbose_name=_("time limit seconds"))
    max_trials = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("max trials"))
    seed = models.PositiveIntegerField(default=42, verbose_name=_("seed"))
    target_requests_per_s = models.FloatField(
        null=True, blank=True, verbose_name=_("target requests per s")
    )
    progress = models.FloatField(default=0.0, verbose_name=_("progress"))
    log = models.TextField(blank=True, verbose_name=_("log"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    cancel_requested = models.BooleanField(default=False, verbose_name=_("cancel requested"))
    #: Bumped with every progress write; a running run whose heartbeat is older than
    #: OPTIMISATION_STALE_SECONDS lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True, verbose_name=_("heartbeat at"))
    #: The Celery message (task id) whose delivery holds the claim: the same message delivered
    #: again means its first delivery's worker died, so it starts the run over at once.
    claim_task = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("claim task")
    )
    #: The measurement protocol (warm-up, repetitions, process, load) and the outcome: chosen
    #: trial, explanation when nothing fits, closest misses, capacity plan, default model.
    measurement = models.JSONField(default=dict, blank=True, verbose_name=_("measurement"))
    result = models.JSONField(default=dict, blank=True, verbose_name=_("result"))
    chosen_trial = models.ForeignKey(
        "optimisation.OptimisationTrial",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("chosen trial"),
    )
    registered_version = models.OneToOneField(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="optimisation_run",
        verbose_name=_("registered version"),
    )
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

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("optimisation run")
        verbose_name_plural = _("optimisation runs")
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
        return _("optimisation #%(pk)s of need %(need)s (%(status)s)") % {
            "pk": self.pk,
            "need": self.need_id,
            "status": self.get_status_display(),
        }

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class TrialState(models.TextChoices):
    COMPLETE = "complete", _("Complete")
    FAILED = "failed", _("Failed")
    #: Stopped early: its fit on a subsample scored far below the best finished trial.
    PRUNED = "pruned", _("Pruned")


class _TrialQuerySet(TenantQuerySet):
    tenant_field = "run__tenant"


class OptimisationTrial(models.Model):
    run = models.ForeignKey(
        OptimisationRun, on_delete=models.CASCADE, related_name="trials", verbose_name=_("run")
    )
    number = models.PositiveIntegerField(verbose_name=_("number"))
    state = models.CharField(max_length=16, choices=TrialState.choices, verbose_name=_("state"))
    #: The variant: representation, vectoriser, selection, classifier, precision.
    params = models.JSONField(default=dict, verbose_name=_("params"))
    macro_f1 = models.FloatField(null=True, blank=True, verbose_name=_("macro f1"))
    size_bytes = models.PositiveBigIntegerField(null=True, blank=True, verbose_name=_("size bytes"))
    #: Measured after the search, serially, on the serving path (see run.measurement).
    p50_ms = models.FloatField(null=True, blank=True, verbose_name=_("p50 ms"))
    p99_ms = models.FloatField(null=True, blank=True, verbose_name=_("p99 ms"))
    mean_ms = models.FloatField(null=True, blank=True, verbose_name=_("mean ms"))
    docs_per_s = models.FloatField(null=True, blank=True, verbose_name=_("docs per s"))
    scorer_path = models.CharField(max_length=32, blank=True, verbose_name=_("scorer path"))
    #: The quick in-search p99 that guided the sampler (never used to choose).
    search_p99_ms = models.FloatField(null=True, blank=True, verbose_name=_("search p99 ms"))
    fit_seconds = models.FloatField(null=True, blank=True, verbose_name=_("fit seconds"))
    pareto = models.BooleanField(default=False, verbose_name=_("pareto"))
    fits = models.BooleanField(default=False, verbose_name=_("fits"))
    is_default = models.BooleanField(default=False, verbose_name=_("is default"))
    error = models.TextField(blank=True, verbose_name=_("error"))

    objects = _TrialQuerySet.as_manager()

    class Meta:
        verbose_name = _("optimisation trial")
        verbose_name_plural = _("optimisation trials")
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="uniq_optimisation_trial")
        ]

    def __str__(self) -> str:
        return _("trial %(number)s of run %(run)s") % {"number": self.number, "run": self.run_id}
