"""Reads of the registry for views, the API and other apps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from registry.models import (
    AliasEvent,
    AliasName,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
)
from taxonomy.selectors import (
    Resolution,
    label_set_suggestions,
    overlap,
    requested_labels,
    resolve_terms,
    revision_keys,
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
    """The model's `production` alias with its version (a model, not a need: for a need ask
    `serving_versions`, which follows the need's own alias)."""
    return (
        registered_model.aliases.filter(name=AliasName.PRODUCTION).select_related("version").first()
    )


def serving_versions(need: Need) -> QuerySet[ModelVersion]:
    """Which version serves this need: need -> model -> the need's alias -> version.

    The one place that answers it (serving binds to it, monitoring takes its baseline from it,
    a need goes live when it exists, "can this need be served?" asks it). A queryset of at most
    one row, so each caller picks what it needs: `.exists()`, `.values_list("pk")`,
    `.select_related(...).first()`."""
    if need.model_id is None:
        return ModelVersion.objects.none()
    # The need's own tenant's versions or shared ones: a need is served by nothing else.
    return ModelVersion.objects.for_tenant(need.tenant_id).filter(
        aliases__registered_model_id=need.model_id, aliases__name=need.model_alias
    )


def serving_version_subquery() -> Subquery:
    """The same lookup as `serving_versions`, as a subquery for a `Need` queryset
    (`.annotate(alias_version_id=serving_version_subquery())`): one query binds many needs."""
    return Subquery(
        ModelVersion.objects.for_tenant(OuterRef("tenant_id"))
        .filter(
            aliases__registered_model_id=OuterRef("model_id"), aliases__name=OuterRef("model_alias")
        )
        .values("pk")[:1]
    )


def serving_version(need: Need) -> ModelVersion | None:
    """The version serving `need` (with its snapshot and model), or None."""
    return serving_versions(need).select_related("snapshot", "registered_model").first()


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


def offered_models(*, tenant) -> QuerySet[RegisteredModel]:
    """Models a tenant may subscribe a need to: visible (shared or own) with a production alias."""
    return (
        RegisteredModel.objects.for_tenant(tenant)
        .filter(aliases__name=AliasName.PRODUCTION)
        .select_related("label_set")
        .distinct()
        .order_by("name")
    )


@dataclass
class Suggestions:
    resolution: Resolution
    label_sets: list[dict]
    models: list[dict]


def reuse_suggestions(*, tenant, terms: Iterable[str], limit: int = 10) -> Suggestions:
    """Label sets and live models the tenant may reuse for the labels it asks for.

    Only what the tenant can see is offered: shared (platform-owned) label sets and models, and
    its own. Another tenant's own label sets and models are never offered; a model meant for
    everyone is registered as shared (tenant NULL). A model is "live" when its `production`
    alias points at a version; its labels are those of the revision that version was trained on.
    Scoring: `taxonomy.selectors.overlap`.
    """
    resolution = resolve_terms(terms)
    if not resolution.labels:
        return Suggestions(resolution=resolution, label_sets=[], models=[])
    requested = requested_labels(resolution)
    set_rows = label_set_suggestions(tenant=tenant, requested=requested)

    aliases = list(
        ModelAlias.objects.filter(
            name=AliasName.PRODUCTION,
            registered_model__in=RegisteredModel.objects.for_tenant(tenant),
        ).select_related("registered_model__label_set", "registered_model__tenant", "version")
    )
    model_keys = revision_keys(alias.version.revision_id for alias in aliases)
    model_rows = []
    for alias in aliases:
        result = overlap(requested, model_keys.get(alias.version.revision_id, []))
        if result.score > 0:
            model_rows.append(
                {"model": alias.registered_model, "version": alias.version, "overlap": result}
            )
    model_rows.sort(key=lambda row: (-row["overlap"].score, row["model"].name))
    return Suggestions(
        resolution=resolution, label_sets=set_rows[:limit], models=model_rows[:limit]
    )


def snapshot_summary(snapshot: DatasetSnapshot) -> dict:
    """A snapshot's split and label distribution, per label and split, to check before training:
    `{"train": n, "test": n, "labels": [{"label", "train", "test", "total"}, ...]}` in the label
    set's order (a label with no sample shows 0: training would never learn it)."""
    from registry.services.datasets import sample_labels

    counts: dict[str, dict[str, int]] = {
        key: {"train": 0, "test": 0} for key in snapshot.revision.label_keys()
    }
    for part, ids in (("train", snapshot.train_sample_ids), ("test", snapshot.test_sample_ids)):
        for labels in sample_labels(ids).values():
            for key in labels:
                counts.setdefault(key, {"train": 0, "test": 0})[part] += 1
    return {
        "train": len(snapshot.train_sample_ids),
        "test": len(snapshot.test_sample_ids),
        "labels": [
            {"label": key, "train": c["train"], "test": c["test"], "total": c["train"] + c["test"]}
            for key, c in counts.items()
        ],
    }
