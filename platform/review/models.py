"""Periodic human review of a need's predictions, and the cases (wrong or doubtful answers) that
become training samples.

A round samples predictions from the prediction log, stratified by predicted label with rare labels
oversampled; every item keeps its inclusion weight (stratum size / items drawn from it), so the
weighted accuracy estimates the whole stream. Reviewers claim items one at a time (a partial unique
constraint keeps two reviewers off the same slot); double-reviewed items have a second slot.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.querysets import TenantQuerySet


class NeedReviewConfig(models.Model):
    """Per-need defaults of review rounds and case handling (created on first use)."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.OneToOneField(
        "tenants.Need",
        on_delete=models.CASCADE,
        related_name="review_config",
        verbose_name=_("need"),
    )
    accuracy_target = models.FloatField(
        default=0.9,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("accuracy target"),
    )
    sample_size = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(5000)],
        verbose_name=_("sample size"),
    )
    window_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        verbose_name=_("window days"),
    )
    #: Each stratum gets at least this many items (when it has them): rare labels are oversampled.
    min_per_label = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        verbose_name=_("min per label"),
    )
    double_review_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("double review share"),
    )
    #: Share of accepted cases kept out of training (the "fresh set"), chosen by text hash.
    held_out_share = models.FloatField(
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("held out share"),
    )
    #: Share of low-confidence predictions that become cases (chosen by text hash).
    low_confidence_case_share = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("low confidence case share"),
    )
    #: Share of logged sync predictions whose text is kept for review (0: none, the default:
    #: sync callers never agreed to storage of their texts, so a need's owner opts in).
    sync_review_share = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("sync review share"),
    )
    #: Days a kept sync text stays in the prediction log before the purge clears it (capped
    #: platform-wide by SYNC_REVIEW_TEXT_MAX_DAYS).
    sync_text_retention_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        verbose_name=_("sync text retention days"),
    )
    auto_round_on_alert = models.BooleanField(default=True, verbose_name=_("auto round on alert"))
    #: "minute hour day month weekday" (UTC); empty: no scheduled rounds.
    schedule_crontab = models.CharField(
        max_length=100, blank=True, verbose_name=_("schedule crontab")
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("periodic task"),
    )
    #: Who signs off rounds for the business (a tenant admin may always sign off).
    business_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("business owner"),
    )
    #: Collection cursors: the last feedback event / prediction log row already turned into cases.
    feedback_cursor = models.BigIntegerField(default=0, verbose_name=_("feedback cursor"))
    predlog_cursor = models.BigIntegerField(default=0, verbose_name=_("predlog cursor"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("need review config")
        verbose_name_plural = _("need review configs")

    def __str__(self) -> str:
        return _("review settings of need %(need)s") % {"need": self.need_id}


class Trigger(models.TextChoices):
    MANUAL = "manual", _("On demand")
    SCHEDULE = "schedule", _("Schedule")
    ALERT = "alert", _("Alert")


class RoundStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sampled")
    SAMPLING = "sampling", _("Sampling")
    OPEN = "open", _("Open for review")
    CLOSED = "closed", _("Closed")


class SignOff(models.TextChoices):
    MEETS = "meets", _("Still meets the need")
    RETRAIN = "retrain", _("Retrain")
    RESCOPE = "rescope", _("Re-scope the need")


class ReviewRound(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need",
        on_delete=models.PROTECT,
        related_name="review_rounds",
        verbose_name=_("need"),
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices, verbose_name=_("trigger"))
    #: The monitoring alert that started it (trigger "alert"): one round per alert.
    trigger_alert = models.ForeignKey(
        "monitoring.Alert",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("trigger alert"),
    )
    status = models.CharField(
        max_length=16,
        choices=RoundStatus.choices,
        default=RoundStatus.PENDING,
        verbose_name=_("status"),
    )
    window_start = models.DateTimeField(verbose_name=_("window start"))
    window_end = models.DateTimeField(verbose_name=_("window end"))
    sample_size = models.PositiveIntegerField(verbose_name=_("sample size"))
    double_review_share = models.FloatField(default=0.0, verbose_name=_("double review share"))
    #: The model version most items were predicted by (compared with its offline accuracy).
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("model version"),
    )
    #: Predictions in the window that could be sampled, and per stratum {label: [size, drawn]}.
    population = models.PositiveIntegerField(default=0, verbose_name=_("population"))
    strata = models.JSONField(default=dict, blank=True, verbose_name=_("strata"))
    #: The estimate when the round was closed (the live one is computed from the verdicts).
    result = models.JSONField(default=dict, blank=True, verbose_name=_("result"))
    accuracy_target = models.FloatField(default=0.9, verbose_name=_("accuracy target"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    sampled_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sampled at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    error = models.CharField(max_length=300, blank=True, verbose_name=_("error"))
    signoff = models.CharField(
        max_length=16, choices=SignOff.choices, blank=True, verbose_name=_("signoff")
    )
    signoff_note = models.CharField(max_length=1000, blank=True, verbose_name=_("signoff note"))
    signoff_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("signoff by"),
    )
    signoff_at = models.DateTimeField(null=True, blank=True, verbose_name=_("signoff at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("review round")
        verbose_name_plural = _("review rounds")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["need", "trigger_alert"],
                condition=models.Q(trigger_alert__isnull=False),
                name="one_review_round_per_alert",
            )
        ]
        indexes = [models.Index(fields=["need", "-created_at"], name="round_need_created")]

    def __str__(self) -> str:
        return _("round %(pk)s of need %(need)s [%(status)s]") % {
            "pk": self.pk,
            "need": self.need_id,
            "status": self.get_status_display(),
        }


class ReviewItem(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    round = models.ForeignKey(
        ReviewRound, on_delete=models.CASCADE, related_name="items", verbose_name=_("round")
    )
    position = models.PositiveIntegerField(verbose_name=_("position"))
    #: No database constraint: the log is partitioned by day on PostgreSQL (its unique keys
    #: include `day`) and retention drops whole days; the item keeps its own text and labels.
    prediction = models.ForeignKey(
        "serving.PredictionLog",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        verbose_name=_("prediction"),
    )
    item_ref = models.CharField(max_length=200, blank=True, verbose_name=_("item ref"))
    #: The channel the prediction was served on (sync texts come from the kept share).
    channel = models.CharField(max_length=8, blank=True, verbose_name=_("channel"))
    text = models.TextField(verbose_name=_("text"))
    text_hash = models.CharField(max_length=64, verbose_name=_("text hash"))
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("model version"),
    )
    predicted_labels = models.JSONField(default=list, verbose_name=_("predicted labels"))
    #: [[global key, score], ...] best first.
    scores = models.JSONField(default=list, verbose_name=_("scores"))
    stratum = models.CharField(max_length=200, verbose_name=_("stratum"))
    #: Inverse inclusion probability (review.sampling.item_weight): the stratum's estimated size
    #: over the items drawn from it, scaled by the row's own expansion (1 / text_share for a
    #: kept sync text, 1 for stream and batch).
    weight = models.FloatField(verbose_name=_("weight"))
    #: How many reviewers must answer it (2 when it is in the double-review share).
    reviews_needed = models.PositiveSmallIntegerField(default=1, verbose_name=_("reviews needed"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("review item")
        verbose_name_plural = _("review items")
        ordering = ["round", "position"]
        constraints = [
            models.UniqueConstraint(fields=["round", "text_hash"], name="uniq_review_item_text"),
            models.UniqueConstraint(fields=["round", "position"], name="uniq_review_item_pos"),
        ]

    def __str__(self) -> str:
        return _("round %(round)s #%(position)s") % {
            "round": self.round_id,
            "position": self.position,
        }


class Decision(models.TextChoices):
    CONFIRM = "confirm", _("Confirm")
    CORRECT = "correct", _("Correct")
    UNSURE = "unsure", _("Unsure")
    SKIP = "skip", _("Skip")


class ReviewVerdict(models.Model):
    """A reviewer's claim on one slot of an item, then their answer (`decision` empty = claimed).

    A skip gives the slot back to the others; the skipper never gets the item again."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    item = models.ForeignKey(
        ReviewItem, on_delete=models.CASCADE, related_name="verdicts", verbose_name=_("item")
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("reviewer"),
    )
    #: The API key's prefix when a labelling tool (not a person) answered.
    api_key_prefix = models.CharField(max_length=16, blank=True, verbose_name=_("api key prefix"))
    slot = models.PositiveSmallIntegerField(default=1, verbose_name=_("slot"))
    decision = models.CharField(
        max_length=16, choices=Decision.choices, blank=True, verbose_name=_("decision")
    )
    labels = models.JSONField(default=list, verbose_name=_("labels"))
    claimed_at = models.DateTimeField(default=timezone.now, verbose_name=_("claimed at"))
    answered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("answered at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("review verdict")
        verbose_name_plural = _("review verdicts")
        ordering = ["item", "slot", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "slot"],
                condition=~models.Q(decision="skip"),
                name="one_reviewer_per_item_slot",
            ),
            models.UniqueConstraint(
                fields=["item", "reviewer"],
                condition=models.Q(reviewer__isnull=False),
                name="one_verdict_per_item_reviewer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}/{self.slot}: {self.decision or 'claimed'}"


class CaseSource(models.TextChoices):
    REVIEW_CORRECTION = "review_correction", _("Review correction")
    REVIEW_UNSURE = "review_unsure", _("Review: unsure")
    FEEDBACK = "feedback", _("Negative feedback")
    LOW_CONFIDENCE = "low_confidence", _("Low-confidence prediction")
    REPORT = "report", _("Reported in the portal")
    API = "api", _("API")


#: Case sources whose accepted samples are recorded with source "review" (else "case").
REVIEW_SOURCES = (CaseSource.REVIEW_CORRECTION, CaseSource.REVIEW_UNSURE)


class CaseStatus(models.TextChoices):
    NEW = "new", _("New")
    TRIAGED = "triaged", _("Triaged")
    ACCEPTED = "accepted", _("Accepted as a sample")
    REJECTED = "rejected", _("Rejected")


class Cause(models.TextChoices):
    MODEL_ERROR = "model_error", _("Model error")
    DATA_CHANGE = "data_change", _("Change in the data")
    LABEL_PROBLEM = "label_problem", _("Label or taxonomy problem")
    BAD_INPUT = "bad_input", _("Bad input")


class Case(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.PROTECT, related_name="cases", verbose_name=_("need")
    )
    text = models.TextField(verbose_name=_("text"))
    text_hash = models.CharField(max_length=64, verbose_name=_("text hash"))
    item_ref = models.CharField(max_length=200, blank=True, verbose_name=_("item ref"))
    predicted_labels = models.JSONField(default=list, verbose_name=_("predicted labels"))
    scores = models.JSONField(default=list, verbose_name=_("scores"))
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("model version"),
    )
    suggested_labels = models.JSONField(default=list, verbose_name=_("suggested labels"))
    source = models.CharField(max_length=24, choices=CaseSource.choices, verbose_name=_("source"))
    source_ref = models.CharField(max_length=200, blank=True, verbose_name=_("source ref"))
    review_item = models.ForeignKey(
        ReviewItem,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cases",
        verbose_name=_("review item"),
    )
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("reported by"),
    )
    reported_by_key = models.CharField(max_length=16, blank=True, verbose_name=_("reported by key"))
    note = models.CharField(max_length=1000, blank=True, verbose_name=_("note"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    status = models.CharField(
        max_length=16, choices=CaseStatus.choices, default=CaseStatus.NEW, verbose_name=_("status")
    )
    suggested_cause = models.CharField(
        max_length=16, choices=Cause.choices, blank=True, verbose_name=_("suggested cause")
    )
    #: The measurable signals behind the suggestion (confidence, OOV share, similarity, alerts).
    signals = models.JSONField(default=dict, blank=True, verbose_name=_("signals"))
    cause = models.CharField(
        max_length=16, choices=Cause.choices, blank=True, verbose_name=_("cause")
    )
    #: The labels the case is accepted with (the suggestion unless triage changed them).
    labels = models.JSONField(default=list, verbose_name=_("labels"))
    triaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("triaged by"),
    )
    triaged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("triaged at"))
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("decided at"))
    reject_reason = models.CharField(max_length=500, blank=True, verbose_name=_("reject reason"))
    sample = models.ForeignKey(
        "registry.TrainingSample",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("sample"),
    )
    held_out = models.BooleanField(default=False, verbose_name=_("held out"))
    #: Set when the text already is a training sample with other labels: flagged, not overwritten.
    conflict_labels = models.JSONField(default=list, blank=True, verbose_name=_("conflict labels"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["need", "text_hash"], name="uniq_case_need_text")
        ]
        indexes = [models.Index(fields=["need", "status"], name="case_need_status")]

    def __str__(self) -> str:
        return _("case %(pk)s of need %(need)s [%(status)s]") % {
            "pk": self.pk,
            "need": self.need_id,
            "status": self.get_status_display(),
        }

    @property
    def has_conflict(self) -> bool:
        return bool(self.conflict_labels)
