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

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.OneToOneField(
        "tenants.Need", on_delete=models.CASCADE, related_name="review_config"
    )
    accuracy_target = models.FloatField(
        default=0.9, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    sample_size = models.PositiveIntegerField(
        default=100, validators=[MinValueValidator(1), MaxValueValidator(5000)]
    )
    window_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    #: Each stratum gets at least this many items (when it has them): rare labels are oversampled.
    min_per_label = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    double_review_share = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    #: Share of accepted cases kept out of training (the "fresh set"), chosen by text hash.
    held_out_share = models.FloatField(
        default=0.2, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    #: Share of low-confidence predictions that become cases (chosen by text hash).
    low_confidence_case_share = models.FloatField(
        default=0.05, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    #: Share of logged sync predictions whose text is kept for review (0: none, the default:
    #: sync callers never agreed to storage of their texts, so a need's owner opts in).
    sync_review_share = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    #: Days a kept sync text stays in the prediction log before the purge clears it (capped
    #: platform-wide by SYNC_REVIEW_TEXT_MAX_DAYS).
    sync_text_retention_days = models.PositiveSmallIntegerField(
        default=14, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    auto_round_on_alert = models.BooleanField(default=True)
    #: "minute hour day month weekday" (UTC); empty: no scheduled rounds.
    schedule_crontab = models.CharField(max_length=100, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    #: Who signs off rounds for the business (a tenant admin may always sign off).
    business_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: Collection cursors: the last feedback event / prediction log row already turned into cases.
    feedback_cursor = models.BigIntegerField(default=0)
    predlog_cursor = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return f"review config of {self.need_id}"


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
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.PROTECT, related_name="review_rounds")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    #: The monitoring alert that started it (trigger "alert"): one round per alert.
    trigger_alert = models.ForeignKey(
        "monitoring.Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=RoundStatus.choices, default=RoundStatus.PENDING
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    sample_size = models.PositiveIntegerField()
    double_review_share = models.FloatField(default=0.0)
    #: The model version most items were predicted by (compared with its offline accuracy).
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    #: Predictions in the window that could be sampled, and per stratum {label: [size, drawn]}.
    population = models.PositiveIntegerField(default=0)
    strata = models.JSONField(default=dict, blank=True)
    #: The estimate when the round was closed (the live one is computed from the verdicts).
    result = models.JSONField(default=dict, blank=True)
    accuracy_target = models.FloatField(default=0.9)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sampled_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    signoff = models.CharField(max_length=16, choices=SignOff.choices, blank=True)
    signoff_note = models.CharField(max_length=1000, blank=True)
    signoff_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signoff_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
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
        return f"round {self.pk} of {self.need_id} [{self.status}]"


class ReviewItem(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    round = models.ForeignKey(ReviewRound, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    #: No database constraint: the log is partitioned by day on PostgreSQL (its unique keys
    #: include `day`) and retention drops whole days; the item keeps its own text and labels.
    prediction = models.ForeignKey(
        "serving.PredictionLog",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    item_ref = models.CharField(max_length=200, blank=True)
    #: The channel the prediction was served on (sync texts come from the kept share).
    channel = models.CharField(max_length=8, blank=True)
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.PROTECT, related_name="+"
    )
    predicted_labels = models.JSONField(default=list)
    #: [[global key, score], ...] best first.
    scores = models.JSONField(default=list)
    stratum = models.CharField(max_length=200)
    #: Inverse inclusion probability (review.sampling.item_weight): the stratum's estimated size
    #: over the items drawn from it, scaled by the row's own expansion (1 / text_share for a
    #: kept sync text, 1 for stream and batch).
    weight = models.FloatField()
    #: How many reviewers must answer it (2 when it is in the double-review share).
    reviews_needed = models.PositiveSmallIntegerField(default=1)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["round", "position"]
        constraints = [
            models.UniqueConstraint(fields=["round", "text_hash"], name="uniq_review_item_text"),
            models.UniqueConstraint(fields=["round", "position"], name="uniq_review_item_pos"),
        ]

    def __str__(self) -> str:
        return f"round {self.round_id} #{self.position}"


class Decision(models.TextChoices):
    CONFIRM = "confirm", _("Confirm")
    CORRECT = "correct", _("Correct")
    UNSURE = "unsure", _("Unsure")
    SKIP = "skip", _("Skip")


class ReviewVerdict(models.Model):
    """A reviewer's claim on one slot of an item, then their answer (`decision` empty = claimed).

    A skip gives the slot back to the others; the skipper never gets the item again."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="verdicts")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: The API key's prefix when a labelling tool (not a person) answered.
    api_key_prefix = models.CharField(max_length=16, blank=True)
    slot = models.PositiveSmallIntegerField(default=1)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    labels = models.JSONField(default=list)
    claimed_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
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
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.PROTECT, related_name="cases")
    text = models.TextField()
    text_hash = models.CharField(max_length=64)
    item_ref = models.CharField(max_length=200, blank=True)
    predicted_labels = models.JSONField(default=list)
    scores = models.JSONField(default=list)
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    suggested_labels = models.JSONField(default=list)
    source = models.CharField(max_length=24, choices=CaseSource.choices)
    source_ref = models.CharField(max_length=200, blank=True)
    review_item = models.ForeignKey(
        ReviewItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases"
    )
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reported_by_key = models.CharField(max_length=16, blank=True)
    note = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=CaseStatus.choices, default=CaseStatus.NEW)
    suggested_cause = models.CharField(max_length=16, choices=Cause.choices, blank=True)
    #: The measurable signals behind the suggestion (confidence, OOV share, similarity, alerts).
    signals = models.JSONField(default=dict, blank=True)
    cause = models.CharField(max_length=16, choices=Cause.choices, blank=True)
    #: The labels the case is accepted with (the suggestion unless triage changed them).
    labels = models.JSONField(default=list)
    triaged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    triaged_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField(max_length=500, blank=True)
    sample = models.ForeignKey(
        "registry.TrainingSample",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    held_out = models.BooleanField(default=False)
    #: Set when the text already is a training sample with other labels: flagged, not overwritten.
    conflict_labels = models.JSONField(default=list, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["need", "text_hash"], name="uniq_case_need_text")
        ]
        indexes = [models.Index(fields=["need", "status"], name="case_need_status")]

    def __str__(self) -> str:
        return f"case {self.pk} of {self.need_id} [{self.status}]"

    @property
    def has_conflict(self) -> bool:
        return bool(self.conflict_labels)
