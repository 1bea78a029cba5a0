"""Accuracy and precision from weighted review verdicts, with 95 % Wilson intervals.

The items of a stratified sample carry unequal weights, so the plain binomial count does not
apply. The point estimate is the weighted mean p = sum(w*y) / sum(w). For the interval, the
weighted sample is worth fewer independent draws than its size: Kish's effective sample size
n_eff = (sum w)^2 / sum(w^2) (equal weights give n_eff = n; uneven weights give less). The
Wilson interval is then that of k = p * n_eff successes in n_eff trials, rounded to whole numbers
because scipy's `binomtest` takes counts. This is the usual design-effect approximation for
survey proportions; it is conservative for heavily oversampled rare labels, never optimistic.
"""

from __future__ import annotations

from collections.abc import Sequence

from scipy.stats import binomtest


def effective_n(weights: Sequence[float]) -> float:
    total = sum(weights)
    squares = sum(w * w for w in weights)
    return total * total / squares if squares else 0.0


def weighted_proportion(weights: Sequence[float], hits: Sequence[bool]) -> dict:
    """{"estimate", "low", "high", "n", "n_eff"}; estimate and bounds are None without data."""
    n = len(weights)
    total = sum(weights)
    if not n or total <= 0:
        return {"estimate": None, "low": None, "high": None, "n": n, "n_eff": 0.0}
    p = sum(w for w, hit in zip(weights, hits, strict=True) if hit) / total
    n_eff = effective_n(weights)
    trials = max(1, round(n_eff))
    successes = min(trials, max(0, round(p * trials)))
    ci = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return {
        "estimate": round(p, 4),
        "low": round(float(ci.low), 4),
        "high": round(float(ci.high), 4),
        "n": n,
        "n_eff": round(n_eff, 1),
    }


def kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two reviewers' answers on the same items (None when undefined)."""
    if len(first) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    value = cohen_kappa_score(list(first), list(second))
    return None if value != value else round(float(value), 4)  # NaN: one class only
