"""Aliases (production, candidate): set and roll back, with the audit trail."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.errors import RegistryError
from registry.models import (
    AliasAction,
    AliasEvent,
    AliasName,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from tenants.models import Need, NeedStatus
from tenants.services import need_go_live

logger = logging.getLogger(__name__)


# --- Aliases ---------------------------------------------------------------------------------
def alias_set(
    *,
    registered_model: RegisteredModel,
    alias: str,
    version: ModelVersion,
    actor=None,
    reason: str = "",
    action: str = AliasAction.SET,
) -> ModelAlias:
    """Point `alias` at `version`, updating the ModelAlias row in place (serving polls it by
    (registered_model, name) and `updated_at`), and append an AliasEvent to the audit trail."""
    if alias not in AliasName.values:
        raise RegistryError(
            "unknown_alias",
            _("Alias must be one of %(value)s.") % {"value": ", ".join(AliasName.values)},
        )
    if version.registered_model_id != registered_model.pk:
        raise RegistryError(
            "wrong_model",
            _("%(version)s is not a version of %(registered_model)s.")
            % {"version": version, "registered_model": registered_model},
        )
    if version.status == VersionStatus.ARCHIVED:
        raise RegistryError(
            "version_archived",
            _("%(version)s is archived; it cannot take an alias.") % {"version": version},
        )
    with transaction.atomic():
        current = (
            ModelAlias.objects.select_for_update()
            .filter(registered_model=registered_model, name=alias)
            .first()
        )
        now = timezone.now()
        previous = current.version if current else None
        if current is None:
            current = ModelAlias.objects.create(
                registered_model=registered_model, name=alias, version=version, updated_at=now
            )
        else:
            ModelAlias.objects.filter(pk=current.pk).update(version=version, updated_at=now)
            current.version, current.updated_at = version, now
        AliasEvent.objects.create(
            registered_model=registered_model,
            alias=alias,
            from_version=previous,
            to_version=version,
            actor=actor if getattr(actor, "pk", None) else None,
            reason=reason[:300],
            action=action,
            at=now,
        )
        if previous is None:
            _approved_needs_go_live(registered_model=registered_model, alias=alias, actor=actor)
    logger.info("%s:%s -> v%s (%s)", registered_model.name, alias, version.version, reason)
    return current


def _approved_needs_go_live(*, registered_model: RegisteredModel, alias: str, actor=None) -> None:
    """Staff-approved needs waiting for this model go live when its serving alias first exists."""
    waiting = Need.objects.dangerously_unscoped().filter(
        model=registered_model, model_alias=alias, status=NeedStatus.APPROVED
    )
    for need in waiting:
        need_go_live(need=need, actor=actor if getattr(actor, "pk", None) else None)


def alias_rollback(
    *, registered_model: RegisteredModel, alias: str = AliasName.PRODUCTION, actor=None, reason=""
) -> ModelAlias:
    """Move `alias` back to the version it pointed at before the current one was promoted.

    Rollbacks walk back through promotions: v1 -> v2 -> v3, rollback gives v2, again gives v1.
    """
    current = ModelAlias.objects.filter(registered_model=registered_model, name=alias).first()
    if current is None:
        raise RegistryError(
            "no_alias",
            _("%(registered_model)s has no %(alias)s alias to roll back.")
            % {"registered_model": registered_model, "alias": alias},
        )
    promotion = (
        AliasEvent.objects.filter(
            registered_model=registered_model,
            alias=alias,
            to_version_id=current.version_id,
            action__in=[AliasAction.SET, AliasAction.RESTORE],
        )
        .order_by("-at", "-id")
        .first()
    )
    target = promotion.from_version if promotion else None
    if target is None or target.pk == current.version_id:
        raise RegistryError(
            "nothing_to_roll_back",
            _("%(registered_model)s:%(alias)s has no earlier version to return to.")
            % {"registered_model": registered_model, "alias": alias},
        )
    return alias_set(
        registered_model=registered_model,
        alias=alias,
        version=target,
        actor=actor,
        reason=reason or f"rollback from v{current.version.version}",
        action=AliasAction.ROLLBACK,
    )
