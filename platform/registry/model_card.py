"""Model cards: one set of facts per version, rendered as a portal page and as Markdown."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from registry import selectors
from registry.models import ModelVersion

#: F1 below this is called out under "known limits".
WEAK_F1 = 0.8
#: A label with less than this share of the training data is called "rare".
RARE_SHARE = 0.05


def _language(params: dict) -> str:
    if params.get("script") == "cjk":
        return _("Chinese (and other CJK) text: character 1–2-grams, no word segmentation.")
    return _("English-like text: word 1–2-grams, lower-cased; other languages are not supported.")


def _in_label_order(per_label: dict, labels: list[str]) -> list[str]:
    position = {label: i for i, label in enumerate(labels)}
    return sorted(per_label, key=lambda label: (position.get(label, len(position)), label))


def served_data(metrics: dict) -> str:
    """Which data the served artifact saw, and when the evaluation was made relative to it."""
    fitted = metrics.get("fitted_on") or {}
    n_train, n_test = metrics.get("n_train", 0), metrics.get("n_test", 0)
    if fitted.get("split") == "all":
        return _(
            "The served model was refitted on all %(n)s samples of the snapshot (train + test). "
            "The evaluation below was made before that refit, by the same configuration fitted "
            "on the %(train)s training samples and scored on the %(test)s held-out test samples."
        ) % {"n": fitted.get("n_samples", n_train + n_test), "train": n_train, "test": n_test}
    return _(
        "The served model was fitted on the %(train)s training samples only; the %(test)s "
        "held-out test samples it was evaluated on were never used to fit it."
    ) % {"train": n_train, "test": n_test}


def card_data(version: ModelVersion, *, viewer_tenant) -> dict[str, Any]:
    model = version.registered_model
    metrics = version.metrics or {}
    per_label = metrics.get("per_label", {})
    distribution = version.snapshot.label_distribution or {}
    total = sum(distribution.values()) or 1
    # The card names the viewer's own needs and only counts other tenants' (platform staff
    # without a tenant, viewer_tenant=None, see every need).
    needs = list(selectors.needs_using_all_tenants(model))
    own_needs = [n for n in needs if viewer_tenant is None or n.tenant_id == viewer_tenant.pk]
    limits = []
    weak = [
        (label, per_label[label]["f1"])
        for label in _in_label_order(per_label, metrics.get("labels", []))
        if per_label[label]["support"] and per_label[label]["f1"] < WEAK_F1
    ]
    best = max((row["f1"] for row in per_label.values() if row["support"]), default=0.0)
    weakest = [
        label for label in metrics.get("weakest_labels", [])[:3] if per_label[label]["f1"] < best
    ]
    if per_label and not weakest:
        limits.append(_("No label stands out as weaker than the others on the test split."))
    for label in weakest:
        row = per_label.get(label, {})
        limits.append(
            _(
                "Weakest label %(label)s: F1 %(f1).3f (precision %(precision).3f, recall %(recall).3f)."
            )
            % {
                "label": label,
                "f1": row.get("f1", 0),
                "precision": row.get("precision", 0),
                "recall": row.get("recall", 0),
            }
        )
    rare = sorted(label for label, n in distribution.items() if n / total < RARE_SHARE)
    if rare:
        limits.append(
            _("Rare in training data (<%(share)s): %(labels)s; expect lower recall.")
            % {"share": f"{RARE_SHARE:.0%}", "labels": ", ".join(rare)}
        )
    limits.append(_("Language: %(language)s") % {"language": _language(version.params)})
    if version.params.get("multilabel"):
        limits.append(_("Multi-label: per-label thresholds were tuned on a validation slice."))
    else:
        limits.append(
            _(
                "Multi-class: always picks exactly one label, even for text that fits none; "
                "use the need's threshold to abstain on low confidence."
            )
        )
    limits.append(
        _(
            "Evaluated on %(n)s held-out samples from the same sources as the training data; "
            "expect lower scores on text from other sources or later periods."
        )
        % {"n": metrics.get("n_test", 0)}
    )
    return {
        "version": version,
        "model": model,
        "label_set": model.label_set,
        "aliases": list(version.aliases.values_list("name", flat=True)),
        "needs": own_needs,
        "other_needs": len(needs) - len(own_needs),
        "metrics": metrics,
        "served_data": served_data(metrics),
        # Metrics come back from jsonb with their keys re-sorted: rows follow the model's label
        # order (the confusion matrix's) and the counts, never the stored key order.
        "per_label": [
            {"label": label, **per_label[label], "train_count": distribution.get(label, 0)}
            for label in _in_label_order(per_label, metrics.get("labels", []))
        ],
        "distribution": [
            {"label": label, "count": n, "share": n / total}
            for label, n in sorted(distribution.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "matrix_rows": [
            {"label": label, "cells": row}
            for label, row in zip(
                metrics.get("labels", []), metrics.get("confusion_matrix", []), strict=False
            )
        ],
        "classifier_params": version.params.get("classifier", {}),
        "vectorizer_params": version.params.get("vectorizer", {}),
        "thresholds": version.params.get("thresholds", {}),
        # Versions registered by an optimisation run: the variant and its budgets/measurements.
        "variant_params": version.params.get("variant", {}),
        "optimisation": version.params.get("optimisation"),
        "limits": limits,
        "weak": weak,
        "run": version.training_run,
        "children": list(version.children.all()),
    }


def card_markdown(version: ModelVersion, *, viewer_tenant) -> str:
    return render_to_string(
        "registry/model_card.md", card_data(version, viewer_tenant=viewer_tenant)
    )
