"""Stratified sampling of a prediction window, with rare strata oversampled.

Every stratum (predicted label) first gets up to `min_per_label` items, so a rare label is seen
at all; the rest of the sample is spread in proportion to the strata's sizes (largest remainder).
An item drawn from stratum h stands for N_h / n_h predictions (N_h: the stratum's predictions,
n_h: items drawn from it): that inverse inclusion probability is its weight, and a weighted mean
over the items estimates the mean over the whole stream without bias, whatever the oversampling.

Sync predictions enter through a first phase: only a share of them keeps its text (the log's
sync sample rate r times the need's `sync_review_share` s, stored per row as `text_share`), so a
kept sync row stands for e = 1 / (r * s) predictions; stream and batch rows (texts always kept)
have e = 1. A stratum's size is then the Horvitz-Thompson total N_h = sum of e over its rows, and
an item drawn from it weighs

    w_i = e_i * N_h / (n_h * mean e over the stratum's pool)

(`item_weight`). With every e = 1 this is N_h / n_h as before. Drawing n_h of the pool's D_h
texts at random, the expected sum of the drawn e is n_h * mean(e), so the weights of a stratum
add up to N_h in expectation and a sync item counts 1 / (r * s) times a stream item of the same
stratum: the estimate covers all predictions, sync ones included, without bias. Predictions
served while a need kept no sync texts (s = 0) have no chance to be drawn and are outside the
frame; the round covers the traffic whose texts could be kept.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

NO_LABEL = "(none)"


@dataclass(frozen=True)
class Stratum:
    key: str
    size: float  # predictions in the window (N_h; an estimate when sync rows are expanded)
    distinct: int  # distinct texts that can be drawn (caps n_h)


def allocate(strata: list[Stratum], n: int, *, min_per_label: int) -> dict[str, int]:
    """Items to draw per stratum: a floor for every stratum, then proportional to size."""
    n = min(n, sum(s.distinct for s in strata))
    alloc = {s.key: min(s.distinct, min_per_label) for s in strata}
    if sum(alloc.values()) > n:
        # Even the floors do not fit: one each for as many strata as fit (rarest first), then
        # proportional.
        alloc = {s.key: 0 for s in strata}
        for s in sorted(strata, key=lambda s: (s.size, s.key))[:n]:
            alloc[s.key] = 1
    while (left := n - sum(alloc.values())) > 0:
        open_strata = [s for s in strata if alloc[s.key] < s.distinct]
        total = sum(s.size for s in open_strata)
        shares = {s.key: left * s.size / total for s in open_strata}
        given = 0
        for s in open_strata:
            extra = min(math.floor(shares[s.key]), s.distinct - alloc[s.key])
            alloc[s.key] += extra
            given += extra
        if given == 0:  # hand out the remainder one by one, largest fraction first
            by_fraction = sorted(open_strata, key=lambda s: (-(shares[s.key] % 1), -s.size, s.key))
            for s in by_fraction[:left]:
                alloc[s.key] += 1
    return alloc


def weight(size: float, drawn: int) -> float:
    return size / drawn if drawn else 0.0


def expansion(text_share: float | None) -> float:
    """How many predictions a logged row with a text stands for (1 / its keep probability)."""
    return 1.0 / text_share if text_share else 1.0


def item_weight(*, expansion: float, size: float, drawn: int, pool_mean_expansion: float) -> float:
    """w_i = e_i * N_h / (n_h * mean e of the pool): see the module's docstring."""
    if not drawn or pool_mean_expansion <= 0:
        return 0.0
    return expansion * size / (drawn * pool_mean_expansion)


def draw(pool: list, k: int, rng: random.Random) -> list:
    """k members of `pool` without replacement (all of them when it is smaller)."""
    return list(pool) if k >= len(pool) else rng.sample(pool, k)


def double_review_positions(n: int, share: float, rng: random.Random) -> set[int]:
    """Which of the n items (0-based positions) get a second reviewer."""
    k = min(n, round(n * share))
    return set(rng.sample(range(n), k)) if k else set()
