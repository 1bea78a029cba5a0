"""Staff admin for the registry. Nothing here deletes versions, artifacts or history."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from registry.errors import RegistryError
from registry.models import (
    AliasEvent,
    ArtifactIntegrityIncident,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    RunStatus,
    TrainingRun,
    TrainingSample,
    TrainingSampleLabel,
)
from registry.selectors import production_alias
from registry.services.aliases import alias_rollback, alias_set
from registry.services.training import training_run_enqueue
from registry.services.versions import model_version_archive


class NoDeleteMixin:
    """Versions, artifacts and audit rows are kept forever; archive instead."""

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class TrainingSampleLabelInline(admin.TabularInline):
    model = TrainingSampleLabel
    raw_id_fields = ["label"]
    extra = 0


@admin.register(TrainingSample)
class TrainingSampleAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "revision",
        "tenant",
        "source",
        "origin_split",
        "short_text",
        "created_at",
    ]
    list_filter = ["source", "origin_split", "revision__label_set"]
    list_select_related = ["revision__label_set", "tenant"]
    raw_id_fields = ["tenant", "revision"]
    search_fields = ["text", "text_hash", "source_ref"]
    readonly_fields = ["text_hash"]
    inlines = [TrainingSampleLabelInline]

    @admin.display(description=_("text"))
    def short_text(self, obj: TrainingSample) -> str:
        return obj.text[:80]


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "content_hash",
        "revision",
        "tenant",
        "split_strategy",
        "seed",
        "description",
        "created_at",
    ]
    list_filter = ["split_strategy", "revision__label_set"]
    list_select_related = ["revision__label_set", "tenant"]
    raw_id_fields = ["tenant", "revision", "created_by"]
    search_fields = ["content_hash", "description"]
    readonly_fields = [f.name for f in DatasetSnapshot._meta.fields]


class ModelAliasInline(admin.TabularInline):
    model = ModelAlias
    raw_id_fields = ["version"]
    readonly_fields = ["name", "version", "updated_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # aliases move through the promote/rollback actions, which audit them


@admin.register(RegisteredModel)
class RegisteredModelAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["name", "tenant", "label_set", "algorithm", "production", "created_at"]
    list_filter = ["algorithm", "tenant"]
    list_select_related = ["tenant", "label_set"]
    raw_id_fields = ["tenant", "label_set"]
    search_fields = ["name"]
    inlines = [ModelAliasInline]
    actions = ["rollback_production", "rollback_candidate"]

    @admin.display(description=_("production"))
    def production(self, obj: RegisteredModel) -> str:
        alias = production_alias(obj)
        return f"v{alias.version.version}" if alias else "—"

    def _rollback(self, request, queryset, alias: str) -> None:
        for model in queryset:
            try:
                moved = alias_rollback(
                    registered_model=model, alias=alias, actor=request.user, reason="admin rollback"
                )
            except RegistryError as exc:
                self.message_user(
                    request,
                    _("%(model)s: %(error)s") % {"model": model, "error": exc.message},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    _("%(model)s: %(alias)s rolled back to v%(version)s.")
                    % {"model": model, "alias": alias, "version": moved.version.version},
                )

    @admin.action(description=_("Roll back production to its previous version"))
    def rollback_production(self, request, queryset: QuerySet[RegisteredModel]) -> None:
        self._rollback(request, queryset, "production")

    @admin.action(description=_("Roll back candidate to its previous version"))
    def rollback_candidate(self, request, queryset: QuerySet[RegisteredModel]) -> None:
        self._rollback(request, queryset, "candidate")


@admin.register(ModelVersion)
class ModelVersionAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "__str__", "status", "algorithm", "macro_f1", "latency_p99_ms", "artifact_size",
        "created_by", "created_at", "card",
    ]  # fmt: skip
    list_filter = ["status", "algorithm", "registered_model__tenant"]
    list_select_related = ["registered_model__tenant", "created_by"]
    raw_id_fields = [
        "registered_model",
        "snapshot",
        "revision",
        "parent",
        "training_run",
        "created_by",
    ]
    search_fields = ["registered_model__name", "artifact_sha256"]
    # The record of what was trained is immutable; only notes and status change (via actions).
    readonly_fields = [f.name for f in ModelVersion._meta.fields if f.name not in {"notes"}] + [
        "card"
    ]
    actions = ["promote_production", "promote_candidate", "archive"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Versions are immutable records made by training (or import_registry), never by hand.
        return False

    @admin.display(description=_("macro F1"))
    def macro_f1(self, obj: ModelVersion):
        return (obj.metrics or {}).get("macro_f1")

    @admin.display(description=_("model card"))
    def card(self, obj: ModelVersion) -> str:
        url = reverse(
            "registry:card", kwargs={"pk": obj.registered_model_id, "number": obj.version}
        )
        # Staff open the card in the portal's read-only support view, as the owning tenant (any
        # tenant sees a shared model).
        owner = obj.registered_model.tenant
        query = f"?as_tenant={owner.slug}" if owner is not None else ""
        return format_html(
            '<a href="{}{}">{}</a> · <a href="{}.md{}">Markdown</a>',
            url,
            query,
            _("model card"),
            url + "card",
            query,
        )

    def _promote(self, request, queryset, alias: str) -> None:
        for version in queryset.select_related("registered_model"):
            try:
                alias_set(
                    registered_model=version.registered_model,
                    alias=alias,
                    version=version,
                    actor=request.user,
                    reason="admin promotion",
                )
            except RegistryError as exc:
                self.message_user(
                    request,
                    _("%(version)s: %(error)s") % {"version": version, "error": exc.message},
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    _("%(version)s is now %(alias)s.") % {"version": version, "alias": alias},
                )

    @admin.action(description=_("Promote to production"))
    def promote_production(self, request, queryset: QuerySet[ModelVersion]) -> None:
        self._promote(request, queryset, "production")

    @admin.action(description=_("Promote to candidate"))
    def promote_candidate(self, request, queryset: QuerySet[ModelVersion]) -> None:
        self._promote(request, queryset, "candidate")

    @admin.action(description=_("Archive (keeps the artifact bytes)"))
    def archive(self, request, queryset: QuerySet[ModelVersion]) -> None:
        for version in queryset:
            try:
                model_version_archive(version=version, actor=request.user)
            except RegistryError as exc:
                self.message_user(
                    request,
                    _("%(version)s: %(error)s") % {"version": version, "error": exc.message},
                    messages.ERROR,
                )


@admin.register(ModelAlias)
class ModelAliasAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["registered_model", "name", "version", "updated_at"]
    list_select_related = ["registered_model", "version__registered_model"]
    list_filter = ["name"]
    raw_id_fields = ["registered_model", "version"]
    readonly_fields = ["registered_model", "name", "version", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False  # use the version actions: they keep the audit trail


@admin.register(AliasEvent)
class AliasEventAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "at",
        "registered_model",
        "alias",
        "action",
        "from_version",
        "to_version",
        "actor",
        "reason",
    ]
    list_filter = ["alias", "action"]
    list_select_related = [
        "registered_model",
        "from_version__registered_model",
        "to_version__registered_model",
        "actor",
    ]
    raw_id_fields = ["registered_model", "from_version", "to_version", "actor"]
    readonly_fields = [f.name for f in AliasEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "registered_model",
        "tenant",
        "status",
        "progress",
        "created_at",
        "duration",
    ]
    list_filter = ["status", "algorithm"]
    list_select_related = ["registered_model", "tenant"]
    raw_id_fields = [
        "tenant",
        "registered_model",
        "snapshot",
        "parent_version",
        "need",
        "created_by",
    ]
    readonly_fields = ["log", "error", "started_at", "finished_at", "progress"]
    actions = ["requeue"]

    @admin.display(description=_("seconds"))
    def duration(self, obj: TrainingRun):
        return obj.duration_seconds

    @admin.action(description=_("Send queued runs to the training queue again"))
    def requeue(self, request, queryset: QuerySet[TrainingRun]) -> None:
        count = 0
        for run in queryset.filter(status=RunStatus.QUEUED):
            training_run_enqueue(run=run)
            count += 1
        self.message_user(
            request,
            _("%(count)s queued run(s) re-sent (a duplicate message is harmless).")
            % {"count": count},
        )


@admin.register(ArtifactIntegrityIncident)
class ArtifactIntegrityIncidentAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = [
        "sha256",
        "kind",
        "model_version",
        "occurrences",
        "first_seen_at",
        "last_seen_at",
        "resolved_at",
    ]
    list_filter = ["kind", ("resolved_at", admin.EmptyFieldListFilter)]
    list_select_related = ["model_version__registered_model"]
    raw_id_fields = ["model_version"]
    readonly_fields = [
        f.name for f in ArtifactIntegrityIncident._meta.fields if f.name != "resolution_note"
    ]
    actions = ["mark_resolved"]

    @admin.action(description=_("Mark resolved (after restoring the file)"))
    def mark_resolved(self, request, queryset: QuerySet[ArtifactIntegrityIncident]) -> None:
        updated = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        self.message_user(request, _("%(count)s incident(s) marked resolved.") % {"count": updated})
