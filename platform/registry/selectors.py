"""Reads of the registry for views, the API and other apps."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from registry.models import (
    AliasEvent,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
)
from tenants.models import ROLE_RANK, Need, Role


def models_for_tenant(tenant) -> QuerySet[RegisteredModel]:
    """Shared models and the tenant's own, with aliases and their versions."""
    return (
        RegisteredModel.objects.for_tenant(tenant)
        .select_related("label_set", "tenant")
        .prefetch_related(
            Prefetch("aliases", queryset=ModelAlias.objects.select_related("version"))
        )
    )


def versions_for_tenant(tenant) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.for_tenant(tenant).select_related(
        "registered_model__label_set", "snapshot", "revision", "parent", "created_by"
    )


def shared_versions() -> QuerySet[ModelVersion]:
    """Versions of platform-owned (shared) models, for platform staff outside any tenant."""
    return ModelVersion.objects.filter(registered_model__tenant__isnull=True).select_related(
        "registered_model__label_set", "snapshot", "revision", "parent", "created_by"
    )


def runs_for_tenant(tenant) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.for_tenant(tenant).select_related(
        "registered_model", "snapshot", "created_by"
    )


def alias_history(registered_model: RegisteredModel, limit: int = 50) -> list[AliasEvent]:
    return list(
        registered_model.alias_events.select_related("from_version", "to_version", "actor")[:limit]
    )


def production_alias(registered_model: RegisteredModel) -> ModelAlias | None:
    return registered_model.aliases.filter(name="production").select_related("version").first()


def can_manage_model(*, user, membership, registered_model: RegisteredModel) -> bool:
    """Who may move aliases: staff for shared (platform) models, tenant admins for their own."""
    if getattr(user, "is_staff", False):
        return True
    if registered_model.tenant_id is None or membership is None:
        return False
    return (
        membership.tenant_id == registered_model.tenant_id
        and ROLE_RANK[Role(membership.role)] >= ROLE_RANK[Role.ADMIN]
    )


def needs_using(registered_model: RegisteredModel, *, tenant) -> QuerySet[Need]:
    return Need.objects.for_tenant(tenant).filter(model=registered_model).select_related("tenant")


def needs_using_all_tenants(registered_model: RegisteredModel) -> QuerySet[Need]:
    # Deliberately cross-tenant: the card counts every need served by the model.
    return (
        Need.objects.dangerously_unscoped().filter(model=registered_model).select_related("tenant")
    )
