"""Reads of the registry for views, the API and other apps."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from core.roles import role_outranks
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
    Overlap,
    Resolution,
    label_set_suggestions,
    overlap,
    requested_labels,
    resolve_terms,
    revision_keys,
)
from tenants.models import Need, Role


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
    # The need's own tenant's versions, shared ones, or those of a model another unit offers
    # (kept after a withdrawal until the promised date): a need is served by nothing else.
    return ModelVersion.objects.servable_for(need.tenant_id).filter(
        aliases__registered_model_id=need.model_id, aliases__name=need.model_alias
    )


def serving_version_subquery() -> Subquery:
    """The same lookup as `serving_versions`, as a subquery for a `Need` queryset
    (`.annotate(alias_version_id=serving_version_subquery())`): one query binds many needs."""
    return Subquery(
        ModelVersion.objects.servable_for(OuterRef("tenant_id"))
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
    return membership.tenant_id == registered_model.tenant_id and role_outranks(
        membership.role, Role.ADMIN
    )


def needs_using(registered_model: RegisteredModel, *, tenant) -> QuerySet[Need]:
    return Need.objects.for_tenant(tenant).filter(model=registered_model).select_related("tenant")


def needs_using_all_tenants(registered_model: RegisteredModel) -> QuerySet[Need]:
    # Deliberately cross-tenant: the card counts every need served by the model.
    return (
        Need.objects.dangerously_unscoped().filter(model=registered_model).select_related("tenant")
    )


def offered_models(*, tenant) -> QuerySet[RegisteredModel]:
    """Models a tenant may subscribe a need to: shared, its own or offered by another unit, with
    a production alias."""
    return (
        RegisteredModel.objects.reusable_by(tenant)
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


def quality_on_requested(
    *, requested_keys: list[str], result: Overlap, metrics: dict[str, Any]
) -> dict[str, Any]:
    """The model's held-out quality on the labels asked for, never its overall F1.

    A requested label the model answers with a class of its own scores that class's F1 on the
    version's test split (`coarser` when the class is an ancestor: F1 of the coarser class). A
    label that shares its class with other requested labels, or has none, cannot be told apart
    and scores 0. `macro_f1` averages over every requested label."""
    per_label = (metrics or {}).get("per_label") or {}
    shared = {key for group in result.collapsed for key in group["requested"]}
    rows: list[dict[str, Any]] = []
    for key in requested_keys:
        target = result.lands_on.get(key)
        if target is None:
            rows.append({"label": key, "model_label": None, "f1": 0.0, "how": "missing"})
        elif key in shared:
            rows.append({"label": key, "model_label": target, "f1": 0.0, "how": "shared"})
        else:
            measured = per_label.get(target)
            rows.append(
                {
                    "label": key,
                    "model_label": target,
                    "f1": measured["f1"] if measured and measured.get("support") else None,
                    "how": "exact" if target == key else "coarser",
                }
            )
    scored: list[float] = [row["f1"] for row in rows if row["f1"] is not None]
    return {
        "macro_f1": round(sum(scored) / len(scored), 4) if scored and per_label else None,
        "labels": rows,
    }


def _live_aliases(tenant) -> list[ModelAlias]:
    """`production` aliases of the models the tenant may reuse: shared, its own, and other
    tenants' models currently offered to other units."""
    return list(
        ModelAlias.objects.filter(
            name=AliasName.PRODUCTION,
            registered_model__in=RegisteredModel.objects.reusable_by(tenant),
        ).select_related("registered_model__label_set", "registered_model__tenant", "version")
    )


def reuse_suggestions(*, tenant, terms: Iterable[str], limit: int = 10) -> Suggestions:
    """Label sets and live models the tenant may reuse for the labels it asks for.

    Only what the tenant can see is offered: shared (platform-owned) label sets and models, its
    own, and models another unit offers to other units (never that unit's label sets or data).
    A model is "live" when its `production` alias points at a version; its labels are those of
    the revision that version was trained on. Scoring: `taxonomy.selectors.overlap` (how many of
    the requested labels it can tell apart); a model's quality is shown on those labels only.
    """
    resolution = resolve_terms(terms)
    if not resolution.labels:
        return Suggestions(resolution=resolution, label_sets=[], models=[])
    requested = requested_labels(resolution)
    requested_keys = [label.key for label in requested]
    set_rows = label_set_suggestions(tenant=tenant, requested=requested)

    aliases = _live_aliases(tenant)
    model_keys = revision_keys(alias.version.revision_id for alias in aliases)
    model_rows: list[dict[str, Any]] = []
    for alias in aliases:
        result = overlap(requested, model_keys.get(alias.version.revision_id, []))
        if result.score > 0:
            model_rows.append(
                {
                    "model": alias.registered_model,
                    "version": alias.version,
                    "overlap": result,
                    "quality": quality_on_requested(
                        requested_keys=requested_keys,
                        result=result,
                        metrics=alias.version.metrics,
                    ),
                }
            )
    model_rows.sort(
        key=lambda row: (
            -row["overlap"].score,
            -(row["quality"]["macro_f1"] or 0.0),
            row["model"].name,
        )
    )
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


@dataclass
class ModelUpdate:
    """Another model was promoted for a need's label set after the need chose its model."""

    model: RegisteredModel
    version: ModelVersion
    promoted_at: Any


def newer_model_for(need: Need) -> ModelUpdate | None:
    """The model most recently promoted to `production` for the need's label set (by its own
    tenant, or shared), when that happened after the need chose its current model: the need
    should be asked whether to follow it. None when there is nothing newer."""
    if need.model_id is None or need.label_set_id is None:
        return None
    since = need.model_chosen_at
    if since is None:
        last = (
            AliasEvent.objects.filter(registered_model_id=need.model_id, alias=AliasName.PRODUCTION)
            .order_by("-at")
            .values_list("at", flat=True)
            .first()
        )
        since = max(filter(None, [last, need.created_at]))
    candidates = RegisteredModel.objects.for_tenant(need.tenant_id).filter(
        label_set_id=need.label_set_id
    )
    event = (
        AliasEvent.objects.filter(
            alias=AliasName.PRODUCTION,
            at__gt=since,
            registered_model__in=candidates.exclude(pk=need.model_id),
        )
        .select_related("registered_model")
        .order_by("-at", "-id")
        .first()
    )
    if event is None:
        return None
    current = production_alias(event.registered_model)
    if current is None:
        return None
    return ModelUpdate(model=event.registered_model, version=current.version, promoted_at=event.at)


def model_subscriptions(*, registered_model: RegisteredModel, tenant) -> list[dict[str, Any]]:
    """Every need served by `registered_model`, for its owner `tenant`: the owner sees which
    units subscribe (unit, need, status, since when), never their texts or results."""
    if registered_model.tenant_id is None or registered_model.tenant_id != getattr(
        tenant, "pk", tenant
    ):
        return []
    return [
        {
            "tenant": need.tenant.slug,
            "tenant_name": need.tenant.name,
            "contact_email": need.tenant.contact_email,
            "need": need.slug,
            "need_name": need.name,
            "status": need.status,
            "since": need.model_chosen_at or need.created_at,
            "own": need.tenant_id == registered_model.tenant_id,
        }
        for need in needs_using_all_tenants(registered_model).order_by("tenant__slug", "slug")
    ]
