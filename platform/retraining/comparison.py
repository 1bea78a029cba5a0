"""Champion vs challenger on the same labelled texts: overall and per-label deltas, flips, and
an exact McNemar test; then the promotion guard. Pure (no database): services feed it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scipy.stats import binomtest

from registry import evaluation
from registry.ml import TextClassifier

#: Flip examples kept per direction and set (the page and the API show them).
FLIP_EXAMPLES = 20
OVERALL_KEYS = ("accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall")


def mcnemar_exact(*, champion_only: int, challenger_only: int) -> float:
    """Two-sided exact McNemar p-value: under H0 a discordant pair is equally likely to favour
    either model, so the count favouring one is Binomial(n_discordant, 1/2)."""
    n = champion_only + challenger_only
    if n == 0:
        return 1.0
    return float(binomtest(challenger_only, n, 0.5, alternative="two-sided").pvalue)


def compare_on(
    *,
    champion: TextClassifier,
    challenger: TextClassifier,
    texts: list[str],
    label_lists: list[list[str]],
    labels: list[str],
) -> dict[str, Any]:
    """Evaluate both models on one set. An item is "right" when the predicted label set equals
    the true one (multi-class: the one label)."""
    if not texts:
        return {"n": 0}
    metrics = {
        "champion": evaluation.evaluate(champion, texts, label_lists, labels=labels),
        "challenger": evaluation.evaluate(challenger, texts, label_lists, labels=labels),
    }
    predicted = {
        "champion": champion.predict_label_lists(texts),
        "challenger": challenger.predict_label_lists(texts),
    }
    truth = [sorted(set(row)) for row in label_lists]
    right = {
        side: [sorted(set(p)) == t for p, t in zip(rows, truth, strict=True)]
        for side, rows in predicted.items()
    }
    flips: dict[str, list[dict[str, Any]]] = {"fixed": [], "broken": []}
    counts = {"both_right": 0, "both_wrong": 0, "fixed": 0, "broken": 0}
    for i, (a, b) in enumerate(zip(right["champion"], right["challenger"], strict=True)):
        if a and b:
            counts["both_right"] += 1
        elif not a and not b:
            counts["both_wrong"] += 1
        else:
            kind = "fixed" if b else "broken"  # fixed: only the challenger is right
            counts[kind] += 1
            if len(flips[kind]) < FLIP_EXAMPLES:
                flips[kind].append(
                    {
                        "text": texts[i][:300],
                        "truth": truth[i],
                        "champion": sorted(predicted["champion"][i]),
                        "challenger": sorted(predicted["challenger"][i]),
                    }
                )
    overall = {
        key: {
            "champion": metrics["champion"][key],
            "challenger": metrics["challenger"][key],
            "delta": evaluation.delta(metrics["champion"][key], metrics["challenger"][key]),
        }
        for key in OVERALL_KEYS
    }
    per_label = {}
    for label in labels:
        ma = metrics["champion"]["per_label"][label]
        mb = metrics["challenger"]["per_label"][label]
        per_label[label] = {
            "support": ma["support"],
            **{
                f"{key}_{side}": m[key]
                for key in ("precision", "recall", "f1")
                for side, m in (("champion", ma), ("challenger", mb))
            },
            **{
                f"{key}_delta": evaluation.delta(ma[key], mb[key])
                for key in ("precision", "recall", "f1")
            },
        }
    return {
        "n": len(texts),
        "overall": overall,
        "per_label": per_label,
        "flips": {
            **counts,
            "p_value": round(
                mcnemar_exact(champion_only=counts["broken"], challenger_only=counts["fixed"]), 6
            ),
            "examples": flips,
        },
    }


@dataclass(frozen=True)
class GuardSettings:
    promotion_margin: float
    max_recall_drop: float
    min_fresh_samples: int


def guard_verdict(comparison: dict[str, Any], settings: GuardSettings) -> dict[str, Any]:
    """May the challenger replace the champion? Every check is listed with its numbers.

    1. The fresh set holds at least `min_fresh_samples` items (else there is nothing to judge).
    2. On the fresh set the challenger's macro-F1 >= the champion's + `promotion_margin`.
    3. No label's recall drops by more than `max_recall_drop`, on the test set or the fresh set.
    """
    checks: list[dict[str, Any]] = []
    fresh = comparison.get("fresh") or {"n": 0}
    n_fresh = fresh.get("n", 0)
    checks.append(
        {
            "code": "fresh_set_size",
            "passed": n_fresh >= settings.min_fresh_samples,
            "message": f"fresh set has {n_fresh} samples (at least {settings.min_fresh_samples}"
            " needed)",
        }
    )
    if n_fresh:
        champ = fresh["overall"]["macro_f1"]["champion"]
        chall = fresh["overall"]["macro_f1"]["challenger"]
        need = round(champ + settings.promotion_margin, 4)
        checks.append(
            {
                "code": "fresh_set_margin",
                "passed": chall >= need - 1e-9,
                "message": f"fresh-set macro-F1 {chall:.3f} vs champion {champ:.3f} "
                f"(needs at least {need:.3f}, margin {settings.promotion_margin:+.3f})",
            }
        )
    drops = []
    for set_name in ("test", "fresh"):
        result = comparison.get(set_name) or {"n": 0}
        if not result.get("n"):
            continue
        for label, row in result["per_label"].items():
            if not row["support"]:
                continue
            drop = row["recall_champion"] - row["recall_challenger"]
            if drop > settings.max_recall_drop + 1e-9:
                drops.append(f"{label} on the {set_name} set: recall -{drop:.3f}")
    checks.append(
        {
            "code": "recall_drop",
            "passed": not drops,
            "message": (
                f"no label's recall drops by more than {settings.max_recall_drop:.3f}"
                if not drops
                else f"recall drops beyond {settings.max_recall_drop:.3f}: " + "; ".join(drops)
            ),
        }
    )
    return {"passed": all(c["passed"] for c in checks), "checks": checks}
