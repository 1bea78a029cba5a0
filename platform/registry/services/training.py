"""Registered models and training runs: create, enqueue, claim, execute."""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core.heartbeat import beating
from core.querysets import acts_for_tenant
from core.queues import task_send
from registry import artifacts, evaluation
from registry.errors import RegistryError
from registry.ml import ALGORITHMS, TextClassifier, params_problems, train
from registry.models import (
    AliasName,
    DatasetSnapshot,
    ModelVersion,
    RegisteredModel,
    RunStatus,
    TrainingRun,
)
from registry.services.aliases import alias_set
from registry.services.datasets import current_revision, snapshot_create, snapshot_split
from registry.services.versions import model_version_register
from taxonomy.models import LabelSet, LabelSetKind
from tenants.models import Need, Tenant

logger = logging.getLogger(__name__)

#: Share of the training split held out to tune multi-label thresholds.
VALIDATION_FRACTION = 0.2


# --- Registered models and training runs ---------------------------------------------------
def registered_model_get_or_create(
    *, label_set: LabelSet, algorithm: str, tenant=None, description: str = ""
) -> RegisteredModel:
    if algorithm not in ALGORITHMS:
        raise RegistryError(
            "unknown_algorithm",
            _("Unknown algorithm %(algorithm)s; use one of %(value)s.")
            % {"algorithm": repr(algorithm), "value": ", ".join(ALGORITHMS)},
        )
    name = f"{label_set.slug}/{algorithm}"
    model, _created = RegisteredModel.objects.owned_by(tenant).get_or_create(
        tenant=tenant,
        name=name,
        defaults={
            "label_set": label_set,
            "algorithm": algorithm,
            "description": description or label_set.description or label_set.name,
        },
    )
    return model


def algorithm_params_validate(*, algorithm: str, params: dict | None) -> dict:
    """The params, checked against the algorithm catalogue (registry.ml.params_problems): an
    unknown algorithm is `unknown_algorithm`, a key or value it does not take is `bad_params`,
    both 400 with the fields named."""
    problems = params_problems(algorithm, params or {})
    if "algorithm" in problems:
        raise RegistryError(
            "unknown_algorithm",
            _("Unknown algorithm %(algorithm)s; use one of %(value)s.")
            % {"algorithm": repr(algorithm), "value": ", ".join(ALGORITHMS)},
            fields=problems,
        )
    if problems:
        raise RegistryError(
            "bad_params",
            _("These params do not fit %(algorithm)s: %(problems)s")
            % {
                "algorithm": algorithm,
                "problems": " ".join(p for found in problems.values() for p in found),
            },
            fields=problems,
        )
    return params or {}


def training_run_create(
    *,
    label_set: LabelSet | None = None,
    need=None,
    tenant=None,
    algorithm: str = "tfidf-logreg",
    params: dict | None = None,
    snapshot: DatasetSnapshot | None = None,
    seed: int = 42,
    test_fraction: float = 0.2,
    promote_to: str = "",
    refit_on_all: bool = True,
    actor=None,
    enqueue: bool = True,
) -> TrainingRun:
    """Queue a training run for a label set (or a need's label set), owned by `tenant` (None =
    the platform). Snapshots the visible samples unless a snapshot is given; enqueues on commit.
    `refit_on_all`: after the held-out evaluation, the served artifact is refitted on all of the
    snapshot's data (train + test) with the same configuration."""
    if need is not None:
        if need.label_set_id is None:
            raise RegistryError(
                "need_has_no_label_set", _("Need %(need)s has no label set yet.") % {"need": need}
            )
        label_set, tenant = need.label_set, need.tenant
    if label_set is None:
        raise RegistryError("label_set_required", _("Give a label set or a need."))
    if promote_to and promote_to not in AliasName.values:
        raise RegistryError(
            "unknown_alias",
            _("Alias must be one of %(value)s.") % {"value": ", ".join(AliasName.values)},
        )
    if params and not isinstance(params, dict):
        raise RegistryError("bad_params", _("params must be an object."))
    algorithm_params_validate(algorithm=algorithm, params=params)
    with transaction.atomic():
        if snapshot is None:
            snapshot = snapshot_create(
                revision=current_revision(label_set),
                tenant=tenant,
                seed=seed,
                test_fraction=test_fraction,
                actor=actor,
            )
        elif snapshot.revision.label_set_id != label_set.pk:
            raise RegistryError(
                "snapshot_mismatch", _("The snapshot belongs to another label set.")
            )
        model = registered_model_get_or_create(
            label_set=label_set, algorithm=algorithm, tenant=tenant
        )
        run = TrainingRun.objects.create(
            tenant=tenant,
            registered_model=model,
            snapshot=snapshot,
            algorithm=algorithm,
            params=params or {},
            parent_version=model.versions.order_by("-version").first(),
            need=need,
            promote_to=promote_to,
            refit_on_all=bool(refit_on_all),
            created_by=actor,
            log=_log_line("queued"),
        )
        if enqueue:
            training_run_enqueue(run=run)
    return run


def training_run_enqueue(*, run: TrainingRun) -> None:
    """Send the run to the `training` queue once the transaction commits. Safe to repeat: the
    task claims the run with a compare-and-set, so a duplicate message does nothing."""
    run_id = run.pk
    transaction.on_commit(lambda: task_send("workers.tasks.training.train_model", run_id))


def _log_line(message: str) -> str:
    return f"{timezone.now():%Y-%m-%d %H:%M:%S} {message}\n"


class _RunLog:
    def __init__(self, run: TrainingRun):
        self.run = run
        self.text = run.log
        self.started = time.perf_counter()

    def write(self, message: str, *, progress: float | None = None) -> None:
        elapsed = time.perf_counter() - self.started
        self.text += _log_line(f"[{elapsed:6.1f}s] {message}")
        update: dict[str, Any] = {"log": self.text}
        if progress is not None:
            update["progress"] = round(progress, 3)
        # Outside any transaction, so pollers see progress while the run is still going.
        TrainingRun.objects.owned_by(self.run.tenant_id).filter(pk=self.run.pk).update(**update)


def stale_claim(*, task_id: str, now) -> Q:
    """The running claims another delivery may take over: the same Celery message delivered again
    (its first delivery's worker died: Celery hands a message back only then, or after the broker's
    visibility timeout, which outlasts every task's hard time limit), or a claim whose heartbeat
    went stale (its worker stopped stamping it; rows from before heartbeats: by their start)."""
    stale = now - timedelta(seconds=settings.TRAINING_STALE_SECONDS)
    claimable = Q(heartbeat_at__lt=stale) | Q(
        heartbeat_at__isnull=True,
        started_at__lt=now - timedelta(seconds=settings.CELERY_LONGEST_TASK_SECONDS),
    )
    if task_id:
        claimable |= Q(claim_task=task_id[:64])
    return claimable


@acts_for_tenant(TrainingRun, "run_id")
def training_run_claim(*, run_id: int, task_id: str = "") -> bool:
    """Compare-and-set QUEUED -> RUNNING, or take over a running claim whose worker died
    (`stale_claim`). A finished run is never trained again."""
    now = timezone.now()
    claimed = (
        TrainingRun.objects.filter(pk=run_id)
        .filter(
            Q(status=RunStatus.QUEUED)
            | (Q(status=RunStatus.RUNNING) & stale_claim(task_id=task_id, now=now))
        )
        .update(
            status=RunStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            claim_task=task_id[:64],
            progress=0.0,
            error="",
        )
    )
    return bool(claimed)


def _stamp_run(run: TrainingRun) -> None:
    TrainingRun.objects.owned_by(run.tenant_id).filter(pk=run.pk, status=RunStatus.RUNNING).update(
        heartbeat_at=timezone.now()
    )


@acts_for_tenant(TrainingRun, "run_id")
def training_run_execute(*, run_id: int, task_id: str = "") -> TrainingRun | None:
    """Train, evaluate, measure, store and register one run. Returns None if it was not claimed.
    `task_id` is the Celery message's id (see `stale_claim`)."""
    if not training_run_claim(run_id=run_id, task_id=task_id):
        logger.info("training run %s already claimed or finished; skipping", run_id)
        return None
    run = TrainingRun.objects.select_related(
        "registered_model__label_set", "snapshot__revision__label_set", "need"
    ).get(pk=run_id)
    log = _RunLog(run)
    try:
        with beating(lambda: _stamp_run(run), every=settings.TRAINING_HEARTBEAT_SECONDS):
            version = _train_and_register(run, log)
    except Exception as exc:
        logger.exception("training run %s failed", run_id)
        log.write(f"FAILED: {exc}")
        TrainingRun.objects.filter(pk=run_id).update(
            status=RunStatus.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    log.write(f"registered {version}", progress=1.0)
    TrainingRun.objects.filter(pk=run_id).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now(), progress=1.0
    )
    run.refresh_from_db()
    return run


def training_runs_stale(*, exclude: frozenset[int] = frozenset(), now=None) -> list[int]:
    """Running runs whose heartbeat went stale (their worker died), for the sweeper to send again;
    `exclude` names runs that other work owns (a retrain's run is sent again with its retrain)."""
    now = now or timezone.now()
    owners: list[int | None] = [None, *Tenant.objects.values_list("pk", flat=True)]
    stale: list[int] = []
    for owner in owners:
        stale.extend(
            TrainingRun.objects.owned_by(owner)
            .filter(status=RunStatus.RUNNING)
            .filter(stale_claim(task_id="", now=now))
            .exclude(pk__in=exclude)
            .values_list("pk", flat=True)
        )
    return stale


def _fit(
    *,
    texts: list[str],
    label_lists: list[list[str]],
    labels: list[str],
    multilabel: bool,
    algorithm: str,
    params: dict,
    seed: int,
    log: _RunLog,
) -> TextClassifier:
    if not multilabel:
        return train(
            texts=texts,
            label_lists=label_lists,
            labels=labels,
            multilabel=False,
            algorithm=algorithm,
            params=params,
        )
    # One-vs-rest: tune each label's threshold on a held-out validation slice of the training
    # data, then refit on all of it and keep the tuned thresholds.
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * VALIDATION_FRACTION)
    tuning = {"method": "validation-slice", "fraction": VALIDATION_FRACTION, "seed": seed}
    if cut >= 5 and len(order) - cut >= 5:
        fit_idx, val_idx = order[cut:], order[:cut]
        probe = train(
            texts=[texts[i] for i in fit_idx],
            label_lists=[label_lists[i] for i in fit_idx],
            labels=labels,
            multilabel=True,
            algorithm=algorithm,
            params=params,
        )
        thresholds = evaluation.tune_thresholds(
            probe, [texts[i] for i in val_idx], [label_lists[i] for i in val_idx]
        )
        log.write(f"tuned thresholds on {cut} validation samples", progress=0.35)
    else:
        probe = None
        tuning = {"method": "training-data", "reason": "too few samples for a validation slice"}
    model = train(
        texts=texts,
        label_lists=label_lists,
        labels=labels,
        multilabel=True,
        algorithm=algorithm,
        params=params,
    )
    if probe is None:
        thresholds = evaluation.tune_thresholds(model, texts, label_lists)
    model.thresholds = thresholds
    model.params["thresholds"] = thresholds
    model.params["threshold_tuning"] = tuning
    return model


def _attach_to_need(run: TrainingRun) -> None:
    """The need a run was started for gets its result when it has no model yet, and follows it
    when the run promoted it to the alias the need is served by: a need never silently stays on
    an older model the user believes they replaced."""
    need = run.need
    if need is None:
        return
    needs = Need.objects.owned_by(need.tenant_id).filter(pk=need.pk)
    if need.model_id is None:
        needs.filter(model__isnull=True).update(
            model=run.registered_model, model_chosen_at=timezone.now()
        )
    elif (
        run.promote_to
        and run.promote_to == need.model_alias
        and need.model_id != run.registered_model_id
        and need.label_set_id == run.registered_model.label_set_id
    ):
        needs.update(model=run.registered_model, model_chosen_at=timezone.now())


def _train_and_register(run: TrainingRun, log: _RunLog) -> ModelVersion:
    snapshot = run.snapshot
    revision = snapshot.revision
    labels = revision.label_keys()
    multilabel = revision.label_set.kind == LabelSetKind.MULTILABEL
    log.write(f"loading snapshot {snapshot.content_hash[:12]} ({revision})", progress=0.02)
    texts, label_lists = snapshot_split(snapshot, "train")
    test_texts, test_lists = snapshot_split(snapshot, "test")
    log.write(
        f"{len(texts)} train / {len(test_texts)} test samples, labels: {', '.join(labels)}",
        progress=0.05,
    )
    t0 = time.perf_counter()
    model = _fit(
        texts=texts,
        label_lists=label_lists,
        labels=labels,
        multilabel=multilabel,
        algorithm=run.algorithm,
        params=run.params,
        seed=snapshot.seed,
        log=log,
    )
    train_seconds = time.perf_counter() - t0
    log.write(f"trained {run.algorithm} in {train_seconds:.1f}s", progress=0.6)
    t0 = time.perf_counter()
    metrics = evaluation.evaluate(model, test_texts, test_lists, labels=labels)
    metrics["n_train"] = len(texts)
    metrics["evaluated_on"] = {"snapshot": snapshot.content_hash, "split": "test"}
    eval_seconds = time.perf_counter() - t0
    log.write(
        f"evaluated on {len(test_texts)} held-out samples: accuracy {metrics['accuracy']:.3f}, "
        f"macro-F1 {metrics['macro_f1']:.3f}, micro-F1 {metrics['micro_f1']:.3f}",
        progress=0.75,
    )
    latency = evaluation.measure_latency(model, test_texts or texts)
    log.write(
        f"latency p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms, "
        f"batch {latency['docs_per_s']:.0f} docs/s",
        progress=0.8,
    )
    refit_seconds = None
    if run.refit_on_all and test_texts:
        # The evaluation above is of the model fitted on the train split; the served artifact is
        # the same configuration refitted on every sample, so no labelled data is left unused.
        t0 = time.perf_counter()
        model = _fit(
            texts=texts + test_texts,
            label_lists=label_lists + test_lists,
            labels=labels,
            multilabel=multilabel,
            algorithm=run.algorithm,
            params=run.params,
            seed=snapshot.seed,
            log=log,
        )
        refit_seconds = time.perf_counter() - t0
        log.write(
            f"refitted on all {len(texts) + len(test_texts)} samples (train + test) in "
            f"{refit_seconds:.1f}s; the metrics above were measured before the refit",
            progress=0.88,
        )
    metrics["fitted_on"] = {
        "split": "all" if refit_seconds is not None else "train",
        "n_samples": len(texts) + len(test_texts) if refit_seconds is not None else len(texts),
        "evaluated_before_refit": refit_seconds is not None,
    }
    stored = artifacts.store(model)
    log.write(f"stored artifact {stored.sha256[:12]} ({stored.size} bytes)", progress=0.92)
    metrics["timings"] = {
        "train_seconds": round(train_seconds, 2),
        "evaluate_seconds": round(eval_seconds, 2),
    }
    if refit_seconds is not None:
        metrics["timings"]["refit_seconds"] = round(refit_seconds, 2)
    params = dict(model.params)
    params["split"] = {
        "seed": snapshot.seed,
        "test_fraction": snapshot.test_fraction,
        "snapshot": snapshot.content_hash,
    }
    params["multilabel"] = multilabel
    params["labels"] = labels
    with transaction.atomic():
        version = model_version_register(
            registered_model=run.registered_model,
            stored=stored,
            algorithm=run.algorithm,
            params=params,
            snapshot=snapshot,
            metrics=metrics,
            latency=latency,
            parent=run.parent_version,
            training_run=run,
            actor=run.created_by,
        )
        if run.promote_to:
            alias_set(
                registered_model=run.registered_model,
                alias=run.promote_to,
                version=version,
                actor=run.created_by,
                reason=f"training run {run.pk} asked to promote",
            )
            log.write(f"promoted v{version.version} to {run.promote_to}")
        if run.need_id:
            _attach_to_need(run)
    return version
