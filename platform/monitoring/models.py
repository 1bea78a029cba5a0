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
from django.utils.translation import gettext_lazy as _

from core.querysets import TenantQuerySet


class Period(models.TextChoices):
    DAY = "day", _("Day")
    WEEK = "week", _("Week (ISO, Monday start)")


class BaselineSource(models.TextChoices):
    SNAPSHOT = "snapshot", _("Training snapshot of the production model")
    WINDOW = "window", _("A reference window of served predictions")


class NeedMonitoringConfig(models.Model):
    """Per-need monitoring settings. A need without a row uses the defaults below."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.OneToOneField(
        "tenants.Need",
        on_delete=models.CASCADE,
        related_name="monitoring_config",
        verbose_name=_("need"),
    )
    baseline_source = models.CharField(
        max_length=16,
        choices=BaselineSource.choices,
        default=BaselineSource.SNAPSHOT,
        verbose_name=_("baseline source"),
    )
    reference_start = models.DateField(null=True, blank=True, verbose_name=_("reference start"))
    reference_end = models.DateField(
        null=True, blank=True, help_text=_("Inclusive."), verbose_name=_("reference end")
    )
    # Every rule's thresholds, with their defaults (docs/monitoring.md explains each one).
    # -- drift of the whole label distribution against the baseline (effect sizes, no test)
    psi_threshold = models.FloatField(
        default=0.2, validators=[MinValueValidator(0.0)], verbose_name=_("psi threshold")
    )
    js_threshold = models.FloatField(
        default=0.1,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("js threshold"),
    )
    chi2_alpha = models.FloatField(
        default=0.001,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("chi2 alpha"),
    )
    #: Minimum predictions in a day before drift and volume rules decide; below it the day is
    #: "insufficient data" (neither "no drift" nor an alert).
    min_volume = models.PositiveIntegerField(default=200, verbose_name=_("min volume"))
    # -- rare class: labels whose BASELINE share is below `rare_share_max`
    rare_share_max = models.FloatField(
        default=0.05,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("A label is rare when its baseline share is below this."),
        verbose_name=_("rare share max"),
    )
    #: Only decide when the baseline expects at least this many predictions of the label in the
    #: evidence window (with fewer, even 0 observed is not evidence).
    rare_min_expected = models.PositiveIntegerField(default=10, verbose_name=_("rare min expected"))
    rare_alpha = models.FloatField(
        default=0.01,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Significance level after the correction over labels and days."),
        verbose_name=_("rare alpha"),
    )
    #: ...and only when it appears at most this fraction of the expected count.
    rare_max_ratio = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("rare max ratio"),
    )
    # -- label share: a non-rare label's share against the reference window of served traffic
    share_ratio = models.FloatField(
        default=1.25,
        validators=[MinValueValidator(1.0)],
        help_text=_("Alert when a label's share is this many times higher, or lower, than usual."),
        verbose_name=_("share ratio"),
    )
    share_alpha = models.FloatField(
        default=0.01,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Significance level after the correction over labels and days."),
        verbose_name=_("share alpha"),
    )
    share_trend_days = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(7)],
        help_text=_(
            "Evidence windows the label-share trend test weighs 1, 2, …, N against the "
            "reference (Cochran-Armitage), so a shift that persists or grows adds up over days; "
            "1 tests the latest window alone."
        ),
        verbose_name=_("share trend days"),
    )
    #: Legacy "dominance" finding: still computed in drift reports, no longer an alert rule
    #: (the label-share rule covers it).
    dominance_share = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("dominance share"),
    )
    dominance_ratio = models.FloatField(
        default=2.0, validators=[MinValueValidator(1.0)], verbose_name=_("dominance ratio")
    )
    low_confidence_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Overrides the need's threshold for the low-confidence rate."),
        verbose_name=_("low confidence threshold"),
    )
    # -- feedback per label, against the reference window
    ctr_drop_pct = models.FloatField(
        default=30.0, validators=[MinValueValidator(0.0)], verbose_name=_("ctr drop pct")
    )
    negative_rise_pct = models.FloatField(
        default=50.0, validators=[MinValueValidator(0.0)], verbose_name=_("negative rise pct")
    )
    #: Impressions of the label in the evidence window (and in the reference) before deciding.
    min_impressions = models.PositiveIntegerField(default=100, verbose_name=_("min impressions"))
    feedback_alpha = models.FloatField(
        default=0.01,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Significance level after the correction over labels and days."),
        verbose_name=_("feedback alpha"),
    )
    # -- volume
    volume_collapse_pct = models.FloatField(
        default=50.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(100.0)],
        verbose_name=_("volume collapse pct"),
    )
    # -- windows, multiple comparisons and the incident life cycle
    evidence_days = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(14)],
        help_text=_(
            "Days pooled for the label-share and rare-class tests (the latest day and the "
            "ones before it)."
        ),
        verbose_name=_("evidence days"),
    )
    reference_days = models.PositiveSmallIntegerField(
        default=14,
        validators=[MinValueValidator(3), MaxValueValidator(90)],
        help_text=_("Days before the evidence window that define 'usual' for shares and feedback."),
        verbose_name=_("reference days"),
    )
    feedback_evidence_days = models.PositiveSmallIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(14)],
        help_text=_("Days pooled for the CTR and negative-feedback tests."),
        verbose_name=_("feedback evidence days"),
    )
    correction = models.CharField(
        max_length=8,
        choices=[
            ("holm", _("Holm (family-wise error)")),
            ("fdr_bh", _("Benjamini-Hochberg (false-discovery rate)")),
        ],
        default="holm",
        help_text=_("Multiple-comparison correction over labels and days (statsmodels)."),
        verbose_name=_("correction"),
    )
    correction_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(60)],
        help_text=_("Days whose tests form one family for the multiple-comparison correction."),
        verbose_name=_("correction days"),
    )
    escalate_after_days = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text=_("An alert active this many days in a row becomes critical."),
        verbose_name=_("escalate after days"),
    )
    resolve_after_clean_days = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text=_("An alert resolves itself after this many clean days in a row."),
        verbose_name=_("resolve after clean days"),
    )
    alert_webhook_url = models.URLField(
        blank=True,
        help_text=_("Overrides the tenant's webhook."),
        verbose_name=_("alert webhook url"),
    )
    alert_email = models.EmailField(
        blank=True,
        help_text=_("Overrides the tenant's alert email."),
        verbose_name=_("alert email"),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("need monitoring settings")
        verbose_name_plural = _("need monitoring settings")

    def __str__(self) -> str:
        return _("monitoring of need %(need)s") % {"need": self.need_id}

    @property
    def share_trend_span(self) -> int:
        """Days the label-share trend test looks at (its windows are `evidence_days` long)."""
        return self.share_trend_days * self.evidence_days


class PredictionAggregate(models.Model):
    """Volume and confidence of one need and model version over one day or week."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("model version"),
    )
    period = models.CharField(max_length=8, choices=Period.choices, verbose_name=_("period"))
    period_start = models.DateField(verbose_name=_("period start"))
    volume = models.PositiveBigIntegerField(verbose_name=_("volume"))
    #: Sums (not means) so weeks are exact sums of days.
    confidence_sum = models.FloatField(verbose_name=_("confidence sum"))
    low_confidence_count = models.PositiveBigIntegerField(verbose_name=_("low confidence count"))
    no_label_count = models.PositiveBigIntegerField(verbose_name=_("no label count"))
    low_confidence_threshold = models.FloatField(verbose_name=_("low confidence threshold"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("prediction aggregate")
        verbose_name_plural = _("prediction aggregates")
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

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("model version"),
    )
    period = models.CharField(max_length=8, choices=Period.choices, verbose_name=_("period"))
    period_start = models.DateField(verbose_name=_("period start"))
    label = models.CharField(max_length=200, verbose_name=_("label"))
    count = models.PositiveBigIntegerField(verbose_name=_("count"))
    score_sum = models.FloatField(verbose_name=_("score sum"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("label aggregate")
        verbose_name_plural = _("label aggregates")
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

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    period = models.CharField(max_length=8, choices=Period.choices, verbose_name=_("period"))
    period_start = models.DateField(verbose_name=_("period start"))
    volume = models.PositiveBigIntegerField(verbose_name=_("volume"))
    baseline_source = models.CharField(
        max_length=16, choices=BaselineSource.choices, verbose_name=_("baseline source")
    )
    baseline_ref = models.CharField(max_length=200, blank=True, verbose_name=_("baseline ref"))
    #: {label: share} of the baseline and of the period (same label universe).
    baseline = models.JSONField(default=dict, verbose_name=_("baseline"))
    observed = models.JSONField(default=dict, verbose_name=_("observed"))
    psi = models.FloatField(null=True, verbose_name=_("psi"))
    js_distance = models.FloatField(null=True, verbose_name=_("js distance"))
    chi2_statistic = models.FloatField(null=True, verbose_name=_("chi2 statistic"))
    chi2_p_value = models.FloatField(null=True, verbose_name=_("chi2 p value"))
    #: [{label, baseline_share, observed_share, delta}] sorted by |delta|, largest first.
    top_movers = models.JSONField(default=list, verbose_name=_("top movers"))
    #: [{label, expected, observed, lower_bound, p_value, missing}]
    rare_underpredicted = models.JSONField(default=list, verbose_name=_("rare underpredicted"))
    #: [{label, baseline_share, observed_share, ratio}]
    dominant = models.JSONField(default=list, verbose_name=_("dominant"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("drift report")
        verbose_name_plural = _("drift reports")
        ordering = ["need", "period", "period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["need", "period", "period_start"], name="uniq_drift_report"
            )
        ]

    def __str__(self) -> str:
        return f"drift {self.need_id} {self.period} {self.period_start}: psi={self.psi}"


class FeedbackType(models.TextChoices):
    IMPRESSION = "impression", _("Impression")
    CLICK = "click", _("Click")
    NOT_INTERESTED = "not_interested", _("Not interested in this tag")
    WRONG_TAG = "wrong_tag", _("Wrong tag")


class FeedbackEvent(models.Model):
    """One user interaction with a tag shown by the tenant's app. Unique per (tenant, event_id)."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    event_id = models.CharField(max_length=100, verbose_name=_("event id"))
    item_id = models.CharField(max_length=200, verbose_name=_("item id"))
    label = models.CharField(
        max_length=200, help_text=_("Global label key."), verbose_name=_("label")
    )
    type = models.CharField(max_length=16, choices=FeedbackType.choices, verbose_name=_("type"))
    at = models.DateTimeField(verbose_name=_("at"))
    day = models.DateField(verbose_name=_("day"))
    received_at = models.DateTimeField(default=timezone.now, verbose_name=_("received at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("feedback event")
        verbose_name_plural = _("feedback events")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="uniq_feedback_event")
        ]
        indexes = [models.Index(fields=["need", "day"], name="feedback_need_day")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} {self.label}"


class FeedbackAggregate(models.Model):
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    period = models.CharField(max_length=8, choices=Period.choices, verbose_name=_("period"))
    period_start = models.DateField(verbose_name=_("period start"))
    label = models.CharField(max_length=200, verbose_name=_("label"))
    impressions = models.PositiveBigIntegerField(default=0, verbose_name=_("impressions"))
    clicks = models.PositiveBigIntegerField(default=0, verbose_name=_("clicks"))
    not_interested = models.PositiveBigIntegerField(default=0, verbose_name=_("not interested"))
    wrong_tag = models.PositiveBigIntegerField(default=0, verbose_name=_("wrong tag"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("feedback aggregate")
        verbose_name_plural = _("feedback aggregates")
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
    DRIFT = "drift", _("Label distribution drift")
    RARE_CLASS = "rare_class", _("Rare class missing or under-predicted")
    LABEL_SHARE = "label_share", _("A label's share changed")
    DOMINANCE = "dominance", _("A label suddenly dominates (legacy)")
    CTR_DROP = "ctr_drop", _("CTR falling")
    NEGATIVE_RISE = "negative_rise", _("Negative feedback rising")
    VOLUME_COLLAPSE = "volume_collapse", _("Volume collapsing")
    #: Raised by the review app (above monitoring) when a review round's interval is below target.
    REVIEW_ACCURACY = "review_accuracy", _("Reviewed accuracy below target")


#: Rules evaluated every day (dominance is legacy: kept for old rows only).
ACTIVE_RULES = (
    AlertKind.DRIFT,
    AlertKind.RARE_CLASS,
    AlertKind.LABEL_SHARE,
    AlertKind.CTR_DROP,
    AlertKind.NEGATIVE_RISE,
    AlertKind.VOLUME_COLLAPSE,
)


class CheckStatus(models.TextChoices):
    OK = "ok", _("Clean")
    FLAGGED = "flagged", _("Flagged")
    INSUFFICIENT = "insufficient", _("Insufficient data")


class RuleCheck(models.Model):
    """The outcome of one rule for one need, day and label ("" for need-wide rules).

    Kept for every day, clean or not: the multiple-comparison family of a day is its own p-values
    and those of the days before it, alerts count their clean days from here, and the evidence
    sparklines are drawn from here.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    day = models.DateField(verbose_name=_("day"))
    rule = models.CharField(max_length=24, choices=AlertKind.choices, verbose_name=_("rule"))
    label = models.CharField(max_length=200, blank=True, verbose_name=_("label"))
    status = models.CharField(max_length=16, choices=CheckStatus.choices, verbose_name=_("status"))
    #: The rule's measure (share, CTR, negative rate, PSI, volume) and what it is compared with.
    value = models.FloatField(null=True, verbose_name=_("value"))
    reference = models.FloatField(null=True, verbose_name=_("reference"))
    observed = models.FloatField(null=True, verbose_name=_("observed"))
    expected = models.FloatField(null=True, verbose_name=_("expected"))
    sample = models.PositiveBigIntegerField(default=0, verbose_name=_("sample"))
    p_value = models.FloatField(null=True, verbose_name=_("p value"))
    adjusted_p = models.FloatField(null=True, verbose_name=_("adjusted p"))
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("detail"))
    computed_at = models.DateTimeField(default=timezone.now, verbose_name=_("computed at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("rule check")
        verbose_name_plural = _("rule checks")
        constraints = [
            models.UniqueConstraint(fields=["need", "day", "rule", "label"], name="uniq_rule_check")
        ]
        indexes = [models.Index(fields=["need", "rule", "day"], name="rulecheck_need_rule_day")]

    def __str__(self) -> str:
        return f"{self.need_id} {self.day} {self.rule} {self.label}: {self.status}"


class Severity(models.TextChoices):
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class Alert(models.Model):
    """One incident: a rule firing for a need (and label), from its first day to its resolution.

    At most one OPEN alert per (need, rule, label). Each new day's evidence updates it (last seen,
    days active, worst value); it becomes critical when it persists, resolves itself after clean
    days, and can be acknowledged or snoozed with a note. It notifies when it opens and when it
    escalates, never daily.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        "tenants.Need", on_delete=models.CASCADE, related_name="+", verbose_name=_("need")
    )
    kind = models.CharField(max_length=24, choices=AlertKind.choices, verbose_name=_("kind"))
    label = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("Global label key, if any."),
        verbose_name=_("label"),
    )
    status = models.CharField(
        max_length=16,
        choices=AlertStatus.choices,
        default=AlertStatus.OPEN,
        verbose_name=_("status"),
    )
    severity = models.CharField(max_length=16, choices=Severity.choices, verbose_name=_("severity"))
    first_seen = models.DateField(verbose_name=_("first seen"))
    last_seen = models.DateField(verbose_name=_("last seen"))
    #: Days on which the rule fired, and the current run of them (escalation counts the run).
    days_active = models.PositiveIntegerField(default=1, verbose_name=_("days active"))
    consecutive_days = models.PositiveIntegerField(default=1, verbose_name=_("consecutive days"))
    #: Clean days in a row since it last fired (resolution counts these).
    clean_days = models.PositiveIntegerField(default=0, verbose_name=_("clean days"))
    worst_value = models.FloatField(null=True, verbose_name=_("worst value"))
    worst_day = models.DateField(null=True, verbose_name=_("worst day"))
    message = models.CharField(max_length=500, verbose_name=_("message"))
    evidence = models.JSONField(default=dict, verbose_name=_("evidence"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    updated_at = models.DateTimeField(default=timezone.now, verbose_name=_("updated at"))
    escalated_at = models.DateTimeField(null=True, blank=True, verbose_name=_("escalated at"))
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    acknowledged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("acknowledged at"))
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    ack_note = models.CharField(max_length=500, blank=True, verbose_name=_("ack note"))
    snoozed_until = models.DateField(null=True, blank=True, verbose_name=_("snoozed until"))
    snooze_note = models.CharField(max_length=500, blank=True, verbose_name=_("snooze note"))
    #: "opened" / "escalated" while a notification is due; cleared by the delivery.
    notification_pending = models.CharField(
        max_length=40, blank=True, verbose_name=_("notification pending")
    )
    notifications_sent = models.PositiveIntegerField(
        default=0, verbose_name=_("notifications sent")
    )
    delivered_at = models.DateTimeField(null=True, blank=True, verbose_name=_("delivered at"))
    delivery_error = models.CharField(max_length=500, blank=True, verbose_name=_("delivery error"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["need", "kind", "label"],
                condition=models.Q(status="open"),
                name="one_open_alert_per_rule_label",
            )
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="alert_tenant_status")]

    def __str__(self) -> str:
        label = f" {self.label}" if self.label else ""
        return f"[{self.get_severity_display()}] {self.get_kind_display()}{label} {self.need_id} {self.first_seen}..{self.last_seen}"

    @property
    def is_open(self) -> bool:
        return self.status == AlertStatus.OPEN

    @property
    def is_acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def is_snoozed(self, today=None) -> bool:
        today = today or timezone.now().date()
        return self.snoozed_until is not None and self.snoozed_until >= today


class MonitoringDashboard(Alert):
    """Proxy used only to put the all-needs dashboard on the admin index (see admin.py)."""

    class Meta:
        proxy = True
        verbose_name = _("dashboard (all needs)")
        verbose_name_plural = _("dashboard (all needs)")
