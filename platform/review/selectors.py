"""Reads of the review app: a round's result and progress, the need's trend, a case's triage
signals and the per-label gaps. Every selector is given the tenant's rows (or the tenant)."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from monitoring.models import Alert, AlertKind, AlertStatus
from registry.models import ModelAlias, ModelVersion, TrainingSample
from review import estimates, signals
from review.models import (
    Case,
    CaseStatus,
    Decision,
    ReviewItem,
    ReviewRound,
    ReviewVerdict,
    RoundStatus,
)
from tenants.models import Need, Tenant

#: Alerts that say the data moved (a signal for the "change in the data" cause).
DRIFT_KINDS = (AlertKind.DRIFT, AlertKind.RARE_CLASS, AlertKind.LABEL_SHARE)
RECENT_ERROR_DAYS = 30
FEW_SAMPLES = 20


def rounds_for_need(*, tenant: Tenant, need: Need):
    return ReviewRound.objects.for_tenant(tenant).filter(need=need).order_by("-created_at", "-id")


def rounds_list(*, tenant: Tenant):
    return (
        ReviewRound.objects.for_tenant(tenant)
        .select_related("need", "model_version__registered_model", "signoff_by")
        .order_by("-created_at", "-id")
    )


def offline_accuracy(version: ModelVersion | None) -> float | None:
    if version is None:
        return None
    metrics = version.metrics or {}
    value = metrics.get("accuracy")
    if value is None and isinstance(metrics.get("test"), dict):
        value = metrics["test"].get("accuracy")
    return float(value) if isinstance(value, int | float) else None


def _final_answers(review_round: ReviewRound) -> dict[int, list[ReviewVerdict]]:
    """Answered, non-skip verdicts per item id, by slot."""
    answers: dict[int, list[ReviewVerdict]] = defaultdict(list)
    for verdict in (
        ReviewVerdict.objects.for_tenant(review_round.tenant_id)
        .filter(item__round=review_round)
        .exclude(decision__in=["", Decision.SKIP])
        .order_by("item_id", "slot", "id")
    ):
        answers[verdict.item_id].append(verdict)
    return answers


def round_progress(*, review_round: ReviewRound, reviewer=None) -> dict:
    items = ReviewItem.objects.for_tenant(review_round.tenant_id).filter(round=review_round)
    total = items.count()
    needed = sum(items.values_list("reviews_needed", flat=True))
    answers = _final_answers(review_round)
    given = sum(len(v) for v in answers.values())
    done_items = sum(
        1
        for item_id, needed_n in items.values_list("id", "reviews_needed")
        if len(answers.get(item_id, [])) >= needed_n
    )
    mine = 0
    if reviewer is not None:
        mine = (
            ReviewVerdict.objects.for_tenant(review_round.tenant_id)
            .filter(item__round=review_round, reviewer=reviewer)
            .exclude(decision__in=["", Decision.SKIP])
            .count()
        )
    return {
        "items": total,
        "done": done_items,
        "answers": given,
        "answers_needed": needed,
        "percent": round(100.0 * done_items / total, 1) if total else 0.0,
        "mine": mine,
    }


def round_result(*, review_round: ReviewRound) -> dict:
    """Weighted accuracy and per-label precision with 95 % Wilson intervals (see
    review.estimates for the effective-n approach), Cohen's kappa of double reviews, and the
    model version's offline accuracy to compare with."""
    items = {
        item.pk: item
        for item in ReviewItem.objects.for_tenant(review_round.tenant_id).filter(round=review_round)
    }
    answers = _final_answers(review_round)
    weights: list[float] = []
    hits: list[bool] = []
    per_label: dict[str, tuple[list[float], list[bool]]] = defaultdict(lambda: ([], []))
    unsure = 0
    first: list[str] = []
    second: list[str] = []
    for item_id, verdicts in answers.items():
        item = items.get(item_id)
        if item is None:
            continue
        decided = [v for v in verdicts if v.decision in (Decision.CONFIRM, Decision.CORRECT)]
        if len(verdicts) >= 2 and item.reviews_needed >= 2:
            first.append(_answer_key(verdicts[0]))
            second.append(_answer_key(verdicts[1]))
        if not decided:
            unsure += 1
            continue
        verdict = decided[0]
        correct = verdict.decision == Decision.CONFIRM
        weights.append(item.weight)
        hits.append(correct)
        truth = set(verdict.labels)
        for label in item.predicted_labels:
            per_label[label][0].append(item.weight)
            per_label[label][1].append(label in truth)
    accuracy = estimates.weighted_proportion(weights, hits)
    precision = {
        label: estimates.weighted_proportion(w, h) for label, (w, h) in sorted(per_label.items())
    }
    agreement = (
        round(sum(a == b for a, b in zip(first, second, strict=True)) / len(first), 4)
        if first
        else None
    )
    version = review_round.model_version
    return {
        "accuracy": accuracy,
        "per_label_precision": precision,
        "reviewed": len(weights),
        "unsure": unsure,
        "items": len(items),
        "double_reviewed": len(first),
        "kappa": estimates.kappa(first, second),
        "agreement": agreement,
        "offline_accuracy": offline_accuracy(version),
        "accuracy_target": review_round.accuracy_target,
        "below_target": accuracy["high"] is not None
        and accuracy["high"] < review_round.accuracy_target,
    }


def _answer_key(verdict: ReviewVerdict) -> str:
    if verdict.decision == Decision.UNSURE:
        return "?unsure"
    return "|".join(sorted(verdict.labels)) or "(none)"


def result_of(review_round: ReviewRound) -> dict:
    """The frozen result of a closed round, else the live one."""
    if review_round.status == RoundStatus.CLOSED and review_round.result:
        return review_round.result
    if review_round.status != RoundStatus.OPEN:
        return {}
    return round_result(review_round=review_round)


def need_trend(*, tenant: Tenant, need: Need, limit: int = 20) -> dict:
    """The need's rounds (oldest first) for the trend chart: estimate, interval, target and the
    version's offline accuracy."""
    rounds = list(
        rounds_for_need(tenant=tenant, need=need)
        .filter(status__in=[RoundStatus.OPEN, RoundStatus.CLOSED])
        .select_related("model_version__registered_model")[:limit]
    )[::-1]
    points = []
    for review_round in rounds:
        result = result_of(review_round)
        accuracy = result.get("accuracy") or {}
        version = review_round.model_version
        points.append(
            {
                "round": review_round.pk,
                "label": f"#{review_round.pk} {review_round.created_at:%Y-%m-%d}",
                "status": review_round.status,
                "estimate": accuracy.get("estimate"),
                "low": accuracy.get("low"),
                "high": accuracy.get("high"),
                "n": accuracy.get("n", 0),
                "target": review_round.accuracy_target,
                "offline": offline_accuracy(version),
                "version": f"v{version.version}" if version else "",
            }
        )
    return {"points": points, "has_data": any(p["estimate"] is not None for p in points)}


# --- Cases ------------------------------------------------------------------------------------
def cases_list(*, tenant: Tenant, need: Need | None = None, status: str | None = None):
    qs = Case.objects.for_tenant(tenant).select_related("need", "model_version")
    if need is not None:
        qs = qs.filter(need=need)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-created_at", "-id")


def _training_texts(version: ModelVersion):
    def load() -> tuple[list[str], list[list[str]]]:
        ids = list(version.snapshot.train_sample_ids or [])[: signals.MAX_TRAINING_TEXTS]
        samples = (
            TrainingSample.objects.for_owner(version.registered_model.tenant_id)
            .filter(pk__in=ids)
            .prefetch_related("label_links__label")
            .order_by("pk")
        )
        texts, labels = [], []
        for sample in samples:
            texts.append(sample.text)
            labels.append(sorted(link.label.key for link in sample.label_links.all()))
        return texts, labels

    return load


def _case_version(case: Case) -> ModelVersion | None:
    if case.model_version_id:
        return (
            ModelVersion.objects.for_tenant(case.tenant_id)
            .filter(pk=case.model_version_id)
            .select_related("snapshot", "registered_model")
            .first()
        )
    need = case.need
    if not need.model_id:
        return None
    alias = (
        ModelAlias.objects.filter(registered_model_id=need.model_id, name=need.model_alias)
        .select_related("version__snapshot", "version__registered_model")
        .first()
    )
    return alias.version if alias else None


def case_signals(*, case: Case) -> dict[str, Any]:
    """The measurable signals of one case and the cause they suggest."""
    top = case.scores[0] if case.scores else None
    words = signals.tokens(case.text)
    out: dict[str, Any] = {
        "confidence": round(float(top[1]), 4) if top else None,
        "tokens": len(words),
        "oov_share": None,
        "similarity": None,
        "nearest_text": "",
        "nearest_labels": [],
        "suggested_labels": list(case.labels or case.suggested_labels),
        "drift_alerts": [],
    }
    version = _case_version(case)
    if version is not None:
        index = signals.cached_index(version.pk, _training_texts(version))
        out["oov_share"] = index.oov_share(case.text)
        nearest = index.nearest(case.text)
        if nearest is not None:
            similarity, i = nearest
            out["similarity"] = similarity
            out["nearest_text"] = index.texts[i][:300]
            out["nearest_labels"] = index.labels[i]
        out["model_version"] = f"{version.registered_model.name}@v{version.version}"
    labels = set(case.predicted_labels) | set(case.labels or case.suggested_labels)
    alerts = Alert.objects.for_tenant(case.tenant_id).filter(
        need_id=case.need_id, status=AlertStatus.OPEN, kind__in=DRIFT_KINDS
    )
    out["drift_alerts"] = [
        {"id": a.pk, "kind": a.kind, "label": a.label}
        for a in alerts.filter(Q(label__in=labels) | Q(label=""))[:10]
    ]
    cause, why = signals.suggest_cause(out)
    out["suggested_cause"] = cause
    out["why"] = why
    return out


def label_gaps(*, tenant: Tenant, need: Need) -> list[dict]:
    """Per label of the need: training samples, recent errors (cases and review corrections of
    the last 30 days that involve it), accepted cases since the serving version was trained."""
    from review.services import need_label_keys

    keys = need_label_keys(need)
    revision = need.label_set.current_revision if need.label_set is not None else None
    samples: dict[str, int] = {}
    if revision is not None:
        samples = dict(
            TrainingSample.objects.for_tenant(tenant)
            .filter(revision=revision, held_out=False)
            .values_list("label_links__label__key")
            .annotate(n=Count("pk"))
            .values_list("label_links__label__key", "n")
        )
    since = timezone.now() - timedelta(days=RECENT_ERROR_DAYS)
    errors: dict[str, int] = defaultdict(int)
    for predicted, suggested in (
        Case.objects.for_tenant(tenant)
        .filter(need=need, created_at__gte=since)
        .exclude(status=CaseStatus.REJECTED)
        .values_list("predicted_labels", "suggested_labels")
    ):
        for key in set(predicted or []) | set(suggested or []):
            errors[key] += 1
    trained_at = None
    if need.model_id:
        alias = (
            ModelAlias.objects.filter(registered_model_id=need.model_id, name=need.model_alias)
            .select_related("version")
            .first()
        )
        trained_at = alias.version.created_at if alias else None
    gained: dict[str, int] = defaultdict(int)
    accepted = Case.objects.for_tenant(tenant).filter(need=need, status=CaseStatus.ACCEPTED)
    if trained_at is not None:
        accepted = accepted.filter(decided_at__gt=trained_at)
    for labels in accepted.values_list("labels", flat=True):
        for key in labels or []:
            gained[key] += 1
    rows = []
    for key in keys:
        row: dict[str, Any] = {
            "label": key,
            "samples": samples.get(key, 0),
            "recent_errors": errors.get(key, 0),
            "gained_since_training": gained.get(key, 0),
        }
        row["few_samples"] = row["samples"] < FEW_SAMPLES
        rows.append(row)
    rows.sort(key=lambda r: (-r["recent_errors"], r["samples"], r["label"]))
    return rows


def case_counts(*, tenant: Tenant, need: Need) -> dict[str, int]:
    counts = dict(
        Case.objects.for_tenant(tenant)
        .filter(need=need)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in CaseStatus.values}
