"""Reads of the retraining app (tenant always given)."""

from __future__ import annotations

from django.db.models import QuerySet

from retraining.models import Retrain, ShadowAgreement


def retrains_for_tenant(tenant) -> QuerySet[Retrain]:
    return Retrain.objects.for_tenant(tenant).select_related(
        "need", "champion__registered_model", "challenger__registered_model", "training_run"
    )


def retrains_for_need(*, tenant, need) -> QuerySet[Retrain]:
    return retrains_for_tenant(tenant).filter(need=need)


def shadow_days(*, tenant, retrain: Retrain) -> QuerySet[ShadowAgreement]:
    return ShadowAgreement.objects.for_tenant(tenant).filter(
        need_id=retrain.need_id,
        champion_id=retrain.champion_id,
        challenger_id=retrain.challenger_id,
    )


def comparison_chart_data(retrain: Retrain, names: dict[str, str]) -> dict:
    """What the comparison page's chart draws: per-label F1 of both models on both sets."""
    comparison = retrain.comparison or {}
    data: dict = {"labels": [], "names": names, "sets": {}}
    for set_name in ("test", "fresh"):
        result = comparison.get(set_name) or {}
        per_label = result.get("per_label") or {}
        if not data["labels"]:
            data["labels"] = list(per_label)
        data["sets"][set_name] = {
            "n": result.get("n", 0),
            "champion": [per_label[k]["f1_champion"] for k in per_label],
            "challenger": [per_label[k]["f1_challenger"] for k in per_label],
            "support": [per_label[k]["support"] for k in per_label],
        }
    return data
