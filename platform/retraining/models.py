"""Retraining: per-need policies, retrains (champion -> challenger) with their comparison, and
shadow-mode agreement counts. The samples, snapshots, versions and aliases themselves live in the
registry; this app only decides when to retrain and whether a challenger may replace a champion."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.querysets import TenantQuerySet


class RetrainPolicy(models.Model):
    """When a need retrains by itself, and what a challenger must show to be promoted."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.OneToOneField(
        "tenants.Need",
        on_delete=models.CASCADE,
        related_name="retrain_policy",
        verbose_name=_("need"),
    )
    #: The challenger's fresh-set macro-F1 must be at least the champion's plus this margin.
    promotion_margin = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)],
        verbose_name=_("promotion margin"),
    )
    #: No label's recall may drop by more than this, on the test set or on the fresh set.
    max_recall_drop = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("max recall drop"),
    )
    #: The fresh set must hold at least this many samples for the guard to judge it.
    min_fresh_samples = models.PositiveIntegerField(default=20, verbose_name=_("min fresh samples"))
    #: Retrain after this many accepted samples since the champion's snapshot (empty: never).
    retrain_after_accepted = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("retrain after accepted")
    )
    #: Retrain when a review round's sign-off says "retrain".
    retrain_on_signoff = models.BooleanField(default=True, verbose_name=_("retrain on signoff"))
    #: Retrain every this many days (checked by the hourly beat task; empty: never).
    retrain_every_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        verbose_name=_("retrain every days"),
    )
    #: The algorithm retrains train (a registry algorithm; empty: the champion's) and the params
    #: they change; a retrain started by hand may choose its own instead.
    algorithm = models.CharField(max_length=32, blank=True, verbose_name=_("algorithm"))
    params = models.JSONField(default=dict, blank=True, verbose_name=_("params"))
    #: Shadow mode: the share of live sync traffic the challenger also scores (0 = off).
    shadow_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        verbose_name=_("shadow share"),
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("updated by"),
    )
    updated_at = models.DateTimeField(default=timezone.now, verbose_name=_("updated at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("retrain policy")
        verbose_name_plural = _("retrain policies")

    def __str__(self) -> str:
        return _("retrain policy of need %(need)s") % {"need": self.need_id}


class Trigger(models.TextChoices):
    MANUAL = "manual", _("By hand")
    ACCEPTED = "accepted", _("Accepted cases reached the policy's count")
    SIGNOFF = "signoff", _("A review sign-off asked to retrain")
    SCHEDULE = "schedule", _("On the policy's schedule")


class RetrainStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Training and comparing")
    READY = "ready", _("Compared; awaiting a decision")
    PROMOTED = "promoted", _("Promoted to production")
    FAILED = "failed", _("Failed")


ACTIVE_STATUSES = (RetrainStatus.QUEUED, RetrainStatus.RUNNING)


class Retrain(models.Model):
    """One retrain of a need's champion: snapshot, training run, challenger, comparison, guard."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="retrains", verbose_name=_("need")
    )
    trigger = models.CharField(
        max_length=16, choices=Trigger.choices, default=Trigger.MANUAL, verbose_name=_("trigger")
    )
    reason = models.CharField(max_length=300, blank=True, verbose_name=_("reason"))
    status = models.CharField(
        max_length=16,
        choices=RetrainStatus.choices,
        default=RetrainStatus.QUEUED,
        db_index=True,
        verbose_name=_("status"),
    )
    champion = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("champion"),
    )
    #: The algorithm the challenger is trained with (the champion's unless another was chosen).
    algorithm = models.CharField(max_length=32, blank=True, verbose_name=_("algorithm"))
    params = models.JSONField(default=dict, blank=True, verbose_name=_("params"))
    snapshot = models.ForeignKey(
        "registry.DatasetSnapshot",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("snapshot"),
    )
    training_run = models.OneToOneField(
        "registry.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="retrain",
        verbose_name=_("training run"),
    )
    challenger = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("challenger"),
    )
    accepted_added = models.PositiveIntegerField(default=0, verbose_name=_("accepted added"))
    #: The comparison (retraining.comparison.compare_versions) and the guard's verdict.
    comparison = models.JSONField(null=True, blank=True, verbose_name=_("comparison"))
    guard = models.JSONField(null=True, blank=True, verbose_name=_("guard"))
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
    #: The Celery message (task id) whose delivery holds the claim: the same message delivered
    #: again means its first delivery's worker died, so it takes the work over at once.
    claim_task = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("claim task")
    )
    #: Stamped while a worker runs the retrain (core.heartbeat); see TrainingRun.heartbeat_at.
    heartbeat_at = models.DateTimeField(null=True, blank=True, verbose_name=_("heartbeat at"))
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("promoted by"),
    )
    promoted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("promoted at"))
    override_reason = models.CharField(
        max_length=280, blank=True, verbose_name=_("override reason")
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("retrain")
        verbose_name_plural = _("retrains")
        ordering = ["-created_at", "-id"]
        constraints = [
            # One retrain in flight per need: a second start (a double click, a redelivered
            # policy check) finds the first instead of training a second challenger.
            models.UniqueConstraint(
                fields=["need"],
                condition=models.Q(status__in=["queued", "running"]),
                name="uniq_active_retrain_per_need",
            )
        ]

    def __str__(self) -> str:
        return _("retrain %(pk)s of need %(need)s [%(status)s]") % {
            "pk": self.pk,
            "need": self.need_id,
            "status": self.get_status_display(),
        }


class ShadowAgreement(models.Model):
    """Per need, challenger and day: how many shadow-scored items, and on how many the
    challenger's top label agreed with the champion's answer (which was the one returned)."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    champion = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("champion"),
    )
    challenger = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("challenger"),
    )
    day = models.DateField(verbose_name=_("day"))
    scored = models.PositiveIntegerField(default=0, verbose_name=_("scored"))
    agreed = models.PositiveIntegerField(default=0, verbose_name=_("agreed"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("shadow agreement")
        verbose_name_plural = _("shadow agreements")
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["need", "champion", "challenger", "day"], name="uniq_shadow_day"
            )
        ]

    def __str__(self) -> str:
        return _("shadow mode of need %(need)s on %(day)s: %(agreed)s/%(scored)s") % {
            "need": self.need_id,
            "day": self.day,
            "agreed": self.agreed,
            "scored": self.scored,
        }
