"""The label-share rule on small persistent shifts: the trend test and the screened correction."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from monitoring import rules, services
from monitoring.models import Alert, AlertKind, AlertStatus, NeedMonitoringConfig, Period, RuleCheck
from tests.monitoring.conftest import DAY
from tests.monitoring.factories import log_predictions

SHARES = {"t.a": 0.5, "t.b": 0.4, "t.c": 0.1}  # the `topics` baseline


def test_one_window_is_the_two_sample_test_and_more_windows_weigh_the_latest_most():
    # One window: the Cochran-Armitage statistic is Pearson's 2x2 chi-square times (N - 1) / N.
    one = rules.share_trend_p_value(reference=(800, 8000), windows=[(130, 1000)])
    pearson = stats.chi2_contingency([[130, 870], [800, 7200]], correction=False)
    n = 9000
    assert one == pytest.approx(stats.chi2.sf(pearson.statistic * (n - 1) / n, 1), rel=1e-9)
    # The same 3 extra points of share count more on the latest day than on the day before.
    late = rules.share_trend_p_value(reference=(800, 8000), windows=[(100, 1000), (130, 1000)])
    early = rules.share_trend_p_value(reference=(800, 8000), windows=[(130, 1000), (100, 1000)])
    assert late < early
    # A rise seen on two days in a row is stronger evidence than on the latest day alone.
    twice = rules.share_trend_p_value(reference=(800, 8000), windows=[(130, 1000), (130, 1000)])
    assert twice < one


def test_floor_chance_is_the_binomial_tail_past_the_ratio():
    chance = rules.floor_chance(n=400, share=0.1, ratio=1.25)
    # 50 or more (12.5 %), or 32 or fewer (8 %), of 400 predictions.
    assert chance == pytest.approx(stats.binom.sf(49, 400, 0.1) + stats.binom.cdf(32, 400, 0.1))
    # A 50 % label cannot look 25 % larger or smaller by chance in 400 predictions.
    assert rules.floor_chance(n=400, share=0.5, ratio=1.25) < 1e-4
    assert rules.floor_chance(n=0, share=0.1, ratio=1.25) == 0.0


def test_screened_adjust_leaves_out_only_comparisons_that_cannot_alert_and_pays_for_them():
    p_values = [0.004, 0.3, 0.5, 0.2]
    chances = [0.05, 1e-6, 2e-6, 0.03]
    results = rules.screened_adjust(p_values, chances, alpha=0.01, method="holm")
    assert [r.in_family for r in results] == [True, False, False, True]
    level = 0.01 - 3e-6
    assert all(r.level == pytest.approx(level) and r.family_size == 2 for r in results)
    holm = multipletests([0.004, 0.2], alpha=level, method="holm")[1]
    assert results[0].adjusted_p == pytest.approx(holm[0] * 0.01 / level)
    assert results[1].adjusted_p == 0.3  # outside the family: its own p-value
    # Without the screen, Holm over all four would not let the first one through.
    assert multipletests(p_values, alpha=0.01, method="holm")[1][0] > 0.01
    assert results[0].adjusted_p < 0.01


def _stable_families(rng, families: int) -> list[tuple[list[float], list[float], list[bool]]]:
    """Families of label-share comparisons on stable days (3 labels x 7 days, 400 predictions a
    day): each comparison's p-value, floor chance, and whether it passes the share-ratio floor."""
    probabilities = np.array(list(SHARES.values()))
    out = []
    for _ in range(families):
        reference = rng.multinomial(5600, probabilities)
        days = rng.multinomial(400, probabilities, size=8)
        p_values, chances, large = [], [], []
        for d in range(1, 8):
            for i in range(len(SHARES)):
                usual = reference[i] / 5600
                p_values.append(
                    rules.share_trend_p_value(
                        reference=(reference[i], 5600),
                        windows=[(days[d - 1][i], 400), (days[d][i], 400)],
                    )
                )
                chances.append(rules.floor_chance(n=400, share=usual, ratio=1.25))
                ratio = days[d][i] / 400 / usual
                large.append(ratio >= 1.25 or ratio <= 0.8)
        out.append((p_values, chances, large))
    return out


def test_the_screened_correction_holds_the_family_wise_error_on_stable_days():
    families = _stable_families(np.random.default_rng(14), 300)
    corrected = raw = 0
    for p_values, chances, large in families:
        results = rules.screened_adjust(p_values, chances, alpha=0.05, method="holm")
        corrected += any(r.adjusted_p < 0.05 and big for r, big in zip(results, large, strict=True))
        raw += any(p < 0.05 and big for p, big in zip(p_values, large, strict=True))
    # At most alpha (5 %) of the families raise a false alert (binomial upper bound, 99.9 %).
    assert corrected <= stats.binom.ppf(0.999, len(families), 0.05)
    # Uncorrected, the small label's 7 daily tests alert far more often than alpha.
    assert raw > 3 * len(families) * 0.05 and raw > 3 * corrected


def _log_days(need, version, days: dict) -> None:
    for day, counts in days.items():
        log_predictions(need=need, version=version, day=day, counts=counts)
    for day in days:
        services.monitoring_run(period=Period.DAY, start=day)


def _days(first_shifted, t_c: list[int]) -> dict:
    """10 normal days of 1,000 predictions (50/40/10), then days with `t_c` predictions of t.c
    (t.a and t.b keep their 5:4 split of the rest)."""
    days = {}
    for i in range(10):
        days[first_shifted - timedelta(days=10 - i)] = {"t.a": 500, "t.b": 400, "t.c": 100}
    for i, c in enumerate(t_c):
        a = round((1000 - c) * 5 / 9)
        days[first_shifted + timedelta(days=i)] = {"t.a": a, "t.b": 1000 - c - a, "t.c": c}
    return days


def _opened(need) -> list[tuple[str, str, object]]:
    return list(
        Alert.objects.dangerously_unscoped()
        .filter(need=need)
        .values_list("kind", "label", "first_seen")
    )


@pytest.mark.django_db
def test_a_gradual_shift_opens_one_alert_on_its_second_day(topics):
    need, version = topics
    first = DAY - timedelta(days=2)
    # t.c gains 1.8 points a day: 11.8 %, 13.6 %, 15.4 % against the usual 10 %.
    _log_days(need, version, _days(first, [118, 136, 154]))
    # Day 1 is within noise; on day 2 the trend over both days passes the correction (default
    # settings: 7 days in the family); t.a and t.b shrink by 1/9 of that and stay quiet.
    assert _opened(need) == [(AlertKind.LABEL_SHARE, "t.c", first + timedelta(days=1))]
    check = RuleCheck.objects.dangerously_unscoped().get(
        need=need, day=first + timedelta(days=1), rule=AlertKind.LABEL_SHARE, label="t.c"
    )
    assert check.detail["trend"] == [[0.118, 1000], [0.136, 1000]]
    assert check.adjusted_p < 0.01 and check.detail["in_family"] is True
    alert = Alert.objects.dangerously_unscoped().get(need=need)
    assert alert.status == AlertStatus.OPEN and alert.days_active == 2


@pytest.mark.django_db
def test_a_small_step_that_persists_adds_up_over_two_days(topics):
    need, version = topics
    first = DAY - timedelta(days=2)
    # t.c steps from 10 % to 12.7 % and stays: p ~ 0.007 on one day, not enough after the
    # correction; seen on two days in a row, it is.
    _log_days(need, version, _days(first, [127, 127, 127]))
    assert _opened(need) == [(AlertKind.LABEL_SHARE, "t.c", first + timedelta(days=1))]


@pytest.mark.django_db
def test_the_latest_day_alone_never_sees_that_step(topics):
    need, version = topics
    NeedMonitoringConfig.objects.create(need=need, tenant=need.tenant, share_trend_days=1)
    first = DAY - timedelta(days=2)
    _log_days(need, version, _days(first, [127, 127, 127]))
    # ... and from the second day on, the step is part of "usual".
    assert _opened(need) == []


@pytest.mark.django_db
def test_a_stable_stream_with_sampling_noise_raises_no_alert_for_weeks(topics):
    need, version = topics
    rng = np.random.default_rng(14)
    labels = list(SHARES)
    days = {}
    for i in range(35):
        volume = int(rng.integers(700, 1300))
        counts = rng.multinomial(volume, list(SHARES.values()))
        days[DAY - timedelta(days=34 - i)] = dict(zip(labels, map(int, counts), strict=True))
    _log_days(need, version, days)
    assert _opened(need) == []
    decided = RuleCheck.objects.dangerously_unscoped().filter(
        need=need, rule=AlertKind.LABEL_SHARE, p_value__isnull=False
    )
    # The rule did decide on those days (not "insufficient"), with the trend over 2 days.
    assert decided.count() >= 3 * 25
    assert all(len(c.detail["trend"]) == 2 for c in decided)
