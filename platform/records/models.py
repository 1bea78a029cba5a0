"""Project records: per need, the written sections, problems, lessons and retrospectives.

Only what people write is stored here. The timeline is derived at read time from the rows the
other apps keep (records.timeline), so nothing in it can outlive or contradict its source.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.querysets import TenantQuerySet


class ProjectRecord(models.Model):
    """The record of one need (the business requirement is the project). Created on first write."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    need = models.OneToOneField(
        "tenants.Need", on_delete=models.CASCADE, related_name="project_record"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "need"], name="uniq_record_tenant_need")
        ]

    def __str__(self) -> str:
        return f"record of need {self.need_id}"


class SectionKind(models.TextChoices):
    GOAL = "goal", _("Business goal and success criteria")
    DATA = "data", _("Data preparation")
    TRIED = "tried", _("What was tried")
    NEXT = "next", _("Next ideas")
    PROBLEM = "problem", _("Problem")
    LESSON = "lesson", _("Lesson learned")
    RETROSPECTIVE = "retrospective", _("Retrospective")


#: Kinds a record holds exactly one of (the others are lists).
SINGLE_KINDS = (SectionKind.GOAL, SectionKind.DATA, SectionKind.TRIED, SectionKind.NEXT)


class ProblemStatus(models.TextChoices):
    OPEN = "open", _("Open")
    SOLVED = "solved", _("Solved")
    WONT_FIX = "wont_fix", _("Won't fix")


class Milestone(models.TextChoices):
    LAUNCH = "launch", _("Launch")
    RETRAIN = "retrain", _("After a retrain")
    INCIDENT = "incident", _("After an incident")


class Section(models.Model):
    """One written part of a record, in Markdown. Single kinds (goal, data, tried, next) are
    unique per record; problems, lessons and retrospectives are lists. `revision` counts edits:
    a write names the revision it was based on and is refused when someone else saved since."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    record = models.ForeignKey(ProjectRecord, on_delete=models.CASCADE, related_name="sections")
    kind = models.CharField(max_length=16, choices=SectionKind.choices)
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    revision = models.PositiveIntegerField(default=1)
    # Problems: status and what they concern (a version the tenant can see, a taxonomy label).
    status = models.CharField(max_length=16, choices=ProblemStatus.choices, blank=True)
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    label = models.ForeignKey(
        "taxonomy.Label", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    case = models.ForeignKey(
        "review.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Problems and lessons travel: taxonomy labels and free tags; lessons can be shared.
    labels = models.ManyToManyField("taxonomy.Label", blank=True, related_name="record_sections")
    tags = models.JSONField(default=list, blank=True)
    shareable = models.BooleanField(
        default=False, help_text="Lessons only: shown to other units registering a similar need."
    )
    # Retrospectives: the milestone and the period they look back on.
    milestone = models.CharField(max_length=16, choices=Milestone.choices, blank=True)
    since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["record", "kind", "created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["record", "kind"],
                condition=models.Q(kind__in=["goal", "data", "tried", "next"]),
                name="uniq_record_single_section",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="problem") | ~models.Q(status=""),
                name="record_problem_has_status",
            ),
            models.CheckConstraint(
                condition=models.Q(shareable=False) | models.Q(kind="lesson"),
                name="record_only_lessons_shareable",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "kind", "status"], name="record_section_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.title or ''} (r{self.revision})".strip()


class SectionRevision(models.Model):
    """Every saved edit of a section: who, when, the text it produced and the diff from the one
    before. Append-only."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(10**9)]
    )
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    diff = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["section", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["section", "number"], name="uniq_section_revision")
        ]

    def __str__(self) -> str:
        return f"section {self.section_id} r{self.number}"
