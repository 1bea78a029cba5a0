"""Shadow mode, the retraining side: which needs shadow (a per-process cache the serving hook
asks on the hot path) and the drainer that scores the handed-over items with the challenger and
counts agreement with the champion's answer (top label)."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from core.localtime import tenant_local_date
from registry.models import AliasName, ModelAlias, ModelVersion
from registry.services.versions import load_model_version
from retraining.models import Retrain, RetrainPolicy, RetrainStatus, ShadowAgreement
from serving import shadow as serving_shadow
from tenants.models import Tenant

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[int, tuple[float, int]] = {}
_loaded_at = float("-inf")


def shadow_shares_all_tenants() -> dict[int, tuple[float, int]]:
    """need id -> (share, challenger version id) for needs with shadow mode on and a compared
    challenger that is still its model's `candidate`. One query (process-wide cache)."""
    rows = (
        RetrainPolicy.objects.dangerously_unscoped()
        .filter(shadow_share__gt=0, need__retrains__status=RetrainStatus.READY)
        .values_list(
            "need_id",
            "shadow_share",
            "need__retrains__challenger_id",
            # The challenger's own model: another algorithm's challenger lives in another one.
            "need__retrains__challenger__registered_model_id",
        )
    )
    candidates = dict(
        ModelAlias.objects.filter(name=AliasName.CANDIDATE).values_list(
            "registered_model_id", "version_id"
        )
    )
    shares: dict[int, tuple[float, int]] = {}
    for need_id, share, challenger_id, model_id in rows:
        if challenger_id and candidates.get(model_id) == challenger_id:
            shares[need_id] = (float(share), int(challenger_id))
    return shares


def share_for_need(need_id: int) -> tuple[float, int] | None:
    """The serving hook's provider: re-read every SHADOW_REFRESH_SECONDS, else a dict lookup."""
    global _cache, _loaded_at
    if time.monotonic() - _loaded_at >= settings.SHADOW_REFRESH_SECONDS:
        with _lock:
            if time.monotonic() - _loaded_at >= settings.SHADOW_REFRESH_SECONDS:
                try:
                    _cache = shadow_shares_all_tenants()
                except Exception:
                    logger.warning("cannot read shadow shares; shadow mode paused", exc_info=True)
                    _cache = {}
                _loaded_at = time.monotonic()
    return _cache.get(need_id)


def forget_shares() -> None:
    """Drop the cached shares (tests; a policy change reaches processes within the refresh)."""
    global _loaded_at
    with _lock:
        _loaded_at = float("-inf")


def _served_day(tenant: Tenant | None, item: dict) -> date:
    """The tenant's calendar day the champion answered the item on (its wall clock, like the
    monitoring days), not the drain's: an item served at 23:59 counts for that day."""
    served = datetime.fromtimestamp(item["t"], tz=UTC) if "t" in item else timezone.now()
    return tenant_local_date(tenant, served) if tenant is not None else served.date()


def shadow_drain_all_tenants(*, batch: int = 500, limit: int = 5000) -> int:
    """Score buffered shadow items with their challenger; add to the day's agreement counts.
    Returns the number scored. Items whose challenger is gone are dropped."""
    scored = 0
    tenants: dict[int, Tenant | None] = {}
    while scored < limit:
        items = serving_shadow.take(batch=batch)
        if not items:
            break
        groups: dict[tuple[int, int, int, int, date], list[dict]] = defaultdict(list)
        for item in items:
            tenant_id = item["tn"]
            if tenant_id not in tenants:
                tenants[tenant_id] = Tenant.objects.filter(pk=tenant_id).first()
            day = _served_day(tenants[tenant_id], item)
            groups[(tenant_id, item["nd"], item["mv"], item["cv"], day)].append(item)
        for (tenant_id, need_id, champion_id, challenger_id, day), group in groups.items():
            version = ModelVersion.objects.for_tenant(tenant_id).filter(pk=challenger_id).first()
            if version is None:
                continue
            model = load_model_version(version)
            predicted = model.predict_label_lists([item["x"] for item in group])
            agreed = sum(
                1
                for item, labels in zip(group, predicted, strict=True)
                if labels and labels[0] == item["tl"] or (not labels and not item["tl"])
            )
            row, _ = ShadowAgreement.objects.for_tenant(tenant_id).get_or_create(
                need_id=need_id,
                champion_id=champion_id,
                challenger_id=challenger_id,
                day=day,
                defaults={"tenant_id": tenant_id},
            )
            ShadowAgreement.objects.for_tenant(tenant_id).filter(pk=row.pk).update(
                scored=F("scored") + len(group), agreed=F("agreed") + agreed
            )
            scored += len(group)
    return scored


def retrain_shadow_summary(retrain: Retrain) -> dict | None:
    """Agreement of the retrain's challenger with its champion on shadowed traffic."""
    if retrain.challenger_id is None:
        return None
    rows = ShadowAgreement.objects.for_tenant(retrain.tenant_id).filter(
        need_id=retrain.need_id,
        champion_id=retrain.champion_id,
        challenger_id=retrain.challenger_id,
    )
    scored = sum(r.scored for r in rows)
    agreed = sum(r.agreed for r in rows)
    return {
        "scored": scored,
        "agreed": agreed,
        "agreement_rate": round(agreed / scored, 4) if scored else None,
    }
