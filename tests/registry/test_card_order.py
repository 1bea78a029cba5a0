"""The model card lists labels in the model's order, not in the order jsonb stored its keys."""

from __future__ import annotations

from registry.model_card import card_data
from registry.models import ModelVersion


def test_card_rows_follow_the_model_label_order_not_stored_key_order(
    requires_postgres, trained_version
):
    version = ModelVersion.objects.dangerously_unscoped().get(
        pk=trained_version.pk
    )  # read back through jsonb
    labels = version.metrics["labels"]
    assert list(version.metrics["per_label"]) != labels  # jsonb re-sorted the keys
    card = card_data(version, viewer_tenant=None)
    assert [row["label"] for row in card["per_label"]] == labels
    assert [row["label"] for row in card["matrix_rows"]] == labels
    counts = [row["count"] for row in card["distribution"]]
    assert counts == sorted(counts, reverse=True)
