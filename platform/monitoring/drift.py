"""Drift statistics over label counts (pure functions, no database).

Inputs are small dicts `{label: count}` read from the aggregates, never raw predictions.

- **PSI** (population stability index): `sum_i (o_i - e_i) * ln(o_i / e_i)` over the shares of the
  observed (o) and baseline/expected (e) distributions, where a share of 0 is replaced by
  `EPSILON = 1e-4` (without renormalising) so that a vanished or new label contributes a large but
  finite term instead of infinity. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large.
- **Jensen-Shannon distance**: `scipy.spatial.distance.jensenshannon(o, e, base=2)`, in [0, 1].
- **Chi-square goodness of fit**: `scipy.stats.chisquare(observed_counts, expected_counts)` where
  expected counts are the baseline shares (zeros smoothed with EPSILON and renormalised, because a
  zero expectation makes the statistic infinite) times the observed total.
- **Rare-class finding** (stored in drift reports for reference; the alert rules, which judge a class
  rare by its baseline share and correct for many labels and days, live in `monitoring.rules`): a
  label the baseline expects at least k times (E = n * e_i >= k) is
  under-predicted when `scipy.stats.poisson.cdf(observed, E) < alpha`, i.e. the observed count is
  below the Poisson lower bound `poisson.ppf(alpha, E)`; "missing" when it was not predicted at all
  (flagged whatever the p-value: k is the operator's "this label must show up" knob).
- **Dominance** (likewise kept in drift reports only): a label whose observed share is >= `dominance_share` and >= `dominance_ratio` times
  its baseline share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

EPSILON = 1e-4


@dataclass(frozen=True)
class DriftParams:
    rare_min_expected: float = 5
    rare_alpha: float = 0.01
    dominance_share: float = 0.5
    dominance_ratio: float = 2.0
    top_movers: int = 5


@dataclass
class DriftResult:
    labels: list[str]
    volume: int
    baseline: dict[str, float]
    observed: dict[str, float]
    psi: float | None
    js_distance: float | None
    chi2_statistic: float | None
    chi2_p_value: float | None
    top_movers: list[dict] = field(default_factory=list)
    rare_underpredicted: list[dict] = field(default_factory=list)
    dominant: list[dict] = field(default_factory=list)


def shares(counts: Mapping[str, float], labels: list[str]) -> np.ndarray:
    values = np.array([float(counts.get(label, 0)) for label in labels], dtype=float)
    total = values.sum()
    return values / total if total > 0 else values


def psi(expected: np.ndarray, observed: np.ndarray, *, epsilon: float = EPSILON) -> float:
    e = np.where(expected > 0, expected, epsilon)
    o = np.where(observed > 0, observed, epsilon)
    return float(np.sum((o - e) * np.log(o / e)))


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def compare(
    *,
    baseline_counts: Mapping[str, float],
    observed_counts: Mapping[str, float],
    params: DriftParams | None = None,
) -> DriftResult:
    """Compare an observed label-count distribution with a baseline one."""
    params = params or DriftParams()
    labels = sorted(
        {k for k, v in baseline_counts.items() if v > 0}
        | {k for k, v in observed_counts.items() if v > 0}
    )
    n = int(round(sum(float(observed_counts.get(label, 0)) for label in labels)))
    e = shares(baseline_counts, labels)
    o = shares(observed_counts, labels)
    result = DriftResult(
        labels=labels,
        volume=n,
        baseline={label: float(v) for label, v in zip(labels, e, strict=True)},
        observed={label: float(v) for label, v in zip(labels, o, strict=True)},
        psi=None,
        js_distance=None,
        chi2_statistic=None,
        chi2_p_value=None,
    )
    if n == 0 or e.sum() == 0 or len(labels) == 0:
        return result

    result.psi = psi(e, o)
    result.js_distance = float(jensenshannon(o, e, base=2)) if len(labels) > 1 else 0.0
    if len(labels) > 1:
        smoothed = np.where(e > 0, e, EPSILON)
        smoothed = smoothed / smoothed.sum()
        observed_counts_arr = np.array([float(observed_counts.get(lb, 0)) for lb in labels])
        chi = stats.chisquare(observed_counts_arr, f_exp=smoothed * observed_counts_arr.sum())
        result.chi2_statistic = _finite(chi.statistic)
        result.chi2_p_value = _finite(chi.pvalue)

    deltas = sorted(
        (
            {
                "label": label,
                "baseline_share": float(eb),
                "observed_share": float(ob),
                "delta": float(ob - eb),
            }
            for label, eb, ob in zip(labels, e, o, strict=True)
        ),
        key=lambda row: (-abs(row["delta"]), row["label"]),
    )
    result.top_movers = deltas[: params.top_movers]

    for label, eb, ob in zip(labels, e, o, strict=True):
        expected = n * float(eb)
        count = int(round(float(observed_counts.get(label, 0))))
        if expected >= params.rare_min_expected:
            p_value = float(stats.poisson.cdf(count, expected))
            if p_value < params.rare_alpha or count == 0:
                result.rare_underpredicted.append(
                    {
                        "label": label,
                        "expected": expected,
                        "observed": count,
                        "lower_bound": float(stats.poisson.ppf(params.rare_alpha, expected)),
                        "p_value": p_value,
                        "missing": count == 0,
                    }
                )
        if ob >= params.dominance_share and (eb == 0 or ob >= params.dominance_ratio * eb):
            result.dominant.append(
                {
                    "label": label,
                    "baseline_share": float(eb),
                    "observed_share": float(ob),
                    "ratio": float(ob / eb) if eb > 0 else None,
                }
            )
    result.rare_underpredicted.sort(key=lambda row: (row["p_value"], row["label"]))
    return result
