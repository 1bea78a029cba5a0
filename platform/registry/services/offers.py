"""A tenant offering its own model to other units: offer, withdraw, and who subscribes.

Subscribers get the model's answers only: they are suggested it and may point a need at it
(`tenants.services.need_subscribe_model`), but its versions, snapshots, training samples and runs
stay the owner's (every registry read of them is scoped to the owner). Withdrawing an offer stops
new subscriptions at once; existing subscribers are told (their need pages and the API say so,
and their contact address gets an e-mail) and keep the model until the date the owner gives.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from registry.errors import RegistryError
from registry.models import RegisteredModel

logger = logging.getLogger(__name__)

#: How far ahead a withdrawal may promise subscribers the model, and the least notice it gives.
LONGEST_NOTICE = timedelta(days=366)
SHORTEST_NOTICE = timedelta(days=1)
MAX_DESCRIPTION = 2000


def _own_model(registered_model: RegisteredModel, tenant) -> None:
    if registered_model.tenant_id is None:
        raise RegistryError(
            "shared_model",
            _("Shared (platform) models are offered to every unit already."),
            status_code=400,
        )
    if tenant is None or registered_model.tenant_id != tenant.pk:
        raise RegistryError("not_found", _("Not found."), status_code=404)


def model_offer(*, registered_model: RegisteredModel, tenant, description: str) -> RegisteredModel:
    """Offer `tenant`'s own model to other units, with a description of what it answers."""
    _own_model(registered_model, tenant)
    description = (description or "").strip()
    if not description:
        raise RegistryError(
            "description_required", _("Say what the model answers and for what kind of text.")
        )
    if len(description) > MAX_DESCRIPTION:
        raise RegistryError(
            "description_too_long",
            _("Keep the description under %(limit)s characters.") % {"limit": MAX_DESCRIPTION},
        )
    if not registered_model.aliases.filter(name="production").exists():
        raise RegistryError(
            "no_production_version",
            _("Promote a version to production before offering the model."),
            status_code=409,
        )
    with transaction.atomic():
        model = (
            RegisteredModel.objects.owned_by(tenant).select_for_update().get(pk=registered_model.pk)
        )
        model.offered = True
        model.offer_description = description
        model.offered_at = timezone.now()
        model.offer_withdrawn_at = None
        model.offer_ends_at = None
        model.save(
            update_fields=[
                "offered",
                "offer_description",
                "offered_at",
                "offer_withdrawn_at",
                "offer_ends_at",
            ]
        )
    return model


def model_offer_withdraw(
    *, registered_model: RegisteredModel, tenant, keep_until: datetime
) -> RegisteredModel:
    """Stop offering the model: no new subscriptions; other units' needs already on it keep it
    until `keep_until` (at least a day, at most a year ahead) and are told so."""
    from registry.selectors import model_subscriptions

    _own_model(registered_model, tenant)
    if not registered_model.offered:
        raise RegistryError("not_offered", _("The model is not offered."), status_code=409)
    now = timezone.now()
    if keep_until < now + SHORTEST_NOTICE or keep_until > now + LONGEST_NOTICE:
        raise RegistryError(
            "bad_keep_until",
            _("Give subscribers between one day and one year: keep_until must be in that range."),
        )
    with transaction.atomic():
        model = (
            RegisteredModel.objects.owned_by(tenant).select_for_update().get(pk=registered_model.pk)
        )
        model.offered = False
        model.offer_withdrawn_at = now
        model.offer_ends_at = keep_until
        model.save(update_fields=["offered", "offer_withdrawn_at", "offer_ends_at"])
        others = [
            row
            for row in model_subscriptions(registered_model=model, tenant=tenant)
            if not row["own"]
        ]
        addresses = sorted({row["contact_email"] for row in others if row["contact_email"]})
        transaction.on_commit(lambda: _tell_subscribers(model, addresses))
    return model


def _tell_subscribers(model: RegisteredModel, addresses: list[str]) -> None:
    if not addresses:
        return
    ends = f"{model.offer_ends_at:%Y-%m-%d %H:%M} UTC" if model.offer_ends_at else ""
    try:
        send_mail(
            subject=f"Model {model.name} is no longer offered to other units",
            message=(
                f"The owner of {model.name} withdrew its offer. Your needs that use it keep "
                f"being answered by it until {ends}; choose another model before then (the "
                "need's page lists the alternatives)."
            ),
            from_email=None,
            recipient_list=addresses,
        )
    except Exception:  # the withdrawal stands; the need pages say it too
        logger.warning("could not e-mail the subscribers of %s", model.name, exc_info=True)
