"""Retraining: start a retrain (by hand or by policy), run it (derived snapshot, training run,
`candidate` alias, comparison, guard), promote it (guarded, or a staff override) and roll back.

Works on registry data only: accepted samples (sources case/review) and the fresh set
(`TrainingSample.held_out`) are registry rows, whoever created them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.heartbeat import beating
from core.querysets import acts_for_tenant
from core.queues import task_send
from registry.errors import RegistryError
from registry.models import (
    AliasAction,
    AliasName,
    ModelAlias,
    ModelVersion,
    RunStatus,
    TrainingRun,
    TrainingSample,
)
from registry.selectors import serving_version
from registry.services.aliases import alias_rollback, alias_set
from registry.services.datasets import (
    ACCEPTED_SOURCES,
    sample_labels,
    snapshot_derive,
    snapshot_split,
)
from registry.services.training import (
    algorithm_params_validate,
    stale_claim,
    training_run_create,
    training_run_execute,
)
from registry.services.versions import load_model_version
from retraining.comparison import GuardSettings, compare_on, guard_verdict
from retraining.errors import RetrainingError
from retraining.models import ACTIVE_STATUSES, Retrain, RetrainPolicy, RetrainStatus, Trigger
from tenants.models import Need, Tenant

logger = logging.getLogger(__name__)

#: Keys of a version's params that training derived (not chosen): never passed on to a retrain.
DERIVED_PARAM_KEYS = ("thresholds", "threshold_tuning", "split", "multilabel", "labels")
POLICY_FIELDS = (
    "promotion_margin",
    "max_recall_drop",
    "min_fresh_samples",
    "retrain_after_accepted",
    "retrain_on_signoff",
    "retrain_every_days",
    "shadow_share",
    "algorithm",
    "params",
)


# --- Policies --------------------------------------------------------------------------------
def retrain_policy_for(*, need: Need) -> RetrainPolicy:
    """The need's policy, or the defaults (unsaved) when it has none yet."""
    policy = RetrainPolicy.objects.for_tenant(need.tenant_id).filter(need=need).first()
    return policy or RetrainPolicy(tenant_id=need.tenant_id, need=need)


def retrain_policy_update(*, need: Need, actor=None, **fields: Any) -> RetrainPolicy:
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise RetrainingError(
            "unknown_field", _("Unknown policy field(s): %(fields)s.") % {"fields": sorted(unknown)}
        )
    with transaction.atomic():
        policy, _created = RetrainPolicy.objects.for_tenant(need.tenant_id).get_or_create(
            need=need, defaults={"tenant_id": need.tenant_id}
        )
        for key, value in fields.items():
            setattr(policy, key, value)
        if "algorithm" in fields or "params" in fields:
            policy_choice_check(need=need, policy=policy)
        policy.updated_by = actor if getattr(actor, "pk", None) else None
        policy.updated_at = timezone.now()
        policy.full_clean(exclude=["tenant", "need", "updated_by"])
        policy.save()
    return policy


def policy_choice_check(*, need: Need, policy: RetrainPolicy) -> None:
    """The policy's algorithm and params must train: checked against the registry's catalogue
    (params without an algorithm are the champion's algorithm's, when the need has one)."""
    policy.algorithm = (policy.algorithm or "").strip()
    if policy.params is None:
        policy.params = {}
    if not isinstance(policy.params, dict):
        raise RetrainingError("bad_params", "params must be an object.")
    algorithm = policy.algorithm
    if not algorithm:
        champion = serving_version(need)
        if champion is None:
            if policy.params:
                raise RetrainingError(
                    "bad_params",
                    "Name the algorithm these params are for: the need has no champion yet.",
                    fields={"algorithm": ["Required with params."]},
                )
            return
        algorithm = champion.algorithm
    _validated(algorithm, policy.params)


def _validated(algorithm: str, params: dict) -> dict:
    try:
        return algorithm_params_validate(algorithm=algorithm, params=params)
    except RegistryError as exc:
        raise RetrainingError(exc.code, exc.message, fields=exc.fields) from exc


def retrain_choice(
    *, champion: ModelVersion, algorithm: str | None, params: dict | None
) -> tuple[str, dict[str, Any]]:
    """What a retrain trains: the champion's algorithm and params unless others are chosen. The
    same algorithm overrides the champion's params key by key; another algorithm starts from
    its own defaults (the champion's params belong to another estimator) and keeps only the
    champion's script. Checked against the registry's algorithm catalogue (400 on bad input)."""
    if algorithm is not None and not isinstance(algorithm, str):
        raise RetrainingError("unknown_algorithm", "algorithm must be a string.")
    if params is not None and not isinstance(params, dict):
        raise RetrainingError("bad_params", "params must be an object.")
    chosen_algorithm = algorithm or champion.algorithm
    base = champion_params(champion)
    if chosen_algorithm == champion.algorithm:
        chosen = {**base, **(params or {})}
    else:
        chosen = {**({"script": base["script"]} if base.get("script") else {}), **(params or {})}
    return chosen_algorithm, _validated(chosen_algorithm, chosen)


# --- Starting --------------------------------------------------------------------------------
def _champion(need: Need) -> ModelVersion:
    champion = serving_version(need)
    if champion is None:
        raise RetrainingError(
            "no_champion",
            _("Need %(need_slug)r has no model version at its '%(model_alias)s' alias to retrain.")
            % {"need_slug": need.slug, "model_alias": need.model_alias},
            status_code=409,
        )
    model = champion.registered_model
    if model.tenant_id != need.tenant_id:
        raise RetrainingError(
            "shared_champion",
            _(
                "Need %(need_slug)r is served by the shared model %(model_name)s; train a model of your own for it first (POST /api/v1/training-runs/ with the need), then retrain it."
            )
            % {"need_slug": need.slug, "model_name": model.name},
            status_code=409,
        )
    if need.label_set_id is None or model.label_set_id != need.label_set_id:
        raise RetrainingError(
            "label_set_mismatch",
            _("The champion %(champion)s was not trained for the need's label set.")
            % {"champion": champion},
            status_code=409,
        )
    return champion


def champion_params(champion: ModelVersion) -> dict[str, Any]:
    """The params the champion was trained with (as chosen, not as derived by training)."""
    run = (
        TrainingRun.objects.for_owner(champion.registered_model.tenant_id)
        .filter(pk=champion.training_run_id)
        .first()
    )
    source = run.params if run is not None else champion.params
    return {k: v for k, v in (source or {}).items() if k not in DERIVED_PARAM_KEYS}


def retrain_start_or_get(
    *,
    need: Need,
    actor=None,
    reason: str = "",
    trigger: str = Trigger.MANUAL,
    params: dict | None = None,
    algorithm: str | None = None,
) -> tuple[Retrain, bool]:
    """Queue a retrain of the need's champion; (retrain, created). A retrain already queued or
    running for the need is returned instead (one challenger in flight per need).

    A start that names neither `algorithm` nor `params` trains what the need's policy says
    (else the champion's); one that names either trains exactly that (`retrain_choice`)."""
    if trigger not in Trigger.values:
        raise RetrainingError(
            "unknown_trigger", _("Trigger must be one of %(values)s.") % {"values": Trigger.values}
        )
    if params is not None and not isinstance(params, dict):
        raise RetrainingError("bad_params", _("params must be an object."))
    active = Retrain.objects.for_tenant(need.tenant_id).filter(
        need=need, status__in=ACTIVE_STATUSES
    )
    if algorithm is None and params is None:
        policy = retrain_policy_for(need=need)
        algorithm, params = policy.algorithm or None, policy.params or None
    existing = active.first()
    if existing is not None and algorithm is None and params is None:
        return existing, False
    champion = _champion(need)
    # Bad input is refused even while a retrain is in flight (never a 200 that ignored it).
    chosen_algorithm, chosen = retrain_choice(champion=champion, algorithm=algorithm, params=params)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            retrain = Retrain.objects.create(
                tenant_id=need.tenant_id,
                need=need,
                trigger=trigger,
                reason=(reason or "")[:300],
                champion=champion,
                algorithm=chosen_algorithm,
                params=chosen,
                created_by=actor if getattr(actor, "pk", None) else None,
            )
    except IntegrityError:
        # A concurrent start won the partial unique constraint: that one is the retrain.
        found = active.first()
        if found is None:
            raise
        return found, False
    retrain_enqueue(retrain=retrain)
    logger.info("retrain %s of %s queued (%s)", retrain.pk, need.slug, trigger)
    return retrain, True


def retrain_start(*, need: Need, actor=None, reason: str = "", trigger: str = Trigger.MANUAL):
    """Start (or find the running) retrain of `need`; the review lane's "retrain" sign-off calls
    this with trigger="signoff", and it honours the need's policy `retrain_on_signoff`."""
    if trigger == Trigger.SIGNOFF and not retrain_policy_for(need=need).retrain_on_signoff:
        return None
    retrain, _created = retrain_start_or_get(need=need, actor=actor, reason=reason, trigger=trigger)
    return retrain


def retrain_enqueue(*, retrain: Retrain) -> None:
    """Send the retrain to the `training` queue once the transaction commits (safe to repeat)."""
    retrain_id = retrain.pk
    transaction.on_commit(lambda: task_send("workers.tasks.training.run_retrain", retrain_id))


# --- Running ---------------------------------------------------------------------------------
@acts_for_tenant(Retrain, "retrain_id")
def retrain_claim(*, retrain_id: int, task_id: str = "") -> bool:
    """Compare-and-set QUEUED -> RUNNING, or take over a running claim whose worker died: the
    same message delivered again, or a stale heartbeat (registry's `stale_claim`)."""
    now = timezone.now()
    return bool(
        Retrain.objects.filter(pk=retrain_id)
        .filter(
            Q(status=RetrainStatus.QUEUED)
            | (Q(status=RetrainStatus.RUNNING) & stale_claim(task_id=task_id, now=now))
        )
        .update(
            status=RetrainStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            claim_task=task_id[:64],
            error="",
        )
    )


@acts_for_tenant(Retrain, "retrain_id")
def retrain_execute(*, retrain_id: int, task_id: str = "") -> Retrain | None:
    """Snapshot, train, point `candidate` at the challenger, compare, judge. Redelivery-safe: the
    retrain is claimed with a compare-and-set, its one training run is created once (stored on
    the row under a row lock), the run itself is claimed the same way, and the registry gives a
    run at most one version: a retrain never makes two challengers."""
    if not retrain_claim(retrain_id=retrain_id, task_id=task_id):
        logger.info("retrain %s already claimed or finished; skipping", retrain_id)
        return None
    tenant_id = Retrain.objects.filter(pk=retrain_id).values_list("tenant_id", flat=True).get()
    with beating(
        lambda: _stamp_retrain(tenant_id, retrain_id), every=settings.TRAINING_HEARTBEAT_SECONDS
    ):
        return _retrain_run(retrain_id, task_id)


def _stamp_retrain(tenant_id: int, retrain_id: int) -> None:
    Retrain.objects.for_tenant(tenant_id).filter(
        pk=retrain_id, status=RetrainStatus.RUNNING
    ).update(heartbeat_at=timezone.now())


def _retrain_run(retrain_id: int, task_id: str) -> Retrain:
    try:
        run = _training_run_for(retrain_id)
        if run.status != RunStatus.SUCCEEDED:
            # The run only ever runs inside its retrain, whose claim this delivery holds: a
            # running claim on it is a dead delivery's, so hand it to this one.
            claim = task_id or f"retrain-{retrain_id}-{uuid.uuid4().hex[:12]}"
            TrainingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(claim_task=claim)
            training_run_execute(run_id=run.pk, task_id=claim)
            run.refresh_from_db()
        if run.status != RunStatus.SUCCEEDED:
            raise RetrainingError(
                "training_failed",
                _("Training run %(run_pk)s %(run_status)s: %(run_error)s")
                % {"run_pk": run.pk, "run_status": run.status, "run_error": run.error},
            )
        retrain = Retrain.objects.select_related("need", "champion").get(pk=retrain_id)
        challenger = ModelVersion.objects.for_owner(retrain.tenant_id).get(training_run=run)
        model = challenger.registered_model
        current = ModelAlias.objects.filter(
            registered_model=model, name=AliasName.CANDIDATE
        ).first()
        if current is None or current.version_id != challenger.pk:
            alias_set(
                registered_model=model,
                alias=AliasName.CANDIDATE,
                version=challenger,
                actor=retrain.created_by,
                reason=f"retrain {retrain.pk}: challenger of v{retrain.champion.version}",
            )
        Retrain.objects.filter(pk=retrain_id).update(challenger=challenger)
        retrain.challenger = challenger
        _compare_and_judge(retrain)
        Retrain.objects.filter(pk=retrain_id, status=RetrainStatus.RUNNING).update(
            status=RetrainStatus.READY, finished_at=timezone.now()
        )
    except Exception as exc:
        logger.exception("retrain %s failed", retrain_id)
        Retrain.objects.filter(pk=retrain_id).update(
            status=RetrainStatus.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
    return Retrain.objects.get(pk=retrain_id)


@acts_for_tenant(Retrain, "retrain_id")
def _training_run_for(retrain_id: int) -> TrainingRun:
    with transaction.atomic():
        retrain = (
            Retrain.objects.select_for_update(of=("self",))
            .select_related("need__label_set", "champion__snapshot")
            .get(pk=retrain_id)
        )
        if retrain.training_run_id is not None:
            return TrainingRun.objects.for_owner(retrain.tenant_id).get(pk=retrain.training_run_id)
        snapshot, added = snapshot_derive(
            parent=retrain.champion.snapshot, tenant=retrain.need.tenant, actor=retrain.created_by
        )
        run = training_run_create(
            need=retrain.need,
            algorithm=retrain.algorithm or retrain.champion.algorithm,
            params=retrain.params,
            snapshot=snapshot,
            actor=retrain.created_by,
            enqueue=False,
        )
        Retrain.objects.filter(pk=retrain_id).update(
            snapshot=snapshot, training_run=run, accepted_added=added
        )
        return run


def fresh_set(*, need: Need, revision_id: int) -> tuple[list[str], list[list[str]]]:
    """The need's fresh set: held-out samples (never in any snapshot) of the champion's label-set
    revision that the tenant sees, in id order."""
    rows = list(
        TrainingSample.objects.for_tenant(need.tenant_id)
        .filter(revision_id=revision_id, held_out=True)
        .order_by("id")
        .values_list("id", "text")
    )
    labels = sample_labels(pk for pk, _ in rows)
    kept = [(text, labels[pk]) for pk, text in rows if labels.get(pk)]
    return [t for t, _ in kept], [lbl for _, lbl in kept]


def _compare_and_judge(retrain: Retrain) -> None:
    champion, challenger = retrain.champion, retrain.challenger
    assert challenger is not None
    labels = champion.revision.label_keys()
    models = {
        "champion": load_model_version(champion),
        "challenger": load_model_version(challenger),
    }
    test_texts, test_labels = snapshot_split(champion.snapshot, "test")
    fresh_texts, fresh_labels = fresh_set(need=retrain.need, revision_id=champion.revision_id)
    comparison = {
        "champion": {"id": champion.pk, "name": str(champion), "algorithm": champion.algorithm},
        "challenger": {
            "id": challenger.pk,
            "name": str(challenger),
            "algorithm": challenger.algorithm,
        },
        "test_snapshot": champion.snapshot.content_hash,
        "computed_at": timezone.now().isoformat(),
        "test": compare_on(
            champion=models["champion"],
            challenger=models["challenger"],
            texts=test_texts,
            label_lists=test_labels,
            labels=labels,
        ),
        "fresh": compare_on(
            champion=models["champion"],
            challenger=models["challenger"],
            texts=fresh_texts,
            label_lists=fresh_labels,
            labels=labels,
        ),
    }
    policy = retrain_policy_for(need=retrain.need)
    verdict = guard_verdict(
        comparison,
        GuardSettings(
            promotion_margin=policy.promotion_margin,
            max_recall_drop=policy.max_recall_drop,
            min_fresh_samples=policy.min_fresh_samples,
        ),
    )
    Retrain.objects.for_tenant(retrain.tenant_id).filter(pk=retrain.pk).update(
        comparison=comparison, guard=verdict
    )
    retrain.comparison, retrain.guard = comparison, verdict


def retrain_recompare(*, retrain: Retrain) -> Retrain:
    """Compare again (the fresh set grows as reviewed cases arrive); the guard is re-judged."""
    if retrain.status != RetrainStatus.READY or retrain.challenger_id is None:
        raise RetrainingError(
            "retrain_not_ready",
            _(
                "Retrain %(retrain_pk)s is %(retrain_status)s; only a ready retrain is compared again."
            )
            % {"retrain_pk": retrain.pk, "retrain_status": retrain.status},
            status_code=409,
        )
    _compare_and_judge(retrain)
    return retrain


# --- Promotion -------------------------------------------------------------------------------
def retrain_promote(*, retrain: Retrain, actor=None, override_reason: str = "") -> Retrain:
    """Point the need's serving alias at the challenger when the guard passed; otherwise only a
    platform staff user with a written reason may (audited as the AliasEvent's reason and on the
    retrain). Refusals raise with a stable code; nothing is written then."""
    override_reason = (override_reason or "").strip()
    with transaction.atomic():
        locked = (
            Retrain.objects.for_tenant(retrain.tenant_id).select_for_update().get(pk=retrain.pk)
        )
        if locked.status != RetrainStatus.READY or locked.challenger_id is None:
            raise RetrainingError(
                "retrain_not_ready",
                _(
                    "Retrain %(locked_pk)s is %(locked_status)s; only a compared (ready) retrain is promoted."
                )
                % {"locked_pk": locked.pk, "locked_status": locked.status},
                status_code=409,
            )
        need = Need.objects.for_tenant(locked.tenant_id).get(pk=locked.need_id)
        current = serving_version(need)
        if current is None or current.pk != locked.champion_id:
            raise RetrainingError(
                "champion_changed",
                _(
                    "The need's serving version is no longer this retrain's champion; start a new "
                    "retrain."
                ),
                status_code=409,
            )
        passed = bool((locked.guard or {}).get("passed"))
        if not passed:
            failed = [c for c in (locked.guard or {}).get("checks", []) if not c["passed"]]
            if not override_reason:
                raise RetrainingError(
                    "promotion_refused",
                    "The challenger does not pass the promotion guard: "
                    + "; ".join(c["message"] for c in failed)
                    + ". Platform staff may override it with a written reason.",
                    status_code=409,
                    fields={"guard": failed},
                )
            if not getattr(actor, "is_staff", False):
                raise RetrainingError(
                    "override_requires_staff",
                    _("Only platform staff may override the promotion guard."),
                    status_code=403,
                )
            if len(override_reason) < 10:
                raise RetrainingError(
                    "override_reason_too_short",
                    _("Write the reason for overriding the guard (at least 10 characters)."),
                    fields={"override_reason": _("At least 10 characters.")},
                )
        challenger = ModelVersion.objects.for_owner(locked.tenant_id).get(pk=locked.challenger_id)
        reason = (
            f"guard override (retrain {locked.pk}): {override_reason}"
            if not passed
            else f"retrain {locked.pk}: challenger passed the promotion guard"
        )
        try:
            alias_set(
                registered_model=challenger.registered_model,
                alias=need.model_alias,
                version=challenger,
                actor=actor,
                reason=reason[:300],
            )
        except RegistryError as exc:
            raise RetrainingError(exc.code, exc.message, status_code=409) from exc
        if challenger.registered_model_id != need.model_id:
            # Another algorithm: the challenger is a version of its own registered model (one
            # per label set and algorithm), so the need moves to that model, whose alias now
            # points at it. Other needs of the champion's model stay where they are.
            now = timezone.now()
            Need.objects.for_tenant(locked.tenant_id).filter(pk=need.pk).update(
                model=challenger.registered_model, model_chosen_at=now, updated_at=now
            )
        Retrain.objects.for_tenant(locked.tenant_id).filter(pk=locked.pk).update(
            status=RetrainStatus.PROMOTED,
            promoted_by=actor if getattr(actor, "pk", None) else None,
            promoted_at=timezone.now(),
            override_reason="" if passed else override_reason[:280],
        )
    retrain.refresh_from_db()
    return retrain


def retrain_rollback(*, retrain: Retrain, actor=None, reason: str = "") -> ModelAlias:
    """One action: the need's serving alias goes back to the version before the promotion."""
    if retrain.status != RetrainStatus.PROMOTED or retrain.challenger_id is None:
        raise RetrainingError(
            "not_promoted",
            _("Retrain %(retrain_pk)s was not promoted; there is nothing to roll back.")
            % {"retrain_pk": retrain.pk},
            status_code=409,
        )
    need = Need.objects.for_tenant(retrain.tenant_id).get(pk=retrain.need_id)
    model = (
        ModelVersion.objects.for_owner(retrain.tenant_id)
        .get(pk=retrain.challenger_id)
        .registered_model
    )
    champion = ModelVersion.objects.for_owner(retrain.tenant_id).get(pk=retrain.champion_id)
    if need.model_id == model.pk and champion.registered_model_id != model.pk:
        return _rollback_to_champion_model(
            retrain=retrain, need=need, champion=champion, actor=actor, reason=reason
        )
    try:
        return alias_rollback(
            registered_model=model,
            alias=need.model_alias,
            actor=actor,
            reason=reason or f"rollback of retrain {retrain.pk}",
        )
    except RegistryError as exc:
        raise RetrainingError(exc.code, exc.message, status_code=409) from exc


def _rollback_to_champion_model(
    *, retrain: Retrain, need: Need, champion: ModelVersion, actor, reason: str
) -> ModelAlias:
    """The promotion moved the need to another algorithm's model: it moves back to the
    champion's model, whose alias is pointed at the champion again (an AliasEvent audits it)."""
    with transaction.atomic():
        try:
            alias = alias_set(
                registered_model=champion.registered_model,
                alias=need.model_alias,
                version=champion,
                actor=actor,
                reason=(reason or f"rollback of retrain {retrain.pk}")[:300],
                action=AliasAction.ROLLBACK,
            )
        except RegistryError as exc:
            raise RetrainingError(exc.code, exc.message, status_code=409) from exc
        now = timezone.now()
        Need.objects.for_tenant(retrain.tenant_id).filter(pk=need.pk).update(
            model=champion.registered_model, model_chosen_at=now, updated_at=now
        )
    return alias


# --- Policies, checked by beat ---------------------------------------------------------------
def accepted_since_champion(*, need: Need, champion: ModelVersion) -> int:
    """Accepted samples (case/review, not held out) added after the champion's snapshot."""
    return (
        TrainingSample.objects.for_tenant(need.tenant_id)
        .filter(
            revision_id=champion.revision_id,
            source__in=ACCEPTED_SOURCES,
            held_out=False,
            created_at__gt=champion.snapshot.created_at,
        )
        .count()
    )


def retrain_policy_check(*, need: Need, now=None) -> Retrain | None:
    """Start a retrain when the need's policy says so: K accepted samples since the champion's
    snapshot, or its schedule (days since the last retrain, or since the champion was made)."""
    now = now or timezone.now()
    policy = retrain_policy_for(need=need)
    if policy.pk is None or (
        policy.retrain_after_accepted is None and policy.retrain_every_days is None
    ):
        return None
    champion = serving_version(need)
    if champion is None:
        return None
    retrains = Retrain.objects.for_tenant(need.tenant_id).filter(need=need)
    if retrains.filter(status__in=ACTIVE_STATUSES).exists():
        return None
    if policy.retrain_after_accepted:
        # One retrain per champion for this trigger: a failed or refused one is not retried
        # every hour (start one by hand instead).
        count = accepted_since_champion(need=need, champion=champion)
        already = retrains.filter(champion=champion, trigger=Trigger.ACCEPTED).exists()
        if count >= policy.retrain_after_accepted and not already:
            return retrain_start(
                need=need,
                reason=f"{count} accepted samples since the champion's snapshot "
                f"(policy: {policy.retrain_after_accepted})",
                trigger=Trigger.ACCEPTED,
            )
    if policy.retrain_every_days:
        last = retrains.order_by("-created_at").values_list("created_at", flat=True).first()
        since = last or champion.created_at
        if now - since >= timedelta(days=policy.retrain_every_days):
            return retrain_start(
                need=need,
                reason=f"scheduled: every {policy.retrain_every_days} day(s)",
                trigger=Trigger.SCHEDULE,
            )
    return None


def retrain_policies_check_all_tenants() -> list[int]:
    """Beat: every need with an automatic policy (K accepted samples or a schedule) is checked;
    returns the ids of the retrains started."""
    policies = (
        RetrainPolicy.objects.dangerously_unscoped()
        .filter(Q(retrain_after_accepted__isnull=False) | Q(retrain_every_days__isnull=False))
        .select_related("need__tenant")
    )
    started = []
    for policy in policies:
        try:
            retrain = retrain_policy_check(need=policy.need)
        except RetrainingError as exc:
            logger.info("retrain policy of need %s: %s", policy.need_id, exc.message)
            continue
        if retrain is not None:
            started.append(retrain.pk)
    return started


def retrains_stale(*, now=None) -> list[tuple[int, int | None]]:
    """(retrain id, its training run id) of running retrains whose heartbeat went stale: their
    worker died, and the sweeper sends them again (the run goes with its retrain)."""
    now = now or timezone.now()
    stale: list[tuple[int, int | None]] = []
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        stale.extend(
            Retrain.objects.for_tenant(tenant_id)
            .filter(status=RetrainStatus.RUNNING)
            .filter(stale_claim(task_id="", now=now))
            .values_list("pk", "training_run_id")
        )
    return stale


def retrain_training_run_ids_active() -> frozenset[int]:
    """The training runs that belong to a queued or running retrain (sent again only with it)."""
    ids: set[int] = set()
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        ids.update(
            Retrain.objects.for_tenant(tenant_id)
            .filter(status__in=ACTIVE_STATUSES, training_run__isnull=False)
            .values_list("training_run_id", flat=True)
        )
    return frozenset(ids)
