"""Writes of the review app: rounds (start, sample, claim, verdicts, close, sign-off), per-need
settings and schedules, and cases (create, collect, triage, accept, reject).

Every function takes the rows it acts on (already found inside the caller's tenant) and raises a
`DomainError` with a stable code for bad input; nothing is written when it does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from core.errors import DomainError
from core.localtime import tenant_local_date
from core.queues import task_send
from core.texts import text_problem
from monitoring.models import Alert, AlertKind, AlertStatus, Severity
from registry.models import SampleSource, TrainingSample, TrainingSampleLabel
from review import sampling
from review.models import (
    REVIEW_SOURCES,
    Case,
    CaseSource,
    CaseStatus,
    Cause,
    Decision,
    NeedReviewConfig,
    ReviewItem,
    ReviewRound,
    ReviewVerdict,
    RoundStatus,
    SignOff,
    Trigger,
)
from serving.models import BatchItem, Item, PredictionLog
from taxonomy.models import Label
from tenants.models import Need, NeedStatus, Role

logger = logging.getLogger(__name__)

#: The longest text a case or review item keeps (serving's limit for one text).
MAX_TEXT_CHARS = 100_000
#: Alerts that start a review round by themselves.
ROUND_ALERT_KINDS = (AlertKind.DRIFT, AlertKind.RARE_CLASS)
#: A new alert older than this no longer starts a round (e.g. after the feature is switched on).
ALERT_ROUND_MAX_AGE = timedelta(days=3)
SCHEDULED_ROUND_EXPIRE_SECONDS = 6 * 3600


def text_sha256(text: str) -> str:
    # The same hash serving logs for a text (serving.runtime.text_sha256).
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- Per-need settings ------------------------------------------------------------------------
def config_for(need: Need) -> NeedReviewConfig:
    config = NeedReviewConfig.objects.for_tenant(need.tenant_id).filter(need=need).first()
    if config is None:
        try:
            with transaction.atomic():
                config = NeedReviewConfig.objects.create(tenant_id=need.tenant_id, need=need)
        except IntegrityError:
            config = NeedReviewConfig.objects.for_tenant(need.tenant_id).get(need=need)
    return config


CONFIG_FIELDS = (
    "accuracy_target",
    "sample_size",
    "window_days",
    "min_per_label",
    "double_review_share",
    "held_out_share",
    "low_confidence_case_share",
    "auto_round_on_alert",
    "schedule_crontab",
    "business_owner",
    "sync_review_share",
    "sync_text_retention_days",
)


def config_update(*, need: Need, **changes: Any) -> NeedReviewConfig:
    """Change a need's review settings; a crontab (re)creates its beat entry, "" removes it."""
    unknown = set(changes) - set(CONFIG_FIELDS)
    if unknown:
        raise DomainError(
            "invalid", _("Unknown settings: %(unknown)s.") % {"unknown": ", ".join(sorted(unknown))}
        )
    _sync_text_settings_check(changes)
    with transaction.atomic():
        config = config_for(need)
        for field, value in changes.items():
            setattr(config, field, value)
        if "schedule_crontab" in changes:
            _schedule_sync(config)
        config.save()
    return config


def _sync_text_settings_check(changes: dict[str, Any]) -> None:
    """The share is a probability; retention is whole days up to the platform's cap (sync texts
    may be sensitive: no need keeps them longer than the platform allows)."""
    if "sync_review_share" in changes:
        share = changes["sync_review_share"]
        if (
            isinstance(share, bool)
            or not isinstance(share, int | float)
            or not 0.0 <= float(share) <= 1.0
        ):
            raise DomainError(
                "invalid_share",
                "The share of sync texts kept for review is a number from 0 to 1.",
                fields={"sync_review_share": ["0-1"]},
            )
        changes["sync_review_share"] = float(share)
    if "sync_text_retention_days" in changes:
        days = changes["sync_text_retention_days"]
        cap = settings.SYNC_REVIEW_TEXT_MAX_DAYS
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= cap:
            raise DomainError(
                "invalid_retention",
                f"Kept sync texts are purged after 1 to {cap} days (the platform's limit).",
                fields={"sync_text_retention_days": [f"1-{cap}"]},
            )


def _schedule_sync(config: NeedReviewConfig) -> None:
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    crontab = (config.schedule_crontab or "").strip()
    config.schedule_crontab = crontab
    if not crontab:
        if config.periodic_task_id:
            PeriodicTask.objects.filter(pk=config.periodic_task_id).delete()
            config.periodic_task = None
        return
    parts = crontab.split()
    if len(parts) != 5:
        raise DomainError(
            "invalid_crontab",
            _("A crontab has five fields: minute hour day month weekday."),
            fields={"schedule_crontab": [_("Five space-separated fields.")]},
        )
    minute, hour, day, month, weekday = parts
    schedule, _created = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day,
        month_of_year=month,
        day_of_week=weekday,
        timezone=config.need.tenant.time_zone,  # the tenant's wall clock
    )
    task, _created = PeriodicTask.objects.update_or_create(
        name=f"review-round-need-{config.need_id}",
        defaults={
            "task": "workers.tasks.monitoring.review_round_scheduled",
            "crontab": schedule,
            "interval": None,
            "kwargs": json.dumps({"need_id": config.need_id}),
            "queue": "monitoring",
            "expire_seconds": SCHEDULED_ROUND_EXPIRE_SECONDS,
            "enabled": True,
        },
    )
    config.periodic_task = task


# --- Labels of a need -------------------------------------------------------------------------
def need_label_keys(need: Need) -> list[str]:
    revision = need.label_set.current_revision if need.label_set is not None else None
    return list(revision.label_keys()) if revision else []


def is_multilabel(need: Need) -> bool:
    return need.label_set is not None and need.label_set.kind == "multilabel"


def labels_validate(*, need: Need, labels: object, field: str = "labels") -> list[str]:
    """The given global label keys, checked against the need's label set (order kept, deduped)."""
    if not isinstance(labels, list | tuple) or not all(isinstance(x, str) for x in labels):
        raise DomainError(
            "invalid", _("Labels are a list of label keys."), fields={field: ["list"]}
        )
    keys = list(dict.fromkeys(labels))
    allowed = set(need_label_keys(need))
    outside = [k for k in keys if k not in allowed]
    if outside:
        raise DomainError(
            "labels_outside_label_set",
            _("Not in the need's label set: %(labels)s.") % {"labels": ", ".join(outside[:10])},
            fields={field: outside[:50]},
        )
    if len(keys) > 1 and not is_multilabel(need):
        raise DomainError(
            "too_many_labels",
            _("This need is multi-class: give exactly one label."),
            fields={field: [_("One label.")]},
        )
    return keys


# --- Rounds -----------------------------------------------------------------------------------
def _texts_exist(need: Need):
    """A condition on PredictionLog rows: the text behind the prediction is stored (a stream item,
    a batch input, or a sync text kept in the log for review by the need's `sync_review_share`)."""
    stream = Item.objects.filter(
        tenant_id=need.tenant_id, need=need, external_id=OuterRef("item_ref")
    )
    batch = BatchItem.objects.filter(
        job__need=need, job__tenant_id=need.tenant_id, external_id=OuterRef("item_ref")
    )
    return Q(text__isnull=False) | Q(Exists(stream)) | Q(Exists(batch))


def _frame(need: Need, start: datetime, end: datetime):
    return (
        PredictionLog.objects.for_tenant(need.tenant_id)
        .filter(need=need, created_at__gte=start, created_at__lt=end)
        .filter(_texts_exist(need))
    )


def round_start(
    *,
    need: Need,
    trigger: str = Trigger.MANUAL,
    actor=None,
    sample_size: int | None = None,
    window_days: int | None = None,
    window_end: datetime | None = None,
    double_review_share: float | None = None,
    trigger_alert: Alert | None = None,
    sample_now: bool = True,
) -> ReviewRound:
    """Create a round over the need's last `window_days` of predictions and (by default) sample it.

    Refused (409 `no_predictions`) when the window holds no reviewable prediction."""
    if need.status != NeedStatus.LIVE and not need.model_id:
        raise DomainError("need_not_live", _("This need serves no model yet."), status_code=409)
    config = config_for(need)
    n = sample_size if sample_size is not None else config.sample_size
    days = window_days if window_days is not None else config.window_days
    if not 1 <= n <= 5000:
        raise DomainError(
            "invalid", _("Sample 1 to 5000 items."), fields={"sample_size": ["1-5000"]}
        )
    if not 1 <= days <= 365:
        raise DomainError(
            "invalid", _("A window of 1 to 365 days."), fields={"window_days": ["1-365"]}
        )
    share = config.double_review_share if double_review_share is None else double_review_share
    if not 0.0 <= share <= 1.0:
        raise DomainError(
            "invalid", _("A share in [0, 1]."), fields={"double_review_share": ["0-1"]}
        )
    end = window_end or timezone.now()
    start = end - timedelta(days=days)
    if not _frame(need, start, end).exists():
        raise DomainError(
            "no_predictions",
            _(
                "No reviewable predictions of %(need_slug)s in the last %(days)s days (stream and "
                "batch texts are stored; sync texts only for the share the need's review settings "
                "keep)."
            )
            % {"need_slug": need.slug, "days": days},
            status_code=409,
        )
    review_round = ReviewRound.objects.create(
        tenant_id=need.tenant_id,
        need=need,
        trigger=trigger,
        trigger_alert=trigger_alert,
        window_start=start,
        window_end=end,
        sample_size=n,
        double_review_share=share,
        accuracy_target=config.accuracy_target,
        created_by=actor,
    )
    if sample_now:
        round_sample(review_round=review_round)
        review_round.refresh_from_db()
    else:
        pk = review_round.pk
        transaction.on_commit(lambda: _enqueue_sample(pk))
    return review_round


def _enqueue_sample(round_id: int) -> None:
    task_send("workers.tasks.monitoring.review_round_sample", round_id)


def round_sample(*, review_round: ReviewRound) -> int:
    """Draw the round's items. Idempotent: only a PENDING round is claimed (compare-and-set), so a
    second run (a redelivered task) draws nothing. Returns the number of items drawn."""
    rounds = ReviewRound.objects.for_tenant(review_round.tenant_id)
    with transaction.atomic():
        claimed = rounds.filter(pk=review_round.pk, status=RoundStatus.PENDING).update(
            status=RoundStatus.SAMPLING
        )
        if not claimed:
            return 0
        need = Need.objects.for_tenant(review_round.tenant_id).get(pk=review_round.need_id)
        config = config_for(need)
        rows = list(
            _frame(need, review_round.window_start, review_round.window_end)
            .order_by("-id")
            .values(
                "id",
                "day",
                "channel",
                "item_ref",
                "text_hash",
                "labels",
                "scores",
                "top_label",
                "model_version_id",
                "text_share",
            )
        )
        # Stratum sizes are Horvitz-Thompson totals: a kept sync text stands for 1 / text_share
        # predictions (review.sampling explains the weights).
        sizes: Counter[str] = Counter()
        latest: dict[str, dict] = {}  # one prediction per text: the latest
        for row in rows:
            row["stratum"] = (row["labels"][0] if row["labels"] else sampling.NO_LABEL)[:200]
            row["expansion"] = sampling.expansion(row["text_share"])
            sizes[row["stratum"]] += row["expansion"]
            latest.setdefault(row["text_hash"], row)
        pools: dict[str, list[dict]] = {}
        for row in sorted(latest.values(), key=lambda r: r["id"]):
            pools.setdefault(row["stratum"], []).append(row)
        strata = [sampling.Stratum(key, sizes[key], len(pools[key])) for key in sorted(pools)]
        alloc = sampling.allocate(
            strata, review_round.sample_size, min_per_label=config.min_per_label
        )
        rng = random.Random(f"review-round-{review_round.pk}")
        chosen: list[dict] = []
        for stratum in strata:
            pool = pools[stratum.key]
            mean_expansion = sum(row["expansion"] for row in pool) / len(pool)
            for row in sampling.draw(pool, alloc[stratum.key], rng):
                row["weight"] = sampling.item_weight(
                    expansion=row["expansion"],
                    size=stratum.size,
                    drawn=alloc[stratum.key],
                    pool_mean_expansion=mean_expansion,
                )
                chosen.append(row)
        texts = _texts_for(need, chosen)
        chosen = [row for row in chosen if row["id"] in texts]
        rng.shuffle(chosen)
        doubles = sampling.double_review_positions(
            len(chosen), review_round.double_review_share, rng
        )
        items = [
            ReviewItem(
                tenant_id=need.tenant_id,
                round=review_round,
                position=i,
                prediction_id=row["id"],
                item_ref=row["item_ref"],
                channel=row["channel"],
                text=texts[row["id"]],
                text_hash=row["text_hash"],
                model_version_id=row["model_version_id"],
                predicted_labels=row["labels"],
                scores=sorted(
                    ([k, float(v)] for k, v in (row["scores"] or {}).items()),
                    key=lambda kv: -kv[1],
                ),
                stratum=row["stratum"],
                weight=row["weight"],
                reviews_needed=2 if i in doubles else 1,
            )
            for i, row in enumerate(chosen)
        ]
        ReviewItem.objects.bulk_create(items)
        versions = Counter(row["model_version_id"] for row in chosen)
        rounds.filter(pk=review_round.pk).update(
            status=RoundStatus.OPEN,
            sampled_at=timezone.now(),
            population=round(sum(sizes.values())),
            strata={s.key: [round(s.size, 2), alloc[s.key]] for s in strata},
            model_version_id=versions.most_common(1)[0][0] if versions else None,
        )
    return len(items)


def _texts_for(need: Need, rows: Sequence[dict]) -> dict[int, str]:
    """{prediction id: text} for the rows whose stored text matches the logged hash: a sync
    text kept in the log itself, else the stream item's or batch input's text."""
    out: dict[int, str] = {}
    kept = [row for row in rows if row["text_share"] is not None]
    if kept:
        days = [row["day"] for row in kept]
        hashes = {row["id"]: row["text_hash"] for row in kept}
        for pk, text in (
            PredictionLog.objects.for_tenant(need.tenant_id)
            .filter(need=need, pk__in=list(hashes), day__gte=min(days), day__lte=max(days))
            .filter(text__isnull=False)
            .values_list("id", "text")
        ):
            if text_sha256(text) == hashes[pk]:
                out[pk] = text
    rows = [row for row in rows if row["text_share"] is None]
    refs = {row["item_ref"] for row in rows}
    stored: dict[str, list[str]] = {}
    for ref, text in (
        Item.objects.for_tenant(need.tenant_id)
        .filter(need=need, external_id__in=refs)
        .values_list("external_id", "text")
    ):
        stored.setdefault(ref, []).append(text)
    for ref, text in BatchItem.objects.filter(
        job__need=need, job__tenant_id=need.tenant_id, external_id__in=refs
    ).values_list("external_id", "text"):
        stored.setdefault(ref, []).append(text)
    for row in rows:
        for text in stored.get(row["item_ref"], []):
            if text_sha256(text) == row["text_hash"]:
                out[row["id"]] = text
                break
    return out


def _actor_filter(*, reviewer, api_key_prefix: str) -> Q:
    if reviewer is not None:
        return Q(reviewer=reviewer)
    return Q(reviewer__isnull=True, api_key_prefix=api_key_prefix)


def item_claim_next(
    *, review_round: ReviewRound, reviewer=None, api_key_prefix: str = ""
) -> ReviewItem | None:
    """The reviewer's current item: the one they hold (resume), else the next free one, claimed.

    Two reviewers never hold the same slot of an item (a partial unique constraint); an item
    asks a second reviewer only when it is in the round's double-review share."""
    if review_round.status != RoundStatus.OPEN:
        raise DomainError(
            "round_not_open", _("This round is not open for review."), status_code=409
        )
    verdicts = ReviewVerdict.objects.for_tenant(review_round.tenant_id)
    mine = _actor_filter(reviewer=reviewer, api_key_prefix=api_key_prefix)
    held = (
        verdicts.filter(mine, item__round=review_round, decision="")
        .select_related("item")
        .order_by("item__position")
        .first()
    )
    if held is not None:
        return held.item
    items = ReviewItem.objects.for_tenant(review_round.tenant_id).filter(round=review_round)
    for _attempt in range(10):
        taken = verdicts.filter(item=OuterRef("pk")).exclude(decision=Decision.SKIP)
        seen = verdicts.filter(mine, item=OuterRef("pk"))
        candidate = (
            items.annotate(
                taken=_count_subquery(taken),
            )
            .filter(taken__lt=F("reviews_needed"))
            .exclude(Exists(seen))
            .order_by("position")
            .first()
        )
        if candidate is None:
            return None
        used = set(
            verdicts.filter(item=candidate)
            .exclude(decision=Decision.SKIP)
            .values_list("slot", flat=True)
        )
        slot = next(s for s in range(1, candidate.reviews_needed + 1) if s not in used)
        try:
            with transaction.atomic():
                ReviewVerdict.objects.create(
                    tenant_id=review_round.tenant_id,
                    item=candidate,
                    reviewer=reviewer,
                    api_key_prefix=api_key_prefix if reviewer is None else "",
                    slot=slot,
                )
            return candidate
        except IntegrityError:
            continue  # another reviewer claimed it first
    return None


def _count_subquery(queryset):
    """COUNT(*) of a correlated queryset, as an expression (0 when it matches nothing)."""
    counted = queryset.order_by().values("item").annotate(c=Count("pk")).values("c")[:1]
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def verdict_record(
    *,
    item: ReviewItem,
    decision: str,
    labels: Sequence[str] = (),
    reviewer=None,
    api_key_prefix: str = "",
) -> ReviewVerdict:
    """Answer an item: confirm, correct (with labels), unsure or skip.

    The reviewer answers the slot they hold, or takes a free one; an item whose slots are all
    held by others is refused (409 `item_taken`). Corrections and unsure answers become cases."""
    review_round = item.round
    if review_round.status != RoundStatus.OPEN:
        raise DomainError(
            "round_not_open", _("This round is not open for review."), status_code=409
        )
    if decision not in Decision.values:
        raise DomainError(
            "invalid_decision",
            _("Decision is one of %(choices)s.") % {"choices": ", ".join(Decision.values)},
            fields={"decision": Decision.values},
        )
    need = review_round.need
    if decision == Decision.CORRECT:
        keys = labels_validate(need=need, labels=list(labels))
        if not keys:
            raise DomainError(
                "labels_required",
                _("A correction names the right label(s)."),
                fields={"labels": []},
            )
        if sorted(keys) == sorted(item.predicted_labels):
            decision = Decision.CONFIRM
    elif decision == Decision.CONFIRM:
        keys = list(item.predicted_labels)
    else:
        keys = []
    verdicts = ReviewVerdict.objects.for_tenant(item.tenant_id)
    mine = _actor_filter(reviewer=reviewer, api_key_prefix=api_key_prefix)
    with transaction.atomic():
        verdict = verdicts.select_for_update().filter(mine, item=item).first()
        if verdict is None:
            used = set(
                verdicts.filter(item=item)
                .exclude(decision=Decision.SKIP)
                .values_list("slot", flat=True)
            )
            free = [s for s in range(1, item.reviews_needed + 1) if s not in used]
            if not free:
                raise DomainError(
                    "item_taken", _("Other reviewers hold this item."), status_code=409
                )
            verdict = ReviewVerdict(
                tenant_id=item.tenant_id,
                item=item,
                reviewer=reviewer,
                api_key_prefix=api_key_prefix if reviewer is None else "",
                slot=free[0],
            )
        verdict.decision = decision
        verdict.labels = keys
        verdict.answered_at = timezone.now()
        try:
            with transaction.atomic():
                verdict.save()
        except IntegrityError:
            raise DomainError(
                "item_taken", _("Another reviewer took this item."), status_code=409
            ) from None
        if decision in (Decision.CORRECT, Decision.UNSURE):
            _case_from_review(item=item, verdict=verdict, reviewer=reviewer)
    return verdict


def _case_from_review(*, item: ReviewItem, verdict: ReviewVerdict, reviewer) -> None:
    source = (
        CaseSource.REVIEW_CORRECTION
        if verdict.decision == Decision.CORRECT
        else CaseSource.REVIEW_UNSURE
    )
    exists = Case.objects.for_tenant(item.tenant_id).filter(
        need_id=item.round.need_id, text_hash=item.text_hash
    )
    if exists.exists():
        return  # one case per text and need; the first answer made it
    try:
        with transaction.atomic():
            Case.objects.create(
                tenant_id=item.tenant_id,
                need_id=item.round.need_id,
                text=item.text,
                text_hash=item.text_hash,
                item_ref=item.item_ref,
                predicted_labels=item.predicted_labels,
                scores=item.scores,
                model_version_id=item.model_version_id,
                suggested_labels=verdict.labels,
                source=source,
                source_ref=f"round:{item.round_id}/item:{item.pk}",
                review_item=item,
                reported_by=reviewer,
            )
    except IntegrityError:
        pass  # created concurrently


def round_close(*, review_round: ReviewRound) -> ReviewRound:
    """Freeze the round's estimate; raise an alert when its interval lies below the target.
    Idempotent: closing a closed round changes nothing."""
    from review.selectors import round_result

    rounds = ReviewRound.objects.for_tenant(review_round.tenant_id)
    with transaction.atomic():
        locked = rounds.select_for_update().get(pk=review_round.pk)
        if locked.status == RoundStatus.CLOSED:
            return locked
        if locked.status != RoundStatus.OPEN:
            raise DomainError(
                "round_not_open", _("Only an open round can be closed."), status_code=409
            )
        result = round_result(review_round=locked)
        locked.result = result
        locked.status = RoundStatus.CLOSED
        locked.closed_at = timezone.now()
        locked.save(update_fields=["result", "status", "closed_at"])
        high = (result.get("accuracy") or {}).get("high")
        if high is not None and high < locked.accuracy_target:
            _alert_below_target(locked, result)
        elif high is not None:
            # A later round whose interval reaches the target resolves the need's alert.
            Alert.objects.for_tenant(locked.tenant_id).filter(
                need_id=locked.need_id, kind=AlertKind.REVIEW_ACCURACY, status=AlertStatus.OPEN
            ).update(status=AlertStatus.RESOLVED, resolved_at=timezone.now())
    return locked


def _alert_below_target(review_round: ReviewRound, result: dict) -> Alert:
    accuracy = result["accuracy"]
    today = tenant_local_date(review_round.tenant)
    message = (
        f"Review round {review_round.pk}: reviewed accuracy {accuracy['estimate']:.1%} "
        f"(95 % interval {accuracy['low']:.1%}–{accuracy['high']:.1%}) lies below the target "
        f"{review_round.accuracy_target:.0%}."
    )
    alerts = Alert.objects.for_tenant(review_round.tenant_id)
    alert = alerts.filter(
        need_id=review_round.need_id,
        kind=AlertKind.REVIEW_ACCURACY,
        label="",
        status=AlertStatus.OPEN,
    ).first()
    evidence = {
        "round": review_round.pk,
        "value": accuracy["estimate"],
        "low": accuracy["low"],
        "high": accuracy["high"],
        "reference": review_round.accuracy_target,
    }
    if alert is None:
        alert = Alert(
            tenant_id=review_round.tenant_id,
            need_id=review_round.need_id,
            kind=AlertKind.REVIEW_ACCURACY,
            label="",
            severity=Severity.CRITICAL,
            first_seen=today,
            last_seen=today,
            worst_value=accuracy["estimate"],
            worst_day=today,
        )
    else:
        alert.last_seen = today
        alert.days_active += 1
        if alert.worst_value is None or accuracy["estimate"] < alert.worst_value:
            alert.worst_value, alert.worst_day = accuracy["estimate"], today
    alert.message = message[:500]
    alert.evidence = evidence
    alert.updated_at = timezone.now()
    alert.notification_pending = "opened"
    alert.save()
    pk = alert.pk
    transaction.on_commit(lambda: _enqueue_alert_delivery(pk))
    return alert


def _enqueue_alert_delivery(alert_id: int) -> None:
    task_send("workers.tasks.monitoring.deliver_alert", alert_id)


def can_sign_off(*, need: Need, user, membership) -> bool:
    if user is None or membership is None or getattr(membership, "support", False):
        return False
    config = config_for(need)
    if config.business_owner_id is not None and config.business_owner_id == user.pk:
        return True
    return membership.has_role(Role.ADMIN)


def round_sign_off(
    *, review_round: ReviewRound, decision: str, note: str = "", user, membership
) -> ReviewRound:
    """The business owner's decision on a closed round, kept with it. "retrain" asks the
    retraining app for a retrain (see `_retrain_requested`)."""
    if decision not in SignOff.values:
        raise DomainError(
            "invalid_decision",
            _("Sign-off is one of %(choices)s.") % {"choices": ", ".join(SignOff.values)},
            fields={"decision": SignOff.values},
        )
    if not can_sign_off(need=review_round.need, user=user, membership=membership):
        raise DomainError(
            "not_business_owner",
            _("Only the need's business owner (or a tenant admin) signs off a round."),
            status_code=403,
        )
    if len(note) > 1000:
        raise DomainError("invalid", _("At most 1000 characters."), fields={"note": ["1000"]})
    with transaction.atomic():
        locked = (
            ReviewRound.objects.for_tenant(review_round.tenant_id)
            .select_for_update()
            .get(pk=review_round.pk)
        )
        if locked.status != RoundStatus.CLOSED:
            raise DomainError(
                "round_not_closed", _("Close the round before signing it off."), status_code=409
            )
        if locked.signoff:
            raise DomainError(
                "already_signed_off", _("This round has been signed off."), status_code=409
            )
        locked.signoff = decision
        locked.signoff_note = note
        locked.signoff_by = user
        locked.signoff_at = timezone.now()
        locked.save(update_fields=["signoff", "signoff_note", "signoff_by", "signoff_at"])
        if decision == SignOff.RETRAIN:
            _retrain_requested(review_round=locked, actor=user)
    return locked


def _retrain_requested(*, review_round: ReviewRound, actor) -> None:
    """THE call site for a "retrain" sign-off: the retraining app starts a retrain (or finds the
    one in flight), honouring the need's retrain policy (`retrain_on_signoff`). It runs once the
    sign-off commits; a need that cannot be retrained (no champion of its own) keeps the sign-off
    as the record."""
    from retraining.services import retrain_start

    need, pk = review_round.need, review_round.pk

    def start() -> None:
        try:
            retrain_start(
                need=need,
                actor=actor,
                reason=f"review round {pk} signed off: retrain",
                trigger="signoff",
            )
        except DomainError as exc:
            logger.info("sign-off of round %s: no retrain (%s)", pk, exc.code)

    transaction.on_commit(start)


def rounds_for_alerts_all_tenants(*, now: datetime | None = None) -> list[int]:
    """Start a round for every new drift or rare-class alert whose need wants one. Idempotent: one
    round per alert (unique constraint); an alert whose window holds nothing reviewable is
    skipped. Returns the new rounds' ids."""
    now = now or timezone.now()
    alerts = list(
        Alert.objects.dangerously_unscoped()
        .filter(
            kind__in=ROUND_ALERT_KINDS,
            status=AlertStatus.OPEN,
            created_at__gte=now - ALERT_ROUND_MAX_AGE,
        )
        .exclude(
            Exists(ReviewRound.objects.dangerously_unscoped().filter(trigger_alert=OuterRef("pk")))
        )
        .select_related("need__tenant", "need__label_set")
        .order_by("id")
    )
    started = []
    for alert in alerts:
        need = alert.need
        if not config_for(need).auto_round_on_alert:
            continue
        try:
            with transaction.atomic():
                review_round = round_start(
                    need=need, trigger=Trigger.ALERT, trigger_alert=alert, window_end=now
                )
        except DomainError:
            continue  # nothing reviewable in the window
        except IntegrityError:
            continue  # another sweep started it
        started.append(review_round.pk)
    return started


# --- Cases ------------------------------------------------------------------------------------
def _text_checked(text: object) -> str:
    problem = text_problem(text, max_chars=MAX_TEXT_CHARS)
    if problem:
        code, message = problem
        raise DomainError(code, message, fields={"text": [message]})
    assert isinstance(text, str)
    return text


def _case_row(
    *, need: Need, data: dict, source: str, reported_by=None, reported_by_key: str = ""
) -> Case:
    text = _text_checked(data.get("text"))
    suggested = labels_validate(
        need=need, labels=list(data.get("suggested_labels") or []), field="suggested_labels"
    )
    predicted = list(data.get("predicted_labels") or [])
    scores = data.get("scores") or []
    if isinstance(scores, dict):
        scores = sorted(([k, float(v)] for k, v in scores.items()), key=lambda kv: -kv[1])
    return Case(
        tenant_id=need.tenant_id,
        need=need,
        text=text,
        text_hash=text_sha256(text),
        item_ref=str(data.get("item_ref") or "")[:200],
        predicted_labels=predicted,
        scores=scores,
        model_version=data.get("model_version"),
        suggested_labels=suggested,
        source=source,
        source_ref=str(data.get("source_ref") or "")[:200],
        reported_by=reported_by,
        reported_by_key=reported_by_key,
        note=str(data.get("note") or "")[:1000],
    )


def case_create(
    *, need: Need, data: dict, source: str, reported_by=None, reported_by_key: str = ""
) -> Case:
    """One case. A text already reported for this need is refused (409 `duplicate_case`)."""
    return cases_create(
        need=need,
        items=[data],
        source=source,
        reported_by=reported_by,
        reported_by_key=reported_by_key,
    )[0]


def cases_create(
    *,
    need: Need,
    items: Sequence[dict],
    source: str,
    reported_by=None,
    reported_by_key: str = "",
) -> list[Case]:
    """Cases in bulk: all or nothing. Any invalid item or duplicate text (in the request or
    already a case of the need) rejects the request, with the offending indexes."""
    if not items:
        raise DomainError("invalid", _("Give at least one case."), fields={"cases": ["empty"]})
    rows: list[Case] = []
    problems: dict[str, Any] = {}
    for i, data in enumerate(items):
        try:
            rows.append(
                _case_row(
                    need=need,
                    data=data,
                    source=source,
                    reported_by=reported_by,
                    reported_by_key=reported_by_key,
                )
            )
        except DomainError as exc:
            problems[str(i)] = {"code": exc.code, "message": exc.message}
    if problems:
        raise DomainError(
            "invalid_cases" if len(items) > 1 else next(iter(problems.values()))["code"],
            "Some cases are invalid; nothing was stored."
            if len(items) > 1
            else next(iter(problems.values()))["message"],
            fields=problems,
        )
    seen: dict[str, int] = {}
    duplicates: dict[str, Any] = {}
    for i, row in enumerate(rows):
        if row.text_hash in seen:
            duplicates[str(i)] = {"duplicate_of_index": seen[row.text_hash]}
        seen.setdefault(row.text_hash, i)
    existing = dict(
        Case.objects.for_tenant(need.tenant_id)
        .filter(need=need, text_hash__in=list(seen))
        .values_list("text_hash", "pk")
    )
    for i, row in enumerate(rows):
        if row.text_hash in existing:
            duplicates[str(i)] = {"existing_case": existing[row.text_hash]}
    if duplicates:
        raise DomainError(
            "duplicate_case",
            "This text is already a case of this need."
            if len(rows) == 1
            else "Some texts are already cases of this need; nothing was stored.",
            status_code=409,
            fields=duplicates,
        )
    try:
        with transaction.atomic():
            return Case.objects.bulk_create(rows)
    except IntegrityError:
        raise DomainError(
            "duplicate_case", _("This text was just reported for this need."), status_code=409
        ) from None


def _hash_share(text_hash: str) -> float:
    """A stable number in [0, 1) from a text hash: deterministic sampling by text."""
    return int(text_hash[:8], 16) / 0x1_0000_0000


def cases_collect(*, need: Need, limit: int = 5000) -> dict[str, int]:
    """New cases from negative ("wrong tag") feedback and from a share of the low-confidence
    predictions, since the need's cursors. Idempotent: cursors and the per-text uniqueness."""
    from monitoring.models import FeedbackEvent, FeedbackType

    config = config_for(need)
    created = {"feedback": 0, "low_confidence": 0}
    events = list(
        FeedbackEvent.objects.for_tenant(need.tenant_id)
        .filter(need=need, type=FeedbackType.WRONG_TAG, pk__gt=config.feedback_cursor)
        .order_by("pk")
        .values("pk", "item_id", "label", "event_id")[:limit]
    )
    if events:
        texts = _item_texts(need, {e["item_id"] for e in events})
        predictions = _latest_predictions(need, {e["item_id"] for e in events})
        for event in events:
            text = texts.get(event["item_id"])
            if text is None:
                continue
            prediction = predictions.get(event["item_id"])
            predicted = prediction["labels"] if prediction else [event["label"]]
            created["feedback"] += _case_quietly(
                need=need,
                text=text,
                source=CaseSource.FEEDBACK,
                item_ref=event["item_id"],
                source_ref=f"feedback:{event['event_id']}"[:200],
                predicted=predicted,
                prediction=prediction,
                suggested=[k for k in predicted if k != event["label"]],
            )
        config.feedback_cursor = events[-1]["pk"]
    low = list(
        PredictionLog.objects.for_tenant(need.tenant_id)
        .filter(need=need, pk__gt=config.predlog_cursor)
        .order_by("pk")
        .values(
            "pk",
            "day",
            "item_ref",
            "text_hash",
            "above_threshold",
            "labels",
            "scores",
            "model_version_id",
        )[:limit]
    )
    if low:
        picked = [
            row
            for row in low
            if not row["above_threshold"]
            and _hash_share(row["text_hash"]) < config.low_confidence_case_share
        ]
        texts = _item_texts(need, {row["item_ref"] for row in picked})
        # Sync predictions whose text the need keeps for review can become cases too.
        kept = (
            dict(
                PredictionLog.objects.for_tenant(need.tenant_id)
                .filter(
                    need=need,
                    pk__in=[row["pk"] for row in picked],
                    day__gte=min(row["day"] for row in picked),
                    day__lte=max(row["day"] for row in picked),
                    text__isnull=False,
                )
                .values_list("pk", "text")
            )
            if picked
            else {}
        )
        for row in picked:
            text = kept.get(row["pk"]) or texts.get(row["item_ref"])
            if text is None or text_sha256(text) != row["text_hash"]:
                continue
            created["low_confidence"] += _case_quietly(
                need=need,
                text=text,
                source=CaseSource.LOW_CONFIDENCE,
                item_ref=row["item_ref"],
                source_ref=f"prediction:{row['pk']}",
                predicted=row["labels"],
                prediction=row,
                suggested=[],
            )
        config.predlog_cursor = low[-1]["pk"]
    config.save(update_fields=["feedback_cursor", "predlog_cursor", "updated_at"])
    return created


def _item_texts(need: Need, refs: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ref, text in BatchItem.objects.filter(
        job__need=need, job__tenant_id=need.tenant_id, external_id__in=refs
    ).values_list("external_id", "text"):
        out[ref] = text
    for ref, text in (
        Item.objects.for_tenant(need.tenant_id)
        .filter(need=need, external_id__in=refs)
        .values_list("external_id", "text")
    ):
        out[ref] = text
    return out


def _latest_predictions(need: Need, refs: set[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for row in (
        PredictionLog.objects.for_tenant(need.tenant_id)
        .filter(need=need, item_ref__in=refs)
        .order_by("id")
        .values("item_ref", "labels", "scores", "model_version_id")
    ):
        out[row["item_ref"]] = row
    return out


def _case_quietly(
    *,
    need: Need,
    text: str,
    source: str,
    item_ref: str,
    source_ref: str,
    predicted: list,
    prediction: dict | None,
    suggested: list,
) -> int:
    """1 when a case was created, 0 when the text already is one (collection never fails on it)."""
    text_hash = text_sha256(text)
    if Case.objects.for_tenant(need.tenant_id).filter(need=need, text_hash=text_hash).exists():
        return 0
    scores = (prediction or {}).get("scores") or {}
    try:
        with transaction.atomic():
            Case.objects.create(
                tenant_id=need.tenant_id,
                need=need,
                text=text,
                text_hash=text_hash,
                item_ref=item_ref[:200],
                predicted_labels=list(predicted),
                scores=sorted(([k, float(v)] for k, v in scores.items()), key=lambda kv: -kv[1]),
                model_version_id=(prediction or {}).get("model_version_id"),
                suggested_labels=list(suggested),
                source=source,
                source_ref=source_ref,
            )
    except IntegrityError:
        return 0
    return 1


def cases_collect_all_tenants() -> dict[str, int]:
    """The beat sweep: collect cases for every live need (each within its own tenant)."""
    totals: Counter[str] = Counter()
    for need in (
        Need.objects.dangerously_unscoped()
        .filter(status=NeedStatus.LIVE)
        .select_related("tenant", "label_set")
    ):
        totals.update(cases_collect(need=need))
    return dict(totals)


def case_triage(*, case: Case, cause: str, labels: Sequence[str] | None = None, user) -> Case:
    """Record the cause (overriding the suggestion if need be) and, optionally, the labels the
    case will be accepted with. Stores the signals the suggestion came from."""
    from review.selectors import case_signals

    if cause not in Cause.values:
        raise DomainError(
            "invalid_cause",
            _("Cause is one of %(choices)s.") % {"choices": ", ".join(Cause.values)},
            fields={"cause": Cause.values},
        )
    if case.status not in (CaseStatus.NEW, CaseStatus.TRIAGED):
        raise DomainError(
            "case_decided",
            _("This case is already %(case_status)s.") % {"case_status": case.status},
            status_code=409,
        )
    keys = (
        labels_validate(need=case.need, labels=list(labels))
        if labels is not None
        else list(case.labels or case.suggested_labels)
    )
    signals = case_signals(case=case)
    with transaction.atomic():
        updated = (
            Case.objects.for_tenant(case.tenant_id)
            .filter(pk=case.pk, status__in=[CaseStatus.NEW, CaseStatus.TRIAGED])
            .update(
                status=CaseStatus.TRIAGED,
                cause=cause,
                labels=keys,
                signals=signals,
                suggested_cause=signals.get("suggested_cause", ""),
                triaged_by=user,
                triaged_at=timezone.now(),
            )
        )
        if not updated:
            raise DomainError("case_decided", _("This case was just decided."), status_code=409)
    case.refresh_from_db()
    return case


def case_accept(*, case: Case, user=None) -> Case:
    """Make a triaged case a TrainingSample of the need's label set (source `review` for review
    cases, else `case`). A deterministic share (by text hash) is held out as the fresh set.

    Idempotent: accepting an accepted case returns it unchanged. If the text already is a sample
    with other labels, nothing is overwritten: the case stays triaged with `conflict_labels`."""
    with transaction.atomic():
        locked = (
            Case.objects.for_tenant(case.tenant_id)
            .select_for_update(of=("self",))
            .select_related("need__label_set")
            .get(pk=case.pk)
        )
        if locked.status == CaseStatus.ACCEPTED:
            return locked
        if locked.status != CaseStatus.TRIAGED:
            raise DomainError(
                "case_not_triaged",
                _("Triage the case (record its cause) before accepting it."),
                status_code=409,
            )
        need = locked.need
        keys = labels_validate(need=need, labels=list(locked.labels or locked.suggested_labels))
        if not keys:
            raise DomainError(
                "labels_required",
                _("Say which label(s) the text should have before accepting it."),
                fields={"labels": []},
            )
        revision = need.label_set.current_revision if need.label_set is not None else None
        if revision is None:
            raise DomainError("no_label_set", _("The need has no label set."), status_code=409)
        existing = (
            TrainingSample.objects.for_tenant(need.tenant_id)
            .filter(revision=revision, text_hash=locked.text_hash)
            .prefetch_related("label_links__label")
            .order_by("-tenant_id")
            .first()
        )
        if existing is not None:
            existing_keys = sorted(link.label.key for link in existing.label_links.all())
            if existing_keys != sorted(keys):
                locked.conflict_labels = existing_keys
                locked.save(update_fields=["conflict_labels"])
                return locked
            sample = existing
        else:
            config = config_for(need)
            sample = TrainingSample.objects.create(
                tenant_id=need.tenant_id,
                revision=revision,
                text=locked.text,
                text_hash=locked.text_hash,
                source=SampleSource.REVIEW
                if locked.source in REVIEW_SOURCES
                else SampleSource.CASE,
                source_ref=f"case:{locked.pk}",
                held_out=_hash_share(locked.text_hash) < config.held_out_share,
            )
            labels = {label.key: label for label in Label.objects.filter(key__in=keys)}
            TrainingSampleLabel.objects.bulk_create(
                [TrainingSampleLabel(sample=sample, label=labels[k]) for k in keys]
            )
        locked.status = CaseStatus.ACCEPTED
        locked.sample = sample
        locked.held_out = sample.held_out
        locked.labels = keys
        locked.conflict_labels = []
        locked.decided_by = user
        locked.decided_at = timezone.now()
        locked.save(
            update_fields=[
                "status",
                "sample",
                "held_out",
                "labels",
                "conflict_labels",
                "decided_by",
                "decided_at",
            ]
        )
    return locked


def case_reject(*, case: Case, reason: str = "", user=None) -> Case:
    if len(reason) > 500:
        raise DomainError("invalid", _("At most 500 characters."), fields={"reason": ["500"]})
    with transaction.atomic():
        locked = Case.objects.for_tenant(case.tenant_id).select_for_update().get(pk=case.pk)
        if locked.status == CaseStatus.REJECTED:
            return locked
        if locked.status == CaseStatus.ACCEPTED:
            raise DomainError(
                "case_decided", _("An accepted case cannot be rejected."), status_code=409
            )
        locked.status = CaseStatus.REJECTED
        locked.reject_reason = reason
        locked.decided_by = user
        locked.decided_at = timezone.now()
        locked.save(update_fields=["status", "reject_reason", "decided_by", "decided_at"])
    return locked
