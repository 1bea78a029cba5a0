"""The daily alert rules: one `RuleCheck` per (need, day, rule, label), from the aggregates.

Each rule either decides ("ok" or "flagged") or says it cannot ("insufficient"): a small sample is
never read as "no problem" nor as an alert. The windows, for a day D and a need's settings:

- evidence window: the `evidence_days` days ending at D for label counts (default 1), and the
  `feedback_evidence_days` days for feedback (default 2: clicks and complaints are sparser);
- reference window: the `reference_days` most recent days before the evidence window with data,
  skipping the days on which the same rule flagged the same label and everything since the start
  of its open incident (an ongoing incident must not become "usual").

Rules:

- **drift** (need-wide): PSI and Jensen-Shannon distance of D's label mix against the baseline
  (the training snapshot, or the configured reference window), from `min_volume` predictions.
- **rare_class** (labels whose *baseline* share is below `rare_share_max`): does a class that
  should appear still appear? Observed count in the evidence window against the expected count
  n x baseline share, one-sided Poisson test, only when at least `rare_min_expected` are expected;
  flagged when significant and at most `rare_max_ratio` of the expected count was seen.
- **label_share** (the other labels): the share in the last `share_trend_days` evidence windows
  against the reference window, by the Cochran-Armitage trend test (scores 0 for the reference, then
  1, 2, ..., N for the windows, oldest first; statsmodels' linear-by-linear association test). It is
  the most powerful test against a share that starts moving and keeps moving, and a step change
  that persists counts on every day it is seen; with N = 1 it is the plain two-sample test. Flagged
  when significant and the latest window's share is `share_ratio` times higher or lower.
- **ctr_drop** / **negative_rise** (per label with feedback): clicks / negative events per
  impression in the evidence window against the reference (one-sided Fisher exact test), flagged
  when significant and the change passes `ctr_drop_pct` / `negative_rise_pct`.
- **volume_collapse** (need-wide): D's volume against the median of the reference days.

Multiple comparisons: the p-values of one rule for one need over its labels and the
`correction_days` days ending at D form one family,
adjusted with Holm (family-wise error; or Benjamini-Hochberg, per need) through
`statsmodels.stats.multitest.multipletests`; a label is flagged only if its adjusted p-value is
below the rule's alpha. The label-share family holds only the comparisons that can raise an alert
by chance: see `screened_adjust`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from django.db.models import Sum
from scipy import stats
from statsmodels.stats.contingency_tables import Table
from statsmodels.stats.multitest import multipletests

from monitoring.models import (
    Alert,
    AlertKind,
    AlertStatus,
    CheckStatus,
    DriftReport,
    FeedbackAggregate,
    LabelAggregate,
    NeedMonitoringConfig,
    Period,
    PredictionAggregate,
    RuleCheck,
)
from tenants.models import Need

TESTED_RULES = (
    AlertKind.RARE_CLASS,
    AlertKind.LABEL_SHARE,
    AlertKind.CTR_DROP,
    AlertKind.NEGATIVE_RISE,
)


@dataclass
class Check:
    rule: str
    label: str
    status: str
    value: float | None = None
    reference: float | None = None
    observed: float | None = None
    expected: float | None = None
    sample: int = 0
    p_value: float | None = None
    adjusted_p: float | None = None
    #: Passes the rule's effect-size floor (flagged if also significant, for tested rules).
    large: bool = False
    detail: dict = field(default_factory=dict)


@dataclass
class Windows:
    evidence: list[date]
    feedback_evidence: list[date]
    #: The label-share trend test's evidence windows, oldest first (the last is `evidence`).
    share: list[list[date]]
    #: Every day before the evidence windows that a reference may be drawn from, newest first.
    lookback: list[date]


#: How far back a reference may reach past flagged days and open incidents, in reference windows.
LOOKBACK_WINDOWS = 3


def windows(day: date, config: NeedMonitoringConfig) -> Windows:
    evidence = [day - timedelta(days=i) for i in range(config.evidence_days)][::-1]
    feedback = [day - timedelta(days=i) for i in range(config.feedback_evidence_days)][::-1]
    span = config.evidence_days
    share = [
        [d - timedelta(days=j * span) for d in evidence]
        for j in reversed(range(config.share_trend_days))
    ]
    start = min(evidence[0], feedback[0], share[0][0])
    lookback = [
        day - timedelta(days=i + 1)
        for i in range((day - start).days + config.reference_days * LOOKBACK_WINDOWS)
    ]
    return Windows(evidence, feedback, share, lookback)


def reference_days(
    *,
    win: Windows,
    config: NeedMonitoringConfig,
    has_data: Callable[[date], bool],
    flagged: set[date],
    incident_start: date | None,
    before: date,
) -> list[date]:
    """The `reference_days` most recent usable days before `before` (the rule's evidence window):
    with data, not flagged by this rule for this label, and before the label's open incident if
    there is one (so "usual" means before it)."""
    days = []
    for day in win.lookback:
        if day >= before or (incident_start is not None and day >= incident_start):
            continue
        if day in flagged or not has_data(day):
            continue
        days.append(day)
        if len(days) == config.reference_days:
            break
    return sorted(days)


def _daily_label_counts(need: Need, days: list[date]) -> dict[date, dict[str, float]]:
    out: dict[date, dict[str, float]] = defaultdict(dict)
    rows = (
        LabelAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=Period.DAY, period_start__in=days)
        .values("period_start", "label")
        .annotate(n=Sum("count"))
    )
    for row in rows:
        out[row["period_start"]][row["label"]] = float(row["n"])
    return out


def _daily_volumes(need: Need, days: list[date]) -> dict[date, int]:
    rows = (
        PredictionAggregate.objects.owned_by(need.tenant_id)
        .filter(need=need, period=Period.DAY, period_start__in=days)
        .values("period_start")
        .annotate(v=Sum("volume"))
    )
    return {row["period_start"]: int(row["v"]) for row in rows}


def _daily_feedback(need: Need, days: list[date]) -> dict[date, dict[str, dict[str, int]]]:
    out: dict[date, dict[str, dict[str, int]]] = defaultdict(dict)
    for row in FeedbackAggregate.objects.owned_by(need.tenant_id).filter(
        need=need, period=Period.DAY, period_start__in=days
    ):
        out[row.period_start][row.label] = {
            "impressions": row.impressions,
            "clicks": row.clicks,
            "negative": row.not_interested + row.wrong_tag,
        }
    return out


def _flagged_days(need: Need, days: list[date]) -> dict[tuple[str, str], set[date]]:
    out: dict[tuple[str, str], set[date]] = defaultdict(set)
    for rule, label, day in (
        RuleCheck.objects.owned_by(need.tenant_id)
        .filter(need=need, day__in=days, status=CheckStatus.FLAGGED)
        .values_list("rule", "label", "day")
    ):
        out[(rule, label)].add(day)
    return out


def _sum_labels(per_day: dict[date, dict[str, float]], days) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for day in days:
        for label, n in per_day.get(day, {}).items():
            total[label] += n
    return total


def _sum_feedback(per_day, days, label: str) -> dict[str, int]:
    total = {"impressions": 0, "clicks": 0, "negative": 0}
    for day in days:
        row = per_day.get(day, {}).get(label)
        if row:
            for key in total:
                total[key] += row[key]
    return total


def _drift_check(need: Need, day: date, config: NeedMonitoringConfig) -> Check:
    report = (
        DriftReport.objects.owned_by(need.tenant_id)
        .filter(need=need, period=Period.DAY, period_start=day)
        .first()
    )
    if report is None or report.psi is None or report.volume < config.min_volume:
        return Check(
            AlertKind.DRIFT,
            "",
            CheckStatus.INSUFFICIENT,
            sample=report.volume if report else 0,
            detail={"min_volume": config.min_volume},
        )
    js = report.js_distance or 0.0
    large = report.psi >= config.psi_threshold or js >= config.js_threshold
    return Check(
        AlertKind.DRIFT,
        "",
        CheckStatus.FLAGGED if large else CheckStatus.OK,
        value=report.psi,
        reference=config.psi_threshold,
        sample=report.volume,
        large=large,
        detail={
            "js_distance": report.js_distance,
            "js_threshold": config.js_threshold,
            "psi_threshold": config.psi_threshold,
            "chi2_p_value": report.chi2_p_value,
            "baseline": report.baseline_ref,
            "top_movers": report.top_movers[:3],
        },
    )


def _volume_check(day: date, volumes: dict[date, int], reference_days: list[date], config) -> Check:
    # Days without a row in the reference are days without traffic only if the need had traffic
    # around them; a need that starts mid-window simply has fewer reference days.
    ref = [volumes[d] for d in reference_days if d in volumes]
    current = volumes.get(day, 0)
    if len(ref) < 3 or statistics.median(ref) < config.min_volume:
        return Check(AlertKind.VOLUME_COLLAPSE, "", CheckStatus.INSUFFICIENT, sample=current)
    usual = float(statistics.median(ref))
    drop_pct = (usual - current) / usual * 100
    large = drop_pct >= config.volume_collapse_pct
    return Check(
        AlertKind.VOLUME_COLLAPSE,
        "",
        CheckStatus.FLAGGED if large else CheckStatus.OK,
        value=float(current),
        reference=usual,
        observed=float(current),
        expected=usual,
        sample=current,
        large=large,
        detail={"drop_pct": drop_pct, "threshold_pct": config.volume_collapse_pct},
    )


def _incident_starts(need: Need) -> dict[tuple[str, str], date]:
    return {
        (kind, label): first_seen
        for kind, label, first_seen in Alert.objects.owned_by(need.tenant_id)
        .filter(need=need, status=AlertStatus.OPEN)
        .values_list("kind", "label", "first_seen")
    }


def evaluate_day(
    *, need: Need, day: date, config: NeedMonitoringConfig, baseline: dict[str, float] | None
) -> list[Check]:
    """Every rule's checks for the need on `day` (not yet saved)."""
    win = windows(day, config)
    all_days = sorted(set(win.lookback) | set(win.evidence) | set(win.feedback_evidence))
    counts = _daily_label_counts(need, all_days)
    volumes = _daily_volumes(need, all_days)
    feedback = _daily_feedback(need, all_days)
    flagged = _flagged_days(need, win.lookback)
    incidents = _incident_starts(need)

    def ref_for(rule: str, label: str, has_data: Callable[[date], bool]) -> list[date]:
        if rule in (AlertKind.CTR_DROP, AlertKind.NEGATIVE_RISE):
            before = win.feedback_evidence[0]
        elif rule == AlertKind.LABEL_SHARE:
            before = win.share[0][0]
        else:
            before = win.evidence[0]
        return reference_days(
            win=win,
            config=config,
            has_data=has_data,
            flagged=flagged[(rule, label)],
            incident_start=incidents.get((rule, label)),
            before=before,
        )

    checks: list[Check] = [
        _drift_check(need, day, config),
        _volume_check(
            day,
            volumes,
            ref_for(AlertKind.VOLUME_COLLAPSE, "", lambda d: d in volumes),
            config,
        ),
    ]

    evidence_counts = _sum_labels(counts, win.evidence)
    n_evidence = sum(volumes.get(d, 0) for d in win.evidence)
    base_total = sum(baseline.values()) if baseline else 0.0
    base_shares = {k: v / base_total for k, v in baseline.items()} if base_total else {}
    labels = sorted(set(base_shares) | set(evidence_counts))
    share_labels: list[str] = []

    for label in labels:
        share = base_shares.get(label)
        observed = evidence_counts.get(label, 0.0)
        if share is not None and share < config.rare_share_max:
            expected = n_evidence * share
            if expected < config.rare_min_expected or share == 0:
                checks.append(
                    Check(
                        AlertKind.RARE_CLASS,
                        label,
                        CheckStatus.INSUFFICIENT,
                        observed=observed,
                        expected=expected,
                        reference=share,
                        sample=n_evidence,
                    )
                )
                continue
            checks.append(
                Check(
                    AlertKind.RARE_CLASS,
                    label,
                    CheckStatus.OK,
                    value=observed / n_evidence,
                    reference=share,
                    observed=observed,
                    expected=expected,
                    sample=n_evidence,
                    p_value=float(stats.poisson.cdf(observed, expected)),
                    large=observed <= config.rare_max_ratio * expected,
                )
            )
            continue
        if share is not None:
            share_labels.append(label)
    checks += _label_share_checks(
        need=need,
        day=day,
        config=config,
        labels=share_labels,
        windows=win.share,
        ref_days={
            label: ref_for(AlertKind.LABEL_SHARE, label, lambda d: bool(volumes.get(d)))
            for label in share_labels
        },
        counts=counts,
        volumes=volumes,
    )

    feedback_labels = sorted(
        {label for d in win.feedback_evidence for label in feedback.get(d, {})}
    )
    for label in feedback_labels:
        cur = _sum_feedback(feedback, win.feedback_evidence, label)
        for rule, key, alternative in (
            (AlertKind.CTR_DROP, "clicks", "less"),
            (AlertKind.NEGATIVE_RISE, "negative", "greater"),
        ):
            ref_days = ref_for(rule, label, lambda d, lb=label: lb in feedback.get(d, {}))
            ref = _sum_feedback(feedback, ref_days, label)
            if cur["impressions"] < config.min_impressions or (
                ref["impressions"] < config.min_impressions
            ):
                checks.append(
                    Check(rule, label, CheckStatus.INSUFFICIENT, sample=cur["impressions"])
                )
                continue
            value = cur[key] / cur["impressions"]
            usual = ref[key] / ref["impressions"]
            table = [
                [cur[key], cur["impressions"] - cur[key]],
                [ref[key], ref["impressions"] - ref[key]],
            ]
            p_value = float(stats.fisher_exact(table, alternative=alternative).pvalue)
            if rule == AlertKind.CTR_DROP:
                change = (usual - value) / usual * 100 if usual else 0.0
                large = usual > 0 and change >= config.ctr_drop_pct
            else:
                # A reference without a single negative event is smoothed to one, so a first
                # complaint is not an infinite rise.
                smoothed = max(ref[key], 1) / ref["impressions"]
                change = (value - smoothed) / smoothed * 100
                large = change >= config.negative_rise_pct
            checks.append(
                Check(
                    rule,
                    label,
                    CheckStatus.OK,
                    value=value,
                    reference=usual,
                    observed=float(cur[key]),
                    expected=usual * cur["impressions"],
                    sample=cur["impressions"],
                    p_value=p_value,
                    large=large,
                    detail={
                        "change_pct": change if rule != AlertKind.CTR_DROP else -change,
                        "reference_days": len(ref_days),
                        "evidence_days": len(win.feedback_evidence),
                    },
                )
            )

    _adjust(need=need, day=day, config=config, checks=checks)
    return checks


def share_trend_p_value(*, reference: tuple[float, float], windows: list[tuple[float, float]]):
    """Two-sided p-value of the Cochran-Armitage trend test of a label's share.

    `reference` and each of `windows` (oldest first) are (label count, volume). The columns are
    scored 0 (reference), 1, 2, ..., so the latest window weighs most: for a share that moves by
    the same step every day this is the locally most powerful test, and it needs no guess of the
    step size. statsmodels' linear-by-linear association test on the 2 x (1 + N) table.
    """
    columns = [reference, *windows]
    table = np.array([[k for k, _n in columns], [n - k for k, n in columns]], dtype=float)
    result = Table(table, shift_zeros=False).test_ordinal_association(
        row_scores=np.array([1.0, 0.0]), col_scores=np.arange(len(columns), dtype=float)
    )
    return float(result.pvalue)


def floor_chance(*, n: int, share: float, ratio: float) -> float:
    """The chance that, with nothing changed, a window of `n` predictions shows a share at least
    `ratio` times higher or lower than `share` (binomial): how often the effect-size floor alone
    is passed by sampling noise."""
    if n <= 0 or share <= 0:
        return 0.0
    high = math.ceil(ratio * share * n - 1e-9)
    low = math.floor(share * n / ratio + 1e-9)
    return float(stats.binom.sf(high - 1, n, share) + stats.binom.cdf(low, n, share))


@dataclass
class Screened:
    #: Comparable with alpha (the family's own level scaled back to alpha).
    adjusted_p: float
    #: False when the comparison left the family (it cannot plausibly alert by chance).
    in_family: bool
    family_size: int
    #: The level the family was corrected at: alpha minus the screened comparisons' chances.
    level: float


def screened_adjust(
    p_values: list[float], chances: list[float], *, alpha: float, method: str
) -> list[Screened]:
    """Correct a family of label-share comparisons, leaving out those that cannot alert by chance.

    An alert needs both a small p-value and a change past the effect-size floor. A comparison
    whose chance of passing the floor on a stable day (`floor_chance`) is below alpha / family
    size can raise a false alert with at most that chance, so it need not share alpha: it leaves
    the family (it is still flagged on its own p-value and floor), its chance is subtracted from
    alpha, and Holm or Benjamini-Hochberg (`multipletests`) corrects the rest at what is left. By
    the union bound the family-wise error stays at most alpha, while a large, steady label (which
    cannot move 25 % by chance) no longer makes a small label's test pay for it.

    Returns one result per p-value, in order.
    """
    size = len(p_values)
    if size == 0:
        return []
    out_of_family = [c < alpha / size for c in chances]
    level = alpha - sum(c for c, out in zip(chances, out_of_family, strict=True) if out)
    kept = [p for p, out in zip(p_values, out_of_family, strict=True) if not out]
    adjusted = iter(multipletests(kept, alpha=level, method=method)[1] if kept else [])
    results = []
    for p, out in zip(p_values, out_of_family, strict=True):
        if out:
            results.append(Screened(p, False, len(kept), level))
        else:
            # Scaled so that "below alpha" means "below the family's level".
            results.append(
                Screened(min(1.0, float(next(adjusted)) * alpha / level), True, len(kept), level)
            )
    return results


def _label_share_checks(
    *,
    need: Need,
    day: date,
    config: NeedMonitoringConfig,
    labels: list[str],
    windows: list[list[date]],
    ref_days: dict[str, list[date]],
    counts: dict[date, dict[str, float]],
    volumes: dict[date, int],
) -> list[Check]:
    """Shares are compositional: when one label doubles, every other label's share shrinks.

    So the labels are tested in rounds. Each round tests the labels not flagged yet, on their share
    of the traffic *outside* the labels already flagged, corrects the p-values (over labels and
    days) and flags only the most significant new mover. The rest are tested again without it, so
    "tech doubled" is one alert, not one per label.
    """
    history = _share_history(need=need, day=day, config=config)
    moved: list[str] = []
    final: dict[str, Check] = {}

    def volume(days: list[date]) -> float:
        return sum(
            volumes.get(d, 0) - sum(counts.get(d, {}).get(m, 0.0) for m in moved) for d in days
        )

    def count(days: list[date], label: str) -> float:
        return sum(counts.get(d, {}).get(label, 0.0) for d in days)

    while True:
        round_checks: list[Check] = []
        for label in labels:
            if label in moved:
                continue
            days = ref_days[label]
            # Windows without traffic (a gap, or a need younger than the windows) weigh nothing.
            trend = [(count(w, label), volume(w)) for w in windows]
            trend = [(k, n) for k, n in trend[:-1] if n > 0] + trend[-1:]
            k, n = trend[-1]
            ref_n, ref_k = volume(days), count(days, label)
            if n < config.min_volume or ref_n < 3 * config.min_volume or ref_k == 0:
                round_checks.append(
                    Check(
                        AlertKind.LABEL_SHARE,
                        label,
                        CheckStatus.INSUFFICIENT,
                        observed=k,
                        sample=max(int(n), 0),
                        detail={"reference_volume": ref_n},
                    )
                )
                continue
            value, usual = k / n, ref_k / ref_n
            ratio = value / usual
            round_checks.append(
                Check(
                    AlertKind.LABEL_SHARE,
                    label,
                    CheckStatus.OK,
                    value=value,
                    reference=usual,
                    observed=k,
                    expected=usual * n,
                    sample=int(n),
                    p_value=share_trend_p_value(reference=(ref_k, ref_n), windows=trend),
                    large=ratio >= config.share_ratio or ratio <= 1 / config.share_ratio,
                    detail={
                        "ratio": ratio,
                        "reference_days": len(days),
                        "excluding": list(moved),
                        # The windows the trend test weighed, oldest first: share and volume.
                        "trend": [[kw / nw, int(nw)] for kw, nw in trend],
                        "floor_chance": floor_chance(
                            n=int(n), share=usual, ratio=config.share_ratio
                        ),
                    },
                )
            )
        _correct_shares(round_checks, history=history, config=config)
        for check in round_checks:
            final[check.label] = check
        candidates = [c for c in round_checks if c.status == CheckStatus.FLAGGED]
        for check in candidates:
            check.status = CheckStatus.OK  # only the strongest mover of a round is kept
        if not candidates:
            break
        strongest = min(candidates, key=lambda c: (c.p_value, c.label))
        strongest.status = CheckStatus.FLAGGED
        moved.append(strongest.label)
    return [final[label] for label in labels if label in final]


def _share_history(
    *, need: Need, day: date, config: NeedMonitoringConfig
) -> list[tuple[float, float]]:
    """(p-value, floor chance) of the label-share tests of the family's earlier days."""
    earlier = day - timedelta(days=config.correction_days - 1)
    rows = (
        RuleCheck.objects.owned_by(need.tenant_id)
        .filter(
            need=need,
            rule=AlertKind.LABEL_SHARE,
            day__range=(earlier, day - timedelta(days=1)),
            p_value__isnull=False,
        )
        .values_list("p_value", "detail")
    )
    # A check stored before the floor chance was recorded stays in the family (chance 1).
    return [(p, float((detail or {}).get("floor_chance", 1.0))) for p, detail in rows]


def _correct_shares(
    checks: list[Check], *, history: list[tuple[float, float]], config: NeedMonitoringConfig
) -> None:
    today = [c for c in checks if c.p_value is not None]
    if not today:
        return
    results = screened_adjust(
        [c.p_value for c in today] + [p for p, _c in history],
        [c.detail["floor_chance"] for c in today] + [c for _p, c in history],
        alpha=config.share_alpha,
        method=config.correction,
    )
    for check, result in zip(today, results[: len(today)], strict=True):
        check.adjusted_p = result.adjusted_p
        check.detail["family_size"] = result.family_size
        check.detail["in_family"] = result.in_family
        if check.large and result.adjusted_p < config.share_alpha:
            check.status = CheckStatus.FLAGGED


def _history_p_values(
    *, need: Need, day: date, config: NeedMonitoringConfig, rule: str
) -> list[float]:
    earlier = day - timedelta(days=config.correction_days - 1)
    return list(
        RuleCheck.objects.owned_by(need.tenant_id)
        .filter(
            need=need,
            rule=rule,
            day__range=(earlier, day - timedelta(days=1)),
            p_value__isnull=False,
        )
        .values_list("p_value", flat=True)
    )


def _correct(checks: list[Check], *, history: list[float], alpha: float, method: str) -> None:
    """Holm (or Benjamini-Hochberg) over today's p-values and the earlier days' of the same rule,
    through statsmodels' `multipletests`."""
    today = [c for c in checks if c.p_value is not None]
    if not today:
        return
    family = [c.p_value for c in today] + history
    adjusted = multipletests(family, alpha=alpha, method=method)[1]
    for check, p_adj in zip(today, adjusted[: len(today)], strict=True):
        check.adjusted_p = float(p_adj)
        check.detail["family_size"] = len(family)
        if check.large and p_adj < alpha:
            check.status = CheckStatus.FLAGGED


def _alpha(rule: str, config: NeedMonitoringConfig) -> float:
    return {
        AlertKind.RARE_CLASS: config.rare_alpha,
        AlertKind.LABEL_SHARE: config.share_alpha,
        AlertKind.CTR_DROP: config.feedback_alpha,
        AlertKind.NEGATIVE_RISE: config.feedback_alpha,
    }[rule]


def _adjust(*, need: Need, day: date, config: NeedMonitoringConfig, checks: list[Check]) -> None:
    """Correct each tested rule's p-values over its labels and the `correction_days` days to `day`.

    (The label-share rule corrects inside its own rounds.)"""
    for rule in TESTED_RULES:
        if rule == AlertKind.LABEL_SHARE:
            continue
        _correct(
            [c for c in checks if c.rule == rule],
            history=_history_p_values(need=need, day=day, config=config, rule=rule),
            alpha=_alpha(rule, config),
            method=config.correction,
        )
