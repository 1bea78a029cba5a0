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

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    need = models.OneToOneField(
        "tenants.Need",
        on_delete=models.CASCADE,
        related_name="project_record",
        verbose_name=_("need"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    updated_at = models.DateTimeField(default=timezone.now, verbose_name=_("updated at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("project record")
        verbose_name_plural = _("project records")
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "need"], name="uniq_record_tenant_need")
        ]

    def __str__(self) -> str:
        return _("record of need %(need)s") % {"need": self.need_id}


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

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    record = models.ForeignKey(
        ProjectRecord, on_delete=models.CASCADE, related_name="sections", verbose_name=_("record")
    )
    kind = models.CharField(max_length=16, choices=SectionKind.choices, verbose_name=_("kind"))
    title = models.CharField(max_length=200, blank=True, verbose_name=_("title"))
    body = models.TextField(blank=True, verbose_name=_("body"))
    revision = models.PositiveIntegerField(default=1, verbose_name=_("revision"))
    # Problems: status and what they concern (a version the tenant can see, a taxonomy label).
    status = models.CharField(
        max_length=16, choices=ProblemStatus.choices, blank=True, verbose_name=_("status")
    )
    model_version = models.ForeignKey(
        "registry.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("model version"),
    )
    label = models.ForeignKey(
        "taxonomy.Label",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("label"),
    )
    case = models.ForeignKey(
        "review.Case",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("case"),
    )
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))
    # Problems and lessons travel: taxonomy labels and free tags; lessons can be shared.
    labels = models.ManyToManyField(
        "taxonomy.Label", blank=True, related_name="record_sections", verbose_name=_("labels")
    )
    tags = models.JSONField(default=list, blank=True, verbose_name=_("tags"))
    shareable = models.BooleanField(
        default=False,
        help_text=_("Lessons only: shown to other units registering a similar need."),
        verbose_name=_("shareable"),
    )
    # Retrospectives: the milestone and the period they look back on.
    milestone = models.CharField(
        max_length=16, choices=Milestone.choices, blank=True, verbose_name=_("milestone")
    )
    since = models.DateTimeField(null=True, blank=True, verbose_name=_("since"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
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
        verbose_name = _("section")
        verbose_name_plural = _("sections")
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
        return f"{self.get_kind_display()} {self.title or ''} (r{self.revision})".strip()


class SectionRevision(models.Model):
    """Every saved edit of a section: who, when, the text it produced and the diff from the one
    before. Append-only."""

    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant")
    )
    section = models.ForeignKey(
        Section, on_delete=models.CASCADE, related_name="revisions", verbose_name=_("section")
    )
    number = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(10**9)], verbose_name=_("number")
    )
    title = models.CharField(max_length=200, blank=True, verbose_name=_("title"))
    body = models.TextField(blank=True, verbose_name=_("body"))
    diff = models.TextField(blank=True, verbose_name=_("diff"))
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("author"),
    )
    at = models.DateTimeField(default=timezone.now, verbose_name=_("at"))

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("section revision")
        verbose_name_plural = _("section revisions")
        ordering = ["section", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["section", "number"], name="uniq_section_revision")
        ]

    def __str__(self) -> str:
        return _("section %(section)s r%(number)s") % {
            "section": self.section_id,
            "number": self.number,
        }
