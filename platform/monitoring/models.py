"""Result monitoring: aggregates of the prediction log, drift reports, feedback and alerts.

The raw input is `serving.PredictionLog` (one row per prediction). Everything here is derived from
it (and from feedback events) by the beat tasks on the `monitoring` queue, with unique keys so a
recomputation replaces rows instead of adding to them.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenants.querysets import TenantQuerySet


class Period(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week (ISO, Monday start)"


class BaselineSource(models.TextChoices):
    SNAPSHOT = "snapshot", "Training snapshot of the production model"
    WINDOW = "window", "A reference window of served predictions"


class NeedMonitoringConfig(models.Model):
    """Per-need monitoring settings. A need without a row uses the defaults below."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.OneToOneField(
        "tenants.Need", on_delete=models.CASCADE, related_name="monitoring_config"
    )
    baseline_source = models.CharField(
        max_length=16, choices=BaselineSource.choices, default=BaselineSource.SNAPSHOT
    )
    reference_start = models.DateField(null=True, blank=True)
    reference_end = models.DateField(null=True, blank=True, help_text="Inclusive.")
    psi_threshold = models.FloatField(default=0.2, validators=[MinValueValidator(0.0)])
    js_threshold = models.FloatField(
        default=0.1, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    chi2_alpha = models.FloatField(
        default=0.001, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    #: Minimum predictions in a period before drift/volume rules may fire (small samples are noise).
    min_volume = models.PositiveIntegerField(default=50)
    #: Rare-class rule: only labels the baseline expects at least k times in the period.
    rare_min_expected = models.PositiveIntegerField(default=5)
    rare_alpha = models.FloatField(
        default=0.01, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    #: A label "dominates" when its share is at least this and `dominance_ratio` x its baseline.
    dominance_share = models.FloatField(
        default=0.5, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    dominance_ratio = models.FloatField(default=2.0, validators=[MinValueValidator(1.0)])
    low_confidence_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Overrides the need's threshold for the low-confidence rate.",
    )
    ctr_drop_pct = models.FloatField(default=30.0, validators=[MinValueValidator(0.0)])
    negative_rise_pct = models.FloatField(default=50.0, validators=[MinValueValidator(0.0)])
    min_impressions = models.PositiveIntegerField(default=50)
    #: CTR/negative changes must also be significant (one-sided binomial test at this level).
    feedback_alpha = models.FloatField(
        default=0.001, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    volume_collapse_pct = models.FloatField(
        default=50.0, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)]
    )
    alert_webhook_url = models.URLField(blank=True, help_text="Overrides the tenant's webhook.")
    alert_email = models.EmailField(blank=True, help_text="Overrides the tenant's alert email.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = "need monitoring settings"
        verbose_name_plural = "need monitoring settings"

    def __str__(self) -> str:
        return f"monitoring of {self.need_id}"


class PredictionAggregate(models.Model):
    """Volume and confidence of one need and model version over one day or week."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="+"
    )
    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateField()
    volume = models.PositiveBigIntegerField()
    #: Sums (not means) so weeks are exact sums of days.
    confidence_sum = models.FloatField()
    low_confidence_count = models.PositiveBigIntegerField()
    no_label_count = models.PositiveBigIntegerField()
    low_confidence_threshold = models.FloatField()
    computed_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["need", "model_version", "period", "period_start"],
                name="uniq_prediction_aggregate",
            )
        ]
        indexes = [models.Index(fields=["period", "period_start"], name="predagg_period")]

    def __str__(self) -> str:
        return f"{self.need_id} {self.period} {self.period_start}: {self.volume}"

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.volume if self.volume else None


class LabelAggregate(models.Model):
    """How often one label was predicted for a need and model version over a day or week.

    Multi-class needs count the top label; multi-label needs count every assigned label.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(
        "registry.ModelVersion", on_delete=models.CASCADE, related_name="+"
    )
    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateField()
    label = models.CharField(max_length=200)
    count = models.PositiveBigIntegerField()
    score_sum = models.FloatField()
    computed_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["need", "model_version", "period", "period_start", "label"],
                name="uniq_label_aggregate",
            )
        ]
        indexes = [models.Index(fields=["need", "period", "period_start"], name="labelagg_need")]

    def __str__(self) -> str:
        return f"{self.need_id} {self.period} {self.period_start} {self.label}: {self.count}"


class DriftReport(models.Model):
    """Drift of one need's label distribution against its baseline over a day or week."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateField()
    volume = models.PositiveBigIntegerField()
    baseline_source = models.CharField(max_length=16, choices=BaselineSource.choices)
    baseline_ref = models.CharField(max_length=200, blank=True)
    #: {label: share} of the baseline and of the period (same label universe).
    baseline = models.JSONField(default=dict)
    observed = models.JSONField(default=dict)
    psi = models.FloatField(null=True)
    js_distance = models.FloatField(null=True)
    chi2_statistic = models.FloatField(null=True)
    chi2_p_value = models.FloatField(null=True)
    #: [{label, baseline_share, observed_share, delta}] sorted by |delta|, largest first.
    top_movers = models.JSONField(default=list)
    #: [{label, expected, observed, lower_bound, p_value, missing}]
    rare_underpredicted = models.JSONField(default=list)
    #: [{label, baseline_share, observed_share, ratio}]
    dominant = models.JSONField(default=list)
    computed_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["need", "period", "period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["need", "period", "period_start"], name="uniq_drift_report"
            )
        ]

    def __str__(self) -> str:
        return f"drift {self.need_id} {self.period} {self.period_start}: psi={self.psi}"


class FeedbackType(models.TextChoices):
    IMPRESSION = "impression", "Impression"
    CLICK = "click", "Click"
    NOT_INTERESTED = "not_interested", "Not interested in this tag"
    WRONG_TAG = "wrong_tag", "Wrong tag"


class FeedbackEvent(models.Model):
    """One user interaction with a tag shown by the tenant's app. Unique per (tenant, event_id)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=100)
    item_id = models.CharField(max_length=200)
    label = models.CharField(max_length=200, help_text="Global label key.")
    type = models.CharField(max_length=16, choices=FeedbackType.choices)
    at = models.DateTimeField()
    day = models.DateField()
    received_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="uniq_feedback_event")
        ]
        indexes = [models.Index(fields=["need", "day"], name="feedback_need_day")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} {self.label}"


class FeedbackAggregate(models.Model):
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateField()
    label = models.CharField(max_length=200)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    not_interested = models.PositiveBigIntegerField(default=0)
    wrong_tag = models.PositiveBigIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["need", "period", "period_start", "label"], name="uniq_feedback_aggregate"
            )
        ]

    def __str__(self) -> str:
        return f"{self.need_id} {self.period} {self.period_start} {self.label}"

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def negative_rate(self) -> float | None:
        if not self.impressions:
            return None
        return (self.not_interested + self.wrong_tag) / self.impressions


class AlertKind(models.TextChoices):
    DRIFT = "drift", "Label distribution drift"
    RARE_CLASS = "rare_class", "Rare class missing or under-predicted"
    DOMINANCE = "dominance", "A label suddenly dominates"
    CTR_DROP = "ctr_drop", "CTR falling"
    NEGATIVE_RISE = "negative_rise", "Negative feedback rising"
    VOLUME_COLLAPSE = "volume_collapse", "Volume collapsing"


class Severity(models.TextChoices):
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Alert(models.Model):
    """One finding. At most one alert per (need, kind, period, period start): recomputing a period
    updates the open alert's evidence instead of raising a second one."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.ForeignKey("tenants.Need", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=24, choices=AlertKind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateField()
    message = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_error = models.CharField(max_length=500, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["need", "kind", "period", "period_start"], name="uniq_alert_per_period"
            )
        ]
        indexes = [models.Index(fields=["tenant", "acknowledged_at"], name="alert_tenant_open")]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.kind} {self.need_id} {self.period} {self.period_start}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class MonitoringDashboard(Alert):
    """Proxy used only to put the all-needs dashboard on the admin index (see admin.py)."""

    class Meta:
        proxy = True
        verbose_name = "dashboard (all needs)"
        verbose_name_plural = "dashboard (all needs)"
