"""Ranked scores: the one stored shape of a result's scores, and the only way to read them.

JSON objects have no order: PostgreSQL's jsonb re-sorts their keys (shortest first, then
bytewise), so "the first key of the scores object" is not the best label once a result has been
stored. Stored results (batch results, stream items) therefore keep their scores as a list of
`[label, score]` pairs, best first, and every reader goes through `ranked_scores()`, which also
ranks a mapping by value (never by key order), for rows written before the change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Ranked = list[list[Any]]  # [[label, score], ...], best first


def ranked_scores(scores: Mapping[str, float] | list | None) -> Ranked:
    """[[label, score], ...] ordered by score, best first (ties keep the given order)."""
    if not scores:
        return []
    pairs = scores.items() if isinstance(scores, Mapping) else scores
    # Python's sort is stable: a runtime result (already best first, ties in model label order)
    # keeps its order exactly; only a mapping read back from JSON gets genuinely re-ranked.
    return sorted(([str(label), float(score)] for label, score in pairs), key=lambda p: -p[1])


def scores_mapping(ranked: Ranked) -> dict[str, float]:
    """The public `scores` object (emitted best first; clients must not rely on that)."""
    return {label: score for label, score in ranked}


def top(ranked: Ranked) -> tuple[str, float | None]:
    """The best label and its score, or ("", None) when there are no scores."""
    if not ranked:
        return "", None
    label, score = ranked[0]
    return label, score
