"""Admin for platform staff: retrain policies, retrains (with their guard and comparison) and
shadow agreement. Promotion happens in the portal or the API (the guard's one path)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from retraining.models import Retrain, RetrainPolicy, ShadowAgreement


@admin.register(RetrainPolicy)
class RetrainPolicyAdmin(admin.ModelAdmin):
    list_display = (
        "need",
        "tenant",
        "promotion_margin",
        "max_recall_drop",
        "min_fresh_samples",
        "retrain_after_accepted",
        "retrain_on_signoff",
        "retrain_every_days",
        "shadow_share",
    )
    list_select_related = ("need", "tenant")
    list_filter = ("tenant", "retrain_on_signoff")
    raw_id_fields = ("need", "tenant", "updated_by")
    search_fields = ("need__slug", "tenant__slug")


@admin.register(Retrain)
class RetrainAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "need",
        "tenant",
        "trigger",
        "status",
        "champion",
        "challenger",
        "guard_passed",
        "override_reason",
        "created_at",
    )
    list_select_related = (
        "need",
        "tenant",
        "champion__registered_model",
        "challenger__registered_model",
    )
    list_filter = ("status", "trigger", "tenant")
    raw_id_fields = (
        "need",
        "tenant",
        "champion",
        "challenger",
        "snapshot",
        "training_run",
        "created_by",
        "promoted_by",
    )
    search_fields = ("need__slug", "tenant__slug", "reason", "override_reason")
    readonly_fields = ("comparison", "guard", "override_reason", "promoted_by", "promoted_at")

    @admin.display(boolean=True, description=_("guard passes"))
    def guard_passed(self, obj: Retrain) -> bool | None:
        return None if obj.guard is None else bool(obj.guard.get("passed"))

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ShadowAgreement)
class ShadowAgreementAdmin(admin.ModelAdmin):
    list_display = ("day", "need", "tenant", "champion", "challenger", "scored", "agreed")
    list_select_related = ("need", "tenant", "champion", "challenger")
    list_filter = ("tenant",)
    raw_id_fields = ("need", "tenant", "champion", "challenger")
