from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.querysets import SharedOrTenantQuerySet, TenantQuerySet

label_key_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$",
    "Use dot-separated lowercase segments, e.g. news.sports.football.",
)


class LabelStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    DEPRECATED = "deprecated", _("Deprecated")


class Label(models.Model):
    """One node of the company-wide label tree. Its key is stable and never reused."""

    key = models.CharField(
        max_length=200, unique=True, validators=[label_key_validator], verbose_name=_("key")
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        verbose_name=_("parent"),
    )
    name_en = models.CharField(max_length=200, verbose_name=_("name en"))
    name_zh = models.CharField(max_length=200, blank=True, verbose_name=_("name zh"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    aliases = models.JSONField(
        default=list,
        blank=True,
        help_text=_("Aliases and synonyms, any language."),
        verbose_name=_("aliases"),
    )
    status = models.CharField(
        max_length=16,
        choices=LabelStatus.choices,
        default=LabelStatus.ACTIVE,
        verbose_name=_("status"),
    )
    replaced_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="replaces",
        verbose_name=_("replaced by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("label")
        verbose_name_plural = _("labels")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class LabelChange(models.Model):
    """Append-only history of every change to a label: who, when, before and after."""

    class Action(models.TextChoices):
        CREATE = "create", _("Created")
        UPDATE = "update", _("Updated")
        MOVE = "move", _("Moved")
        DEPRECATE = "deprecate", _("Deprecated")
        MERGE = "merge", _("Merged")
        DELETE = "delete", _("Deleted")

    #: NULL once the label itself is deleted (only ever an unused label); `label_key` keeps the
    #: history readable and stops the key from being reused.
    label = models.ForeignKey(
        Label,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="history",
        verbose_name=_("label"),
    )
    label_key = models.CharField(
        max_length=200, db_index=True, blank=True, verbose_name=_("label key")
    )
    action = models.CharField(max_length=16, choices=Action.choices, verbose_name=_("action"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("actor"),
    )
    at = models.DateTimeField(default=timezone.now, db_index=True, verbose_name=_("at"))
    before = models.JSONField(default=dict, blank=True, verbose_name=_("before"))
    after = models.JSONField(default=dict, blank=True, verbose_name=_("after"))
    note = models.CharField(max_length=300, blank=True, verbose_name=_("note"))

    class Meta:
        verbose_name = _("label change")
        verbose_name_plural = _("label changes")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.label_key} {self.action} @ {self.at:%Y-%m-%d %H:%M}"


class LabelSetKind(models.TextChoices):
    MULTICLASS = "multiclass", _("Multi-class (exactly one label)")
    MULTILABEL = "multilabel", _("Multi-label (any number of labels)")


class LabelSet(models.Model):
    """A named classification task. Shared (tenant is NULL, platform-owned) or a tenant's own."""

    tenant = models.ForeignKey(
        "tenants.Tenant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="label_sets",
        verbose_name=_("tenant"),
    )
    slug = models.SlugField(max_length=80, verbose_name=_("slug"))
    name = models.CharField(max_length=200, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    kind = models.CharField(
        max_length=16,
        choices=LabelSetKind.choices,
        default=LabelSetKind.MULTICLASS,
        verbose_name=_("kind"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    objects = SharedOrTenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("label set")
        verbose_name_plural = _("label sets")
        ordering = ["slug"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="uniq_labelset_tenant_slug"),
            models.UniqueConstraint(
                fields=["slug"],
                condition=models.Q(tenant__isnull=True),
                name="uniq_labelset_shared_slug",
            ),
        ]

    def __str__(self) -> str:
        owner = self.tenant.slug if self.tenant_id else _("shared")
        return f"{self.slug} ({owner})"

    @property
    def current_revision(self) -> LabelSetRevision | None:
        return self.revisions.order_by("-number").first()


class LabelSetRevision(models.Model):
    """An immutable list of labels. Changing a label set makes a new revision; models train on one."""

    label_set = models.ForeignKey(
        LabelSet, on_delete=models.PROTECT, related_name="revisions", verbose_name=_("label set")
    )
    number = models.PositiveIntegerField(verbose_name=_("number"))
    labels = models.ManyToManyField(
        Label,
        through="LabelSetMember",
        related_name="label_set_revisions",
        verbose_name=_("labels"),
    )
    note = models.CharField(max_length=300, blank=True, verbose_name=_("note"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("label set revision")
        verbose_name_plural = _("label set revisions")
        ordering = ["label_set", "number"]
        constraints = [
            models.UniqueConstraint(fields=["label_set", "number"], name="uniq_labelset_revision")
        ]

    def __str__(self) -> str:
        return f"{self.label_set.slug}@r{self.number}"

    def label_keys(self) -> list[str]:
        return list(self.members.order_by("position").values_list("label__key", flat=True))


class LabelSetMember(models.Model):
    revision = models.ForeignKey(
        LabelSetRevision,
        on_delete=models.CASCADE,
        related_name="members",
        verbose_name=_("revision"),
    )
    label = models.ForeignKey(
        Label, on_delete=models.PROTECT, related_name="+", verbose_name=_("label")
    )
    position = models.PositiveIntegerField(default=0, verbose_name=_("position"))

    class Meta:
        verbose_name = _("label set member")
        verbose_name_plural = _("label set members")
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["revision", "label"], name="uniq_labelset_member")
        ]

    def __str__(self) -> str:
        return f"{self.revision_id}#{self.position} {self.label_id}"


class ProposalStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")


class LabelProposal(models.Model):
    """A tenant's request for a new taxonomy label. Platform staff approve it (the label is then
    created, with its history) or reject it with a note; the tenant sees the status."""

    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.CASCADE,
        related_name="label_proposals",
        verbose_name=_("tenant"),
    )
    key = models.CharField(max_length=200, validators=[label_key_validator], verbose_name=_("key"))
    parent = models.ForeignKey(
        Label,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("parent"),
    )
    name_en = models.CharField(max_length=200, verbose_name=_("name en"))
    name_zh = models.CharField(max_length=200, blank=True, verbose_name=_("name zh"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    aliases = models.JSONField(default=list, blank=True, verbose_name=_("aliases"))
    reason = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("Why the tenant needs it."),
        verbose_name=_("reason"),
    )
    status = models.CharField(
        max_length=16,
        choices=ProposalStatus.choices,
        default=ProposalStatus.PENDING,
        verbose_name=_("status"),
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("proposed by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("decided at"))
    decision_note = models.CharField(max_length=300, blank=True, verbose_name=_("decision note"))
    #: The label created on approval.
    label = models.ForeignKey(
        Label,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="proposals",
        verbose_name=_("label"),
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("label proposal")
        verbose_name_plural = _("label proposals")
        ordering = ["-created_at", "-id"]
        constraints = [
            # One open proposal per key and tenant.
            models.UniqueConstraint(
                fields=["tenant", "key"],
                condition=models.Q(status="pending"),
                name="uniq_pending_label_proposal",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.get_status_display()})"
