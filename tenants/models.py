from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from core.querysets import TenantQuerySet


class Tenant(models.Model):
    """A business unit. Owns needs, keys, data and (optionally) its own models."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    contact_email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    quota_requests_per_minute = models.PositiveIntegerField(default=600)
    quota_max_batch_items = models.PositiveIntegerField(default=100_000)
    webhook_url = models.URLField(blank=True, help_text="Where streamed results are POSTed.")
    webhook_secret = models.CharField(max_length=128, blank=True, help_text="HMAC-SHA256 key.")
    alert_email = models.EmailField(blank=True)
    alert_webhook_url = models.URLField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    REQUESTER = "requester", "Requester"
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 0, Role.REQUESTER: 1, Role.REVIEWER: 2, Role.ADMIN: 3}


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    #: True on the unsaved, read-only stand-in that platform staff get for a tenant they are not
    #: a member of (portal support mode, tenants.scoping.support_memberships_for).
    support = False

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant.slug} ({self.role})"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


class ApiKeyScope(models.TextChoices):
    TAG = "tag", "Tag (sync and stream)"
    BATCH = "batch", "Batch jobs"
    FEEDBACK = "feedback", "Feedback events"
    READ = "read", "Read"
    #: Create, change, subscribe, go live and retire needs. Deliberately separate from `tag`: a
    #: serving key must not be able to change (or retire) what it serves.
    NEEDS = "needs", "Manage needs"


class ApiKey(models.Model):
    """A tenant's API key. Only the SHA-256 of the secret is stored; the prefix finds the row."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_apikey_name")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.tenant.slug}: {self.name})"

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Delivery(models.TextChoices):
    SYNC = "sync", "Online (synchronous)"
    STREAM = "stream", "Online (stream)"
    BATCH = "batch", "Batch"


class NeedStatus(models.TextChoices):
    REQUESTED = "requested", "Requested"
    APPROVED = "approved", "Approved"
    LIVE = "live", "Live"
    RETIRED = "retired", "Retired"


class Execution(models.TextChoices):
    INLINE = "inline", "In the web process (light models)"
    QUEUE = "queue", "On the online Celery queue (heavy models)"


class Need(models.Model):
    """A tenant's registered tagging requirement against the company taxonomy."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="needs")
    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    goal = models.CharField(
        max_length=300, blank=True, help_text="The business goal, in a few words."
    )
    label_set = models.ForeignKey(
        "taxonomy.LabelSet", null=True, blank=True, on_delete=models.PROTECT, related_name="needs"
    )
    #: Label keys asked for when no existing label set fits (a request for a new one).
    requested_labels = models.JSONField(default=list, blank=True)
    #: The tenant's own label names -> global label keys, e.g. {"Sport": "news.sports"}.
    label_mapping = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField(
        default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    per_label_thresholds = models.JSONField(default=dict, blank=True)
    top_k = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    delivery = models.JSONField(default=list, blank=True)
    latency_budget_ms = models.FloatField(null=True, blank=True, help_text="p99, milliseconds")
    size_budget_kb = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=NeedStatus.choices, default=NeedStatus.REQUESTED
    )
    #: The registered model serving this need (its own, or a shared one it subscribed to).
    model = models.ForeignKey(
        "registry.RegisteredModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="needs",
    )
    model_alias = models.CharField(max_length=32, default="production")
    execution = models.CharField(max_length=16, choices=Execution.choices, default=Execution.INLINE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["tenant", "slug"], name="uniq_need_slug")]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.slug}"


class _ThroughNeedQuerySet(TenantQuerySet):
    tenant_field = "need__tenant"


class NeedStatusChange(models.Model):
    """Append-only audit of a need's lifecycle: who moved it, when, from what to what, and why."""

    need = models.ForeignKey(Need, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=16, choices=NeedStatus.choices)
    to_status = models.CharField(max_length=16, choices=NeedStatus.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: The API key's prefix when a key (not a person) made the change.
    api_key_prefix = models.CharField(max_length=16, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(default=timezone.now)

    objects = _ThroughNeedQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["need", "-at"], name="need_status_change_at")]

    def __str__(self) -> str:
        return f"{self.need}: {self.from_status} -> {self.to_status}"


class SupportAccess(models.Model):
    """Audit of platform staff reading a tenant's portal in read-only support mode."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="support_accesses"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="support_accesses")
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        verbose_name_plural = "support accesses"

    def __str__(self) -> str:
        return f"{self.user} read {self.tenant.slug} {self.path}"
