"""Drift statistics on known synthetic distributions; expected values are worked out by hand."""

from __future__ import annotations

import math

import pytest

from monitoring import drift


def test_psi_of_a_two_label_shift_matches_the_formula():
    result = drift.compare(baseline_counts={"a": 50, "b": 50}, observed_counts={"a": 80, "b": 20})
    # (0.8 - 0.5) ln(0.8/0.5) + (0.2 - 0.5) ln(0.2/0.5)
    expected = 0.3 * math.log(1.6) + (-0.3) * math.log(0.4)
    assert result.psi == pytest.approx(expected, rel=1e-9)
    assert result.psi == pytest.approx(0.415888, abs=1e-6)


def test_psi_of_a_vanished_label_uses_the_documented_epsilon():
    result = drift.compare(baseline_counts={"a": 5, "b": 5}, observed_counts={"a": 40})
    eps = 1e-4
    expected = (1.0 - 0.5) * math.log(1.0 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    assert result.psi == pytest.approx(expected, rel=1e-9)
    assert result.observed == {"a": 1.0, "b": 0.0}


def test_js_distance_matches_the_definition_in_bits():
    result = drift.compare(baseline_counts={"a": 50, "b": 50}, observed_counts={"a": 80, "b": 20})
    p, q = [0.8, 0.2], [0.5, 0.5]
    m = [(x + y) / 2 for x, y in zip(p, q, strict=True)]
    kl_pm = sum(x * math.log2(x / y) for x, y in zip(p, m, strict=True))
    kl_qm = sum(x * math.log2(x / y) for x, y in zip(q, m, strict=True))
    assert result.js_distance == pytest.approx(math.sqrt((kl_pm + kl_qm) / 2), rel=1e-9)


def test_chi_square_of_three_labels_matches_the_hand_computation():
    result = drift.compare(
        baseline_counts={"a": 400, "b": 400, "c": 200}, observed_counts={"a": 50, "b": 30, "c": 20}
    )
    # expected counts 40, 40, 20 -> (10^2)/40 + (10^2)/40 + 0 = 5; df = 2 -> p = exp(-x/2)
    assert result.chi2_statistic == pytest.approx(5.0)
    assert result.chi2_p_value == pytest.approx(math.exp(-2.5), rel=1e-9)


def test_identical_distributions_show_no_drift():
    result = drift.compare(
        baseline_counts={"a": 6, "b": 3, "c": 1}, observed_counts={"a": 60, "b": 30, "c": 10}
    )
    assert result.psi == pytest.approx(0.0, abs=1e-12)
    assert result.js_distance == pytest.approx(0.0, abs=1e-7)
    assert result.chi2_statistic == pytest.approx(0.0, abs=1e-12)
    assert result.chi2_p_value == pytest.approx(1.0)
    assert result.rare_underpredicted == [] and result.dominant == []


def test_top_movers_are_sorted_by_absolute_change():
    result = drift.compare(
        baseline_counts={"a": 40, "b": 40, "c": 20}, observed_counts={"a": 70, "b": 25, "c": 5}
    )
    assert [m["label"] for m in result.top_movers] == ["a", "b", "c"]
    assert result.top_movers[0]["delta"] == pytest.approx(0.3)
    assert result.top_movers[2]["delta"] == pytest.approx(-0.15)


def _poisson_cdf(k: int, lam: float) -> float:
    return sum(math.exp(-lam) * lam**i / math.factorial(i) for i in range(k + 1))


def test_missing_rare_class_is_flagged_with_its_poisson_probability():
    # Baseline c = 10%; 200 predictions -> c expected 20 times, seen 0 times.
    result = drift.compare(
        baseline_counts={"a": 45, "b": 45, "c": 10}, observed_counts={"a": 110, "b": 90}
    )
    assert [r["label"] for r in result.rare_underpredicted] == ["c"]
    row = result.rare_underpredicted[0]
    assert row["expected"] == pytest.approx(20.0)
    assert row["missing"] is True and row["observed"] == 0
    assert row["p_value"] == pytest.approx(math.exp(-20), rel=1e-9)


def test_underpredicted_class_is_flagged_only_below_the_poisson_lower_bound():
    baseline = {"a": 45, "b": 45, "c": 10}
    few = drift.compare(baseline_counts=baseline, observed_counts={"a": 100, "b": 92, "c": 8})
    assert [r["label"] for r in few.rare_underpredicted] == ["c"]
    assert few.rare_underpredicted[0]["p_value"] == pytest.approx(_poisson_cdf(8, 20.0), rel=1e-9)
    assert few.rare_underpredicted[0]["missing"] is False
    # 15 of an expected 20 is ordinary Poisson noise (P(X<=15) ~ 0.16).
    normal = drift.compare(baseline_counts=baseline, observed_counts={"a": 95, "b": 90, "c": 15})
    assert normal.rare_underpredicted == []


def test_labels_expected_fewer_than_k_times_are_not_judged():
    # d is 1% of the baseline: 2 expected in 200, below k = 5, so its absence says nothing.
    result = drift.compare(
        baseline_counts={"a": 50, "b": 49, "d": 1},
        observed_counts={"a": 100, "b": 100},
        params=drift.DriftParams(rare_min_expected=5),
    )
    assert result.rare_underpredicted == []
    stricter = drift.compare(
        baseline_counts={"a": 50, "b": 49, "d": 1},
        observed_counts={"a": 100, "b": 100},
        params=drift.DriftParams(rare_min_expected=2),
    )
    assert [r["label"] for r in stricter.rare_underpredicted] == ["d"]


def test_a_label_that_suddenly_dominates_is_reported():
    result = drift.compare(
        baseline_counts={"a": 30, "b": 40, "c": 30}, observed_counts={"a": 80, "b": 10, "c": 10}
    )
    assert [d["label"] for d in result.dominant] == ["a"]
    assert result.dominant[0]["ratio"] == pytest.approx(0.8 / 0.3)
    # A label that was already dominant in the baseline is not "sudden".
    steady = drift.compare(baseline_counts={"a": 70, "b": 30}, observed_counts={"a": 80, "b": 20})
    assert steady.dominant == []
