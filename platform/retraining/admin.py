"""Admin for platform staff: retrain policies, retrains (with their guard and comparison) and
shadow agreement. Promotion happens in the portal or the API (the guard's one path)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from core.errors import DomainError
from registry.models import Algorithm
from retraining import services
from retraining.models import Retrain, RetrainPolicy, ShadowAgreement


class RetrainPolicyForm(forms.ModelForm):
    """The policy's algorithm and params are checked like the API's (the registry catalogue)."""

    algorithm = forms.ChoiceField(
        choices=[("", _("the champion's")), *Algorithm.choices],
        required=False,
        label=_("algorithm"),
    )

    class Meta:
        model = RetrainPolicy
        fields = [
            "tenant", "need", "promotion_margin", "max_recall_drop", "min_fresh_samples",
            "retrain_after_accepted", "retrain_on_signoff", "retrain_every_days",
            "shadow_share", "algorithm", "params", "updated_by", "updated_at",
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        need = data.get("need")
        if need is not None:
            probe = RetrainPolicy(algorithm=data.get("algorithm") or "", params=data.get("params"))
            try:
                services.policy_choice_check(need=need, policy=probe)
            except DomainError as exc:
                raise forms.ValidationError(f"{exc.message} ({exc.code})") from exc
        return data


@admin.register(RetrainPolicy)
class RetrainPolicyAdmin(admin.ModelAdmin):
    form = RetrainPolicyForm
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
        "algorithm",
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
        "algorithm",
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
    list_filter = ("status", "trigger", "algorithm", "tenant")
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
