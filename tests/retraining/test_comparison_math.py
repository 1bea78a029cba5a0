"""The comparison's statistics and the guard's rules on hand-made numbers."""

from __future__ import annotations

import pytest

from retraining.comparison import GuardSettings, guard_verdict, mcnemar_exact


def test_mcnemar_is_the_exact_binomial_on_discordant_pairs():
    # 8 discordant pairs split 1/7: two-sided P(X<=1 or X>=7 | n=8, p=1/2) = 18/256.
    assert mcnemar_exact(champion_only=1, challenger_only=7) == pytest.approx(18 / 256)
    assert mcnemar_exact(champion_only=4, challenger_only=4) == pytest.approx(1.0)
    assert mcnemar_exact(champion_only=0, challenger_only=0) == 1.0


def _result(n, f1_champ, f1_chall, recalls):
    return {
        "n": n,
        "overall": {"macro_f1": {"champion": f1_champ, "challenger": f1_chall}},
        "per_label": {
            label: {"support": 10, "recall_champion": a, "recall_challenger": b}
            for label, (a, b) in recalls.items()
        },
    }


SETTINGS = GuardSettings(promotion_margin=0.02, max_recall_drop=0.05, min_fresh_samples=20)


def test_guard_passes_a_challenger_better_by_the_margin_without_recall_drops():
    comparison = {
        "test": _result(100, 0.9, 0.9, {"a": (0.9, 0.88), "b": (0.8, 0.9)}),
        "fresh": _result(30, 0.6, 0.7, {"a": (0.5, 0.9), "b": (0.7, 0.7)}),
    }
    assert guard_verdict(comparison, SETTINGS)["passed"]


def test_guard_refuses_a_recall_drop_on_the_test_set_even_when_fresh_is_better():
    comparison = {
        "test": _result(100, 0.9, 0.9, {"a": (0.9, 0.8), "b": (0.8, 0.9)}),
        "fresh": _result(30, 0.6, 0.7, {"a": (0.5, 0.9)}),
    }
    verdict = guard_verdict(comparison, SETTINGS)
    failed = [c for c in verdict["checks"] if not c["passed"]]
    assert not verdict["passed"] and [c["code"] for c in failed] == ["recall_drop"]
    assert "a on the test set" in failed[0]["message"]


def test_guard_refuses_a_challenger_within_the_margin():
    comparison = {
        "test": _result(100, 0.9, 0.9, {"a": (0.9, 0.9)}),
        "fresh": _result(30, 0.70, 0.71, {"a": (0.9, 0.9)}),
    }
    verdict = guard_verdict(comparison, SETTINGS)
    assert [c["code"] for c in verdict["checks"] if not c["passed"]] == ["fresh_set_margin"]
