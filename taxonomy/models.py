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

    key = models.CharField(max_length=200, unique=True, validators=[label_key_validator])
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    name_en = models.CharField(max_length=200)
    name_zh = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    aliases = models.JSONField(
        default=list, blank=True, help_text="Aliases and synonyms, any language."
    )
    status = models.CharField(
        max_length=16, choices=LabelStatus.choices, default=LabelStatus.ACTIVE
    )
    replaced_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaces"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
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
        Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="history"
    )
    label_key = models.CharField(max_length=200, db_index=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.label_key} {self.action} @ {self.at:%Y-%m-%d %H:%M}"


class LabelSetKind(models.TextChoices):
    MULTICLASS = "multiclass", _("Multi-class (exactly one label)")
    MULTILABEL = "multilabel", _("Multi-label (any number of labels)")


class LabelSet(models.Model):
    """A named classification task. Shared (tenant is NULL, platform-owned) or a tenant's own."""

    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="label_sets"
    )
    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(
        max_length=16, choices=LabelSetKind.choices, default=LabelSetKind.MULTICLASS
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = SharedOrTenantQuerySet.as_manager()

    class Meta:
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
        owner = self.tenant.slug if self.tenant_id else "shared"
        return f"{self.slug} ({owner})"

    @property
    def current_revision(self) -> LabelSetRevision | None:
        return self.revisions.order_by("-number").first()


class LabelSetRevision(models.Model):
    """An immutable list of labels. Changing a label set makes a new revision; models train on one."""

    label_set = models.ForeignKey(LabelSet, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField()
    labels = models.ManyToManyField(
        Label, through="LabelSetMember", related_name="label_set_revisions"
    )
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["label_set", "number"]
        constraints = [
            models.UniqueConstraint(fields=["label_set", "number"], name="uniq_labelset_revision")
        ]

    def __str__(self) -> str:
        return f"{self.label_set.slug}@r{self.number}"

    def label_keys(self) -> list[str]:
        return list(self.members.order_by("position").values_list("label__key", flat=True))


class LabelSetMember(models.Model):
    revision = models.ForeignKey(LabelSetRevision, on_delete=models.CASCADE, related_name="members")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["revision", "label"], name="uniq_labelset_member")
        ]

    def __str__(self) -> str:
        return f"{self.revision_id}#{self.position} {self.label_id}"


class ProposalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class LabelProposal(models.Model):
    """A tenant's request for a new taxonomy label. Platform staff approve it (the label is then
    created, with its history) or reject it with a note; the tenant sees the status."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="label_proposals"
    )
    key = models.CharField(max_length=200, validators=[label_key_validator])
    parent = models.ForeignKey(
        Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name_en = models.CharField(max_length=200)
    name_zh = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    aliases = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why the tenant needs it.")
    status = models.CharField(
        max_length=16, choices=ProposalStatus.choices, default=ProposalStatus.PENDING
    )
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=300, blank=True)
    #: The label created on approval.
    label = models.ForeignKey(
        Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="proposals"
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
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
        return f"{self.key} ({self.status})"
