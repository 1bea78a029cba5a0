"""Admin for platform staff: every tenant's records, filters for open problems, and an overview
of live needs without a retrospective and problems left open too long."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _

from records import selectors
from records.models import ProblemStatus, ProjectRecord, Section, SectionKind, SectionRevision

#: The default "open for longer than N days" of the overview (`?days=` changes it).
STALE_PROBLEM_DAYS = 14


class OpenProblemsFilter(admin.SimpleListFilter):
    title = _("open problems")
    parameter_name = "open_problems"

    def lookups(self, request, model_admin):
        return [("yes", _("Has open problems")), ("no", _("No open problems"))]

    def queryset(self, request, queryset):
        open_problems = Section.objects.filter(
            record=OuterRef("pk"), kind=SectionKind.PROBLEM, status=ProblemStatus.OPEN
        )
        if self.value() == "yes":
            return queryset.filter(Exists(open_problems))
        if self.value() == "no":
            return queryset.exclude(Exists(open_problems))
        return queryset


class SectionInline(admin.TabularInline):
    model = Section
    fields = ("kind", "title", "status", "shareable", "revision", "updated_by", "updated_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False


@admin.register(ProjectRecord)
class ProjectRecordAdmin(admin.ModelAdmin):
    list_display = ("need", "tenant", "need_status", "sections", "open_problems", "updated_at")
    list_select_related = ("need", "tenant")
    list_filter = ("tenant", ("need__status", admin.ChoicesFieldListFilter), OpenProblemsFilter)
    search_fields = ("need__slug", "need__name", "tenant__slug")
    raw_id_fields = ("tenant", "need")
    readonly_fields = ("created_at", "updated_at")
    inlines = [SectionInline]
    change_list_template = "admin/records/projectrecord/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProjectRecord]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_sections=Count("sections", distinct=True),
                n_open=Count(
                    "sections",
                    filter=Q(sections__kind=SectionKind.PROBLEM, sections__status="open"),
                    distinct=True,
                ),
            )
        )

    @admin.display(description=_("need status"), ordering="need__status")
    def need_status(self, obj: ProjectRecord) -> str:
        return obj.need.get_status_display()

    @admin.display(description=_("sections"), ordering="n_sections")
    def sections(self, obj: ProjectRecord) -> int:
        return obj.n_sections  # type: ignore[attr-defined]

    @admin.display(description=_("open problems"), ordering="n_open")
    def open_problems(self, obj: ProjectRecord) -> int:
        return obj.n_open  # type: ignore[attr-defined]

    def get_urls(self):
        return [
            path(
                "overview/",
                self.admin_site.admin_view(self.overview_view),
                name="records_projectrecord_overview",
            ),
            *super().get_urls(),
        ]

    def overview_view(self, request: HttpRequest) -> TemplateResponse:
        try:
            days = max(1, min(3650, int(request.GET.get("days", STALE_PROBLEM_DAYS))))
        except ValueError:
            days = STALE_PROBLEM_DAYS
        context = {
            **self.admin_site.each_context(request),
            "title": _("Project records: what needs attention"),
            "opts": self.model._meta,
            "days": days,
            "needs": selectors.live_needs_without_retrospective_all_tenants(),
            "problems": selectors.problems_open_longer_than_all_tenants(days=days),
        }
        return TemplateResponse(request, "admin/records/overview.html", context)


@admin.register(Section)
class SectionAdmin(admin.ModelAdmin):
    list_display = (
        "title_or_kind",
        "kind",
        "status",
        "shareable",
        "tenant",
        "record",
        "revision",
        "updated_at",
    )
    list_select_related = ("tenant", "record__need")
    list_filter = ("kind", "status", "shareable", "tenant")
    search_fields = ("title", "body", "record__need__slug")
    raw_id_fields = ("tenant", "record", "model_version", "label", "created_by", "updated_by")
    filter_horizontal = ("labels",)
    readonly_fields = ("revision", "created_at", "updated_at", "resolved_at")

    @admin.display(description=_("section"))
    def title_or_kind(self, obj: Section) -> str:
        return obj.title or obj.get_kind_display()


@admin.register(SectionRevision)
class SectionRevisionAdmin(admin.ModelAdmin):
    list_display = ("section", "number", "author", "at", "tenant")
    list_select_related = ("section", "author", "tenant")
    list_filter = ("tenant",)
    raw_id_fields = ("tenant", "section", "author")
    readonly_fields = ("tenant", "section", "number", "title", "body", "diff", "author", "at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
