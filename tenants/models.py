from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.localtime import default_time_zone, validate_time_zone
from core.querysets import TenantQuerySet

# The tenancy vocabulary lives in core (below every app); apps keep reading it from here too.
from core.roles import ApiKeyScope, Role, role_outranks  # noqa: F401


def default_language() -> str:
    return settings.TENANT_DEFAULT_LANGUAGE


class Tenant(models.Model):
    """A business unit. Owns needs, keys, data and (optionally) its own models."""

    slug = models.SlugField(max_length=50, unique=True, verbose_name=_("slug"))
    name = models.CharField(max_length=200, verbose_name=_("name"))
    contact_email = models.EmailField(blank=True, verbose_name=_("contact email"))
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    quota_requests_per_minute = models.PositiveIntegerField(
        default=600, verbose_name=_("quota requests per minute")
    )
    quota_max_batch_items = models.PositiveIntegerField(
        default=100_000, verbose_name=_("quota max batch items")
    )
    webhook_url = models.URLField(
        blank=True, help_text=_("Where streamed results are POSTed."), verbose_name=_("webhook url")
    )
    webhook_secret = models.CharField(
        max_length=128,
        blank=True,
        help_text=_("HMAC-SHA256 key."),
        verbose_name=_("webhook secret"),
    )
    alert_email = models.EmailField(blank=True, verbose_name=_("alert email"))
    alert_webhook_url = models.URLField(blank=True, verbose_name=_("alert webhook url"))
    #: IANA zone of the unit's days and weeks (monitoring windows, alert days, scheduled batches)
    #: and of every date it is shown. Changing it re-cuts the stored days (monitoring resync).
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default=default_time_zone,
        validators=[validate_time_zone],
        help_text=_("IANA name, e.g. Asia/Shanghai or UTC."),
    )
    #: The language workers write to the unit in when no reader's own choice is known: the human
    #: `summary` of alert webhooks (machine fields never change) and alert e-mails to an address
    #: that is no portal user's. A code of settings.LANGUAGES; the tenant's admins set it.
    language = models.CharField(
        max_length=16,
        choices=settings.LANGUAGES,
        default=default_language,
        verbose_name=_("language"),
        help_text=_("Of alert summaries in webhooks, and of alert e-mails to non-users."),
    )
    #: The zone the stored prediction/feedback days and aggregates were cut in. Differs from
    #: `time_zone` only until monitoring has re-cut them (monitoring.services.tenant_days_resync).
    days_time_zone = models.CharField(
        max_length=64, blank=True, default="", verbose_name=_("days time zone")
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class UserProfile(models.Model):
    """A person's portal preferences (not a tenant's: one per user, whatever their tenants)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="profile",
        verbose_name=_("user"),
    )
    #: A code of settings.LANGUAGES, or "" to follow the browser's Accept-Language.
    language = models.CharField(_("language"), max_length=16, blank=True, default="")

    class Meta:
        verbose_name = _("user profile")
        verbose_name_plural = _("user profiles")

    def __str__(self) -> str:
        return "{} ({})".format(self.user, self.language or _("browser language"))


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("tenant")
    )
    role = models.CharField(
        max_length=16, choices=Role.choices, default=Role.VIEWER, verbose_name=_("role")
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    objects = TenantQuerySet.as_manager()

    #: True on the unsaved, read-only stand-in that platform staff get for a tenant they are not
    #: a member of (portal support mode, tenants.memberships.support_memberships_for).
    support = False

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant.slug} ({self.get_role_display()})"

    def has_role(self, role: str) -> bool:
        return role_outranks(self.role, role)


class ApiKey(models.Model):
    """A tenant's API key. Only the SHA-256 of the secret is stored; the prefix finds the row."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("tenant")
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    prefix = models.CharField(max_length=16, unique=True, verbose_name=_("prefix"))
    hashed_key = models.CharField(max_length=64, verbose_name=_("hashed key"))
    scopes = models.JSONField(default=list, verbose_name=_("scopes"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used at"))
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    revoked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("revoked at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("api key")
        verbose_name_plural = _("api keys")
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_apikey_name")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant.slug}: {self.name})"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Delivery(models.TextChoices):
    SYNC = "sync", _("Online (synchronous)")
    STREAM = "stream", _("Online (stream)")
    BATCH = "batch", _("Batch")


class NeedStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    APPROVED = "approved", _("Approved")
    LIVE = "live", _("Live")
    RETIRED = "retired", _("Retired")


class Execution(models.TextChoices):
    INLINE = "inline", _("In the web process (light models)")
    QUEUE = "queue", _("On the online Celery queue (heavy models)")


#: What need_create / need_update accept and the API shows of a need (besides slug, status and
#: the read-only bookkeeping): one list for the service, the serializers and the forms.
NEED_EDITABLE_FIELDS = (
    "name",
    "goal",
    "label_set",
    "requested_labels",
    "label_mapping",
    "threshold",
    "per_label_thresholds",
    "top_k",
    "delivery",
    "latency_budget_ms",
    "size_budget_kb",
    "target_requests_per_s",
    "execution",
)


def _labels_prefetch() -> Prefetch:
    # Scoped by the needs it is prefetched for (never a cross-tenant read).
    return Prefetch(
        "labels",
        queryset=NeedLabel.objects.dangerously_unscoped()
        .select_related("label")
        .order_by("position", "pk"),
    )


class NeedQuerySet(TenantQuerySet):
    def with_labels(self):
        """Read the needs' label rows (and their labels) in one more query, whatever the count."""
        return self.prefetch_related(_labels_prefetch())


class Need(models.Model):
    """A tenant's registered tagging requirement against the company taxonomy."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="needs", verbose_name=_("tenant")
    )
    slug = models.SlugField(max_length=80, verbose_name=_("slug"))
    name = models.CharField(max_length=200, verbose_name=_("name"))
    goal = models.CharField(
        max_length=300,
        blank=True,
        help_text=_("The business goal, in a few words."),
        verbose_name=_("goal"),
    )
    label_set = models.ForeignKey(
        "taxonomy.LabelSet",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="needs",
        verbose_name=_("label set"),
    )
    # The labels asked for, the tenant's own names and per-label thresholds are NeedLabel rows
    # (`need.labels`); the properties below give them the API's shapes.
    threshold = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("threshold"),
    )
    top_k = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], verbose_name=_("top k")
    )
    delivery = models.JSONField(default=list, blank=True, verbose_name=_("delivery"))
    latency_budget_ms = models.FloatField(
        null=True, blank=True, help_text=_("p99, milliseconds"), verbose_name=_("latency budget ms")
    )
    size_budget_kb = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("size budget kb")
    )
    #: The request rate the need expects at peak: optimisation runs plan capacity for it.
    target_requests_per_s = models.FloatField(
        null=True,
        blank=True,
        help_text=_("Expected peak requests per second (capacity planning)."),
        verbose_name=_("target requests per s"),
    )
    status = models.CharField(
        max_length=16,
        choices=NeedStatus.choices,
        default=NeedStatus.REQUESTED,
        verbose_name=_("status"),
    )
    #: The registered model serving this need (its own, or a shared one it subscribed to).
    model = models.ForeignKey(
        "registry.RegisteredModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="needs",
        verbose_name=_("model"),
    )
    model_alias = models.CharField(
        max_length=32, default="production", verbose_name=_("model alias")
    )
    #: When the tenant last chose (or confirmed) `model`: a model promoted later for the same
    #: label set is offered to the need ("follow the new model?"), never silently ignored.
    model_chosen_at = models.DateTimeField(null=True, blank=True, verbose_name=_("model chosen at"))
    execution = models.CharField(
        max_length=16,
        choices=Execution.choices,
        default=Execution.INLINE,
        verbose_name=_("execution"),
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
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("approved at"))

    objects = NeedQuerySet.as_manager()

    class Meta:
        verbose_name = _("need")
        verbose_name_plural = _("needs")
        ordering = ["tenant__slug", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="uniq_need_slug"),
            # The target of NeedLabel's (need, tenant) foreign key on PostgreSQL (migration 0003).
            models.UniqueConstraint(fields=["id", "tenant"], name="uniq_need_id_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"

    # --- the label rows in the API's shapes -------------------------------------------------
    def label_rows(self) -> list[NeedLabel]:
        """This need's NeedLabel rows (label joined), in order. Uses `with_labels()`'s prefetch;
        without it the first call reads them in one query and keeps them on the instance."""
        if self.pk is None:
            return []
        if "labels" not in getattr(self, "_prefetched_objects_cache", {}):
            prefetch_related_objects([self], _labels_prefetch())
        return list(self.labels.all())

    def forget_label_rows(self) -> None:
        """Drop the rows read by `label_rows()` (after a write replaced them)."""
        getattr(self, "_prefetched_objects_cache", {}).pop("labels", None)

    @property
    def requested_labels(self) -> list[str]:
        """Label keys asked for when no existing label set fits (a request for a new one)."""
        return [row.label.key for row in self.label_rows() if row.requested]

    def wanted_label_keys(self) -> list[str]:
        """The labels this need is about: those requested, else its label set's current ones
        (what reuse suggestions and related lessons are looked up for)."""
        if self.requested_labels:
            return self.requested_labels
        revision = self.label_set.current_revision if self.label_set else None
        return revision.label_keys() if revision else []

    @property
    def label_mapping(self) -> dict[str, str]:
        """The tenant's own label names -> global label keys, e.g. {"Sport": "news.sport"}."""
        return {row.name: row.label.key for row in self.label_rows() if row.name}

    @property
    def per_label_thresholds(self) -> dict[str, float]:
        """Global label key -> the threshold overriding the need's for that label."""
        return {
            row.label.key: row.threshold for row in self.label_rows() if row.threshold is not None
        }


class NeedLabel(models.Model):
    """One label a need refers to: asked for (`requested`), named by the tenant (`name`), and/or
    with its own `threshold`. The database keeps these consistent: one row per label and at most
    one label per name within a need, thresholds in [0, 1], and a label in use cannot be deleted
    (PROTECT). `tenant` is the need's tenant (a composite foreign key on PostgreSQL says so)."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", verbose_name=_("tenant")
    )
    need = models.ForeignKey(
        Need, on_delete=models.CASCADE, related_name="labels", verbose_name=_("need")
    )
    label = models.ForeignKey(
        "taxonomy.Label",
        on_delete=models.PROTECT,
        related_name="need_labels",
        verbose_name=_("label"),
    )
    #: The tenant's own name for the label; empty when it has none.
    name = models.CharField(max_length=200, blank=True, verbose_name=_("name"))
    #: Overrides the need's threshold for this label; NULL when it does not.
    threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        verbose_name=_("threshold"),
    )
    #: One of the labels asked for when the need has no label set (a request for a new one).
    requested = models.BooleanField(default=False, verbose_name=_("requested"))
    #: Requested labels in the order asked, then the others in the order given.
    position = models.PositiveIntegerField(default=0, verbose_name=_("position"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("need label")
        verbose_name_plural = _("need labels")
        ordering = ["need", "position"]
        constraints = [
            models.UniqueConstraint(fields=["need", "label"], name="uniq_need_label"),
            models.UniqueConstraint(
                fields=["need", "name"],
                condition=~models.Q(name=""),
                name="uniq_need_label_name",
            ),
            models.CheckConstraint(
                condition=models.Q(threshold__isnull=True)
                | models.Q(threshold__gte=0.0, threshold__lte=1.0),
                name="need_label_threshold_0_1",
            ),
            # A row that is not requested, named or thresholded says nothing: none is kept.
            models.CheckConstraint(
                condition=models.Q(requested=True)
                | ~models.Q(name="")
                | models.Q(threshold__isnull=False),
                name="need_label_says_something",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.need_id}: {self.label_id} {self.name!r}"


class _ThroughNeedQuerySet(TenantQuerySet):
    tenant_field = "need__tenant"


class NeedStatusChange(models.Model):
    """Append-only audit of a need's lifecycle: who moved it, when, from what to what, and why."""

    need = models.ForeignKey(
        Need, on_delete=models.CASCADE, related_name="status_changes", verbose_name=_("need")
    )
    from_status = models.CharField(
        max_length=16, choices=NeedStatus.choices, verbose_name=_("from status")
    )
    to_status = models.CharField(
        max_length=16, choices=NeedStatus.choices, verbose_name=_("to status")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
    )
    #: The API key's prefix when a key (not a person) made the change.
    api_key_prefix = models.CharField(max_length=16, blank=True, verbose_name=_("api key prefix"))
    reason = models.CharField(max_length=500, blank=True, verbose_name=_("reason"))
    at = models.DateTimeField(default=timezone.now, verbose_name=_("at"))

    objects = _ThroughNeedQuerySet.as_manager()

    class Meta:
        verbose_name = _("need status change")
        verbose_name_plural = _("need status changes")
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["need", "-at"], name="need_status_change_at")]

    def __str__(self) -> str:
        return f"{self.need}: {self.from_status} -> {self.to_status}"


class SupportAccess(models.Model):
    """Audit of platform staff reading a tenant's portal in read-only support mode."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="support_accesses",
        verbose_name=_("user"),
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="support_accesses", verbose_name=_("tenant")
    )
    method = models.CharField(max_length=8, verbose_name=_("method"))
    path = models.CharField(max_length=500, verbose_name=_("path"))
    at = models.DateTimeField(default=timezone.now, verbose_name=_("at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("support access")
        ordering = ["-at", "-pk"]
        verbose_name_plural = _("support accesses")

    def __str__(self) -> str:
        return _("%(user)s read %(tenant)s %(path)s") % {
            "user": self.user,
            "tenant": self.tenant.slug,
            "path": self.path,
        }
