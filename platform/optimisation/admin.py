"""Admin for platform staff: every tenant's optimisation runs and their trials (read-only)."""

from __future__ import annotations

from django.contrib import admin

from optimisation.models import OptimisationRun, OptimisationTrial


class TrialInline(admin.TabularInline):
    model = OptimisationTrial
    extra = 0
    can_delete = False
    fields = (
        "number",
        "state",
        "macro_f1",
        "p50_ms",
        "p99_ms",
        "docs_per_s",
        "size_bytes",
        "scorer_path",
        "pareto",
        "fits",
        "is_default",
    )
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OptimisationRun)
class OptimisationRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "tenant",
        "need",
        "status",
        "progress",
        "latency_budget_ms",
        "size_budget_kb",
        "time_limit_seconds",
        "max_trials",
        "registered_version",
        "finished_at",
    )
    list_select_related = ("tenant", "need", "registered_version__registered_model")
    list_filter = ("status", "tenant")
    search_fields = ("need__slug", "tenant__slug")
    raw_id_fields = (
        "tenant",
        "need",
        "snapshot",
        "chosen_trial",
        "registered_version",
        "created_by",
    )
    readonly_fields = (
        "status",
        "progress",
        "log",
        "error",
        "measurement",
        "result",
        "heartbeat_at",
        "started_at",
        "finished_at",
    )
    inlines = [TrialInline]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False  # runs start from the portal or the API, where budgets are checked
