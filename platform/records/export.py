"""One Markdown document per record: the written sections, the derived timeline and the model
cards of the versions that served the need in production."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils import timezone

from records import selectors
from registry.model_card import card_markdown
from registry.models import AliasEvent, ModelVersion
from registry.selectors import serving_version
from tenants.models import Need, Tenant


def production_versions(*, tenant: Tenant, need: Need) -> list[ModelVersion]:
    """The versions the need's alias has pointed at, the serving one first, newest first."""
    if need.model_id is None:
        return []
    ids = list(
        AliasEvent.objects.filter(registered_model_id=need.model_id, alias=need.model_alias)
        .order_by("-at", "-pk")
        .values_list("to_version_id", flat=True)
    )
    serving = serving_version(need)
    if serving is not None:
        ids.insert(0, serving.pk)
    ordered = list(dict.fromkeys(ids))
    versions = {
        v.pk: v
        for v in ModelVersion.objects.for_tenant(tenant)
        .filter(pk__in=ordered)
        .select_related("registered_model__label_set", "snapshot", "training_run", "revision")
    }
    return [versions[pk] for pk in ordered if pk in versions]


def record_markdown(*, tenant: Tenant, need: Need) -> str:
    view = selectors.record_view(tenant=tenant, need=need)
    versions = production_versions(tenant=tenant, need=need)
    cards = [card_markdown(version, viewer_tenant=tenant) for version in versions]
    return render_to_string(
        "records/record.md",
        {"view": view, "need": need, "cards": cards, "versions": versions, "now": timezone.now()},
    )
