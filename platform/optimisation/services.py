"""Optimisation runs: start, cancel, claim, execute (search, measure, choose, register), sweep.

A run searches model variants for one need with Optuna's multi-objective NSGA-II sampler (seeded,
bounded by a time limit and optionally a trial count), keeping three objectives per trial:
macro-F1 on the same held-out split as the need's champion, the artifact's size in bytes, and a
quick single-item p99 that only guides the sampler. After the search, every finished trial is
measured again, serially and with the stated protocol, on the path production serves it with;
those measured numbers alone make the Pareto front and the choice. The most accurate variant
within both budgets is registered as a new version of the need's model with the `candidate`
alias (promotion is the registry's alias flow); when nothing fits, the run says why.

Trial models live in a per-run work folder under ARTIFACT_ROOT/tmp until the end; the only
registry write is one transaction at the very end, after a last cancellation check, so a cancelled
run or a dead worker leaves nothing half-registered.
"""

from __future__ import annotations

import hashlib
import io
import logging
import random
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import joblib
import optuna
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from core.errors import DomainError
from core.querysets import acts_for_tenant
from core.queues import task_send
from optimisation import measurement, variants
from optimisation.models import (
    ACTIVE_STATUSES,
    OptimisationRun,
    OptimisationStatus,
    OptimisationTrial,
    TrialState,
)
from registry import artifacts, evaluation
from registry.ml import detect_script
from registry.models import AliasName, DatasetSnapshot, RegisteredModel
from registry.selectors import serving_versions
from registry.services.aliases import alias_set
from registry.services.datasets import snapshot_split
from registry.services.training import registered_model_get_or_create
from registry.services.versions import model_version_register
from taxonomy.models import LabelSetKind
from tenants.models import Need

logger = logging.getLogger(__name__)

#: Bounds that separate a budget from a typo.
MAX_LATENCY_BUDGET_MS = 60_000.0
MAX_SIZE_BUDGET_KB = 4 * 1024 * 1024  # 4 GB
MIN_TIME_LIMIT_SECONDS = 10
MAX_TRIALS = 1000
MAX_TARGET_RPS = 1_000_000.0
#: Single-item timings of the quick in-search measurement (guides the sampler only).
SEARCH_PROBE_REPETITIONS = 30
#: Early pruning on large training sets: a trial is first fitted on a seeded PRUNE_SUBSAMPLE share
#: of the training texts (at least PRUNE_MIN_TEXTS of them) and stopped there when that fit's
#: macro-F1 is more than PRUNE_MARGIN below the best finished trial's. (Optuna's own pruners do
#: not apply to multi-objective studies; a pruned trial is reported to it as TrialPruned.)
PRUNE_MIN_TEXTS = 2000
PRUNE_SUBSAMPLE = 0.25
PRUNE_MARGIN = 0.05
#: Share of the progress bar the search takes; measurement and registration take the rest.
_SEARCH_SHARE = 0.8


class OptimisationError(DomainError):
    pass


class _Cancelled(Exception):
    pass


# --- Start and cancel ------------------------------------------------------------------------
def _champion_snapshot(need: Need) -> DatasetSnapshot | None:
    """The snapshot of the version serving the need (its held-out split is the champion's), else
    the latest snapshot of the need's label set that the tenant can see."""
    version = serving_versions(need).select_related("snapshot").first()
    if version is not None:
        return version.snapshot
    return (
        DatasetSnapshot.objects.for_tenant(need.tenant_id)
        .filter(revision__label_set_id=need.label_set_id)
        .order_by("-created_at", "-pk")
        .first()
    )


def _number(value, *, field: str, low: float, high: float, what: str) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise OptimisationError(
            "bad_budget",
            _("Give %(what)s as a number.") % {"what": what},
            fields={field: [_("A number is required.")]},
        )
    if not low <= value <= high:
        raise OptimisationError(
            "bad_budget",
            _("%(what)s must be between %(low)g and %(high)g; got %(value)g.")
            % {"what": capfirst(what), "low": low, "high": high, "value": value},
            fields={field: [_("Between %(low)g and %(high)g.") % {"low": low, "high": high}]},
        )
    return value


def optimisation_run_start(
    *,
    need: Need,
    time_limit_seconds: int,
    latency_budget_ms: float | None = None,
    size_budget_kb: int | None = None,
    max_trials: int | None = None,
    seed: int = 42,
    target_requests_per_s: float | None = None,
    actor=None,
    enqueue: bool = True,
) -> OptimisationRun:
    """Queue an optimisation run for `need`. Budgets default to the need's own; each must be
    positive and plausible, the time limit within the platform's maximum, and the need must have
    a snapshot and no other run queued or running."""
    latency = latency_budget_ms if latency_budget_ms is not None else need.latency_budget_ms
    size = size_budget_kb if size_budget_kb is not None else need.size_budget_kb
    if latency is None or size is None:
        raise OptimisationError(
            "budget_required",
            _("Give a p99 latency budget and a size budget (or set them on the need)."),
            fields={
                name: ["Required."]
                for name, value in (("latency_budget_ms", latency), ("size_budget_kb", size))
                if value is None
            },
        )
    _number(
        latency,
        field="latency_budget_ms",
        low=0.001,
        high=MAX_LATENCY_BUDGET_MS,
        what="the p99 latency budget (ms)",
    )
    if isinstance(size, float) and not float(size).is_integer():
        raise OptimisationError("bad_budget", _("The size budget is a whole number of KB."))
    _number(
        size, field="size_budget_kb", low=1, high=MAX_SIZE_BUDGET_KB, what="the size budget (KB)"
    )
    limit = settings.OPTIMISATION_MAX_SECONDS
    if isinstance(time_limit_seconds, bool) or not isinstance(time_limit_seconds, int):
        raise OptimisationError("bad_time_limit", _("Give the time limit in whole seconds."))
    if time_limit_seconds > limit:
        raise OptimisationError(
            "time_limit_too_long",
            _(
                "The time limit may be at most %(limit)s s on this platform; got %(time_limit_seconds)s s."
            )
            % {"limit": limit, "time_limit_seconds": time_limit_seconds},
            fields={"time_limit_seconds": [_("At most %(limit)s.") % {"limit": limit}]},
        )
    if time_limit_seconds < MIN_TIME_LIMIT_SECONDS:
        raise OptimisationError(
            "bad_time_limit",
            _("The time limit must be at least %(minimum)s s.")
            % {"minimum": MIN_TIME_LIMIT_SECONDS},
            fields={
                "time_limit_seconds": [
                    _("At least %(minimum)s.") % {"minimum": MIN_TIME_LIMIT_SECONDS}
                ]
            },
        )
    if max_trials is not None:
        _number(max_trials, field="max_trials", low=1, high=MAX_TRIALS, what="the trial budget")
    _number(seed, field="seed", low=0, high=2**31 - 1, what="the seed")
    rate = (
        target_requests_per_s if target_requests_per_s is not None else need.target_requests_per_s
    )
    if rate is not None:
        _number(
            rate,
            field="target_requests_per_s",
            low=0.001,
            high=MAX_TARGET_RPS,
            what="the target request rate",
        )
    label_set = need.label_set
    if label_set is None:
        raise OptimisationError(
            "no_snapshot",
            _("Need '%(need_slug)s' has no label set yet, so there is no data.")
            % {"need_slug": need.slug},
        )
    snapshot = _champion_snapshot(need)
    if snapshot is None:
        raise OptimisationError(
            "no_snapshot",
            _(
                "Need '%(need_slug)s' has no dataset snapshot to optimise on; import data and train a model first."
            )
            % {"need_slug": need.slug},
        )
    if (
        OptimisationRun.objects.owned_by(need.tenant_id)
        .filter(need=need, status__in=ACTIVE_STATUSES)
        .exists()
    ):
        raise _already_running(need)
    try:
        with transaction.atomic():
            run = OptimisationRun.objects.create(
                tenant_id=need.tenant_id,
                need=need,
                snapshot=snapshot,
                latency_budget_ms=float(latency),
                size_budget_kb=int(size),
                time_limit_seconds=time_limit_seconds,
                max_trials=max_trials,
                seed=seed,
                target_requests_per_s=rate,
                created_by=actor if getattr(actor, "pk", None) else None,
                log=_line("queued"),
            )
            if enqueue:
                optimisation_run_enqueue(run=run)
    except IntegrityError:
        # Another request started one between the check and the insert (the database holds the
        # one-active-run-per-need rule).
        raise _already_running(need) from None
    return run


def _already_running(need: Need) -> OptimisationError:
    return OptimisationError(
        "optimisation_running",
        _(
            "An optimisation run for '%(need_slug)s' is already queued or running; cancel it or wait."
        )
        % {"need_slug": need.slug},
        status_code=409,
    )


def optimisation_run_enqueue(*, run: OptimisationRun) -> None:
    run_id = run.pk
    transaction.on_commit(lambda: task_send("workers.tasks.training.optimise_need", run_id))


def optimisation_run_cancel(*, run: OptimisationRun, actor=None) -> OptimisationRun:
    """A queued run is cancelled at once; a running one is asked to stop (it stops between trials
    and never registers anything after the request)."""
    runs = OptimisationRun.objects.owned_by(run.tenant_id).filter(pk=run.pk)
    now = timezone.now()
    who = getattr(actor, "username", None) or "an API key"
    if runs.filter(status=OptimisationStatus.QUEUED).update(
        status=OptimisationStatus.CANCELLED,
        cancel_requested=True,
        finished_at=now,
        log=run.log + _line(f"cancelled by {who} before it started"),
    ):
        run.refresh_from_db()
        return run
    if not runs.filter(status=OptimisationStatus.RUNNING).update(cancel_requested=True):
        run.refresh_from_db()
        raise OptimisationError(
            "not_active",
            _("This run is already %(status)s.") % {"status": run.get_status_display().lower()},
            status_code=409,
        )
    run.refresh_from_db()
    return run


# --- Execution -------------------------------------------------------------------------------
def _line(message: str) -> str:
    return f"{timezone.now():%Y-%m-%d %H:%M:%S} {message}\n"


class _RunLog:
    """Log lines, progress and the heartbeat, written outside any transaction so pollers see
    them while the run goes on."""

    def __init__(self, run: OptimisationRun):
        self.run = run
        self.text = run.log
        self.started = time.perf_counter()

    def write(self, message: str, *, progress: float | None = None) -> None:
        elapsed = time.perf_counter() - self.started
        self.text += _line(f"[{elapsed:6.1f}s] {message}")
        self.beat(progress=progress, log=self.text)

    def beat(self, *, progress: float | None = None, **extra: Any) -> None:
        update: dict[str, Any] = {"heartbeat_at": timezone.now(), **extra}
        if progress is not None:
            update["progress"] = round(min(max(progress, 0.0), 1.0), 3)
        OptimisationRun.objects.owned_by(self.run.tenant_id).filter(pk=self.run.pk).update(**update)

    def cancelled(self) -> bool:
        return bool(
            OptimisationRun.objects.owned_by(self.run.tenant_id)
            .filter(pk=self.run.pk)
            .values_list("cancel_requested", flat=True)
            .first()
        )


@acts_for_tenant(OptimisationRun, "run_id")
def optimisation_run_claim(*, run_id: int, task_id: str = "") -> bool:
    """Compare-and-set QUEUED -> RUNNING; a RUNNING run whose worker died starts over: the same
    message delivered again (Celery hands it back only when its worker died), or a heartbeat that
    went stale (the message came back after the broker's visibility timeout)."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.OPTIMISATION_STALE_SECONDS)
    dead = Q(status=OptimisationStatus.RUNNING, heartbeat_at__lt=stale)
    if task_id:
        dead |= Q(status=OptimisationStatus.RUNNING, claim_task=task_id[:64])
    claimed = (
        OptimisationRun.objects.filter(pk=run_id, cancel_requested=False)
        .filter(Q(status=OptimisationStatus.QUEUED) | dead)
        .update(
            status=OptimisationStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            claim_task=task_id[:64],
            progress=0.0,
        )
    )
    return bool(claimed)


def _workdir(run_id: int) -> Path:
    return artifacts.root() / "tmp" / "optimisation" / f"run-{run_id}"


@acts_for_tenant(OptimisationRun, "run_id")
def optimisation_run_execute(*, run_id: int, task_id: str = "") -> OptimisationRun | None:
    """Search, measure, choose and register one run. Returns None if it was not claimed.
    `task_id` is the Celery message's id (see `optimisation_run_claim`)."""
    if not optimisation_run_claim(run_id=run_id, task_id=task_id):
        logger.info("optimisation run %s already claimed or finished; skipping", run_id)
        return None
    run = OptimisationRun.objects.select_related(
        "need__label_set", "need__model", "snapshot__revision__label_set", "created_by"
    ).get(pk=run_id)
    # A taken-over run starts over: the dead worker's trials and files are not trusted.
    run.trials.all().delete()
    workdir = _workdir(run_id)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log = _RunLog(run)
    runs = OptimisationRun.objects.owned_by(run.tenant_id).filter(pk=run_id)
    try:
        _search_measure_register(run, log, workdir)
    except _Cancelled:
        log.write("cancelled: nothing was registered")
        runs.filter(status=OptimisationStatus.RUNNING).update(
            status=OptimisationStatus.CANCELLED, finished_at=timezone.now()
        )
    except Exception as exc:
        logger.exception("optimisation run %s failed", run_id)
        log.write(f"FAILED: {exc}")
        runs.filter(status=OptimisationStatus.RUNNING).update(
            status=OptimisationStatus.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    run.refresh_from_db()
    return run


def _search_measure_register(run: OptimisationRun, log: _RunLog, workdir: Path) -> None:
    snapshot = run.snapshot
    labels = snapshot.revision.label_keys()
    texts, label_lists = snapshot_split(snapshot, "train")
    test_texts, test_lists = snapshot_split(snapshot, "test")
    if not texts or not test_texts:
        raise OptimisationError("no_test_samples", _("The snapshot has no train or no test split."))
    script = detect_script(texts)
    multilabel = snapshot.revision.label_set.kind == LabelSetKind.MULTILABEL
    log.write(
        f"snapshot {snapshot.content_hash[:12]}: {len(texts)} train / {len(test_texts)} held-out "
        f"texts, {len(labels)} labels ({'multi-label' if multilabel else 'multi-class'}), "
        f"script {script}; budgets p99 ≤ {run.latency_budget_ms:g} ms,"
        f" size ≤ {run.size_budget_kb} KB; search limit {run.time_limit_seconds} s"
        + (f" or {run.max_trials} trials" if run.max_trials else "")
        + f", seed {run.seed}",
        progress=0.01,
    )
    files = _search(
        run, log, workdir, texts, label_lists, test_texts, test_lists, labels, script, multilabel
    )
    if log.cancelled():
        raise _Cancelled
    points = _measure_all(run, log, files, test_texts)
    _decide_and_register(run, log, files, points, test_texts, test_lists, labels, len(texts))


def _search(
    run, log, workdir, texts, label_lists, test_texts, test_lists, labels, script, multilabel
):
    """The Optuna study. Returns {trial number: (path, sha256)} of the finished trials."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    files: dict[int, tuple[Path, str]] = {}
    started = time.monotonic()
    default = variants.default_variant(script)
    sampler = optuna.samplers.NSGAIISampler(seed=run.seed, population_size=10)
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=sampler,
        study_name=f"optimisation-{run.pk}",
    )
    # The platform's default model is always trial 0: the front is shown against it. Then a few
    # cheap variants known to do well on text (a small word or character vocabulary, single
    # precision): the sampler starts from them instead of finding them by chance.
    study.enqueue_trial(variants.as_optuna_params(default, script))
    for seed_variant in variants.starting_variants(script):
        study.enqueue_trial(variants.as_optuna_params(seed_variant, script))
    best: dict[int, float] = {}
    subsample = sorted(
        random.Random(run.seed).sample(range(len(texts)), max(1, int(len(texts) * PRUNE_SUBSAMPLE)))
    )

    def progress() -> float:
        by_time = (time.monotonic() - started) / run.time_limit_seconds
        by_trials = len(files) / run.max_trials if run.max_trials else 0.0
        return _SEARCH_SHARE * min(1.0, max(by_time, by_trials))

    def objective(trial: optuna.Trial):
        if log.cancelled():
            trial.study.stop()
            raise optuna.TrialPruned("cancelled")
        variant = variants.suggest(trial, script)
        row = OptimisationTrial(
            run=run, number=trial.number, params=variant, is_default=trial.number == 0
        )
        best_f1 = max(best.values(), default=None)
        if trial.number > 0 and best_f1 is not None and len(texts) >= PRUNE_MIN_TEXTS:
            t0 = time.perf_counter()
            try:
                probe_model = variants.build(
                    variant,
                    texts=[texts[i] for i in subsample],
                    label_lists=[label_lists[i] for i in subsample],
                    labels=labels,
                    script=script,
                    seed=run.seed,
                    multilabel=multilabel,
                )
                sub_f1 = evaluation.evaluate(probe_model, test_texts, test_lists, labels=labels)[
                    "macro_f1"
                ]
            except Exception as exc:
                row.state, row.error = TrialState.FAILED, str(exc)[:2000]
                row.save()
                log.write(f"trial {trial.number} failed: {exc}", progress=progress())
                raise
            if sub_f1 < best_f1 - PRUNE_MARGIN:
                row.state, row.fit_seconds = TrialState.PRUNED, round(time.perf_counter() - t0, 3)
                row.error = (
                    f"pruned: macro-F1 {sub_f1:.4f} on a {len(subsample)}-text subsample, more "
                    f"than {PRUNE_MARGIN:g} below the best finished trial ({best_f1:.4f})"
                )
                row.save()
                log.write(
                    f"trial {trial.number}: {_describe(variant)} → {row.error}",
                    progress=progress(),
                )
                raise optuna.TrialPruned(row.error)
        try:
            t0 = time.perf_counter()
            model = variants.build(
                variant,
                texts=texts,
                label_lists=label_lists,
                labels=labels,
                script=script,
                seed=run.seed,
                multilabel=multilabel,
            )
            fit_seconds = time.perf_counter() - t0
            f1 = evaluation.evaluate(model, test_texts, test_lists, labels=labels)["macro_f1"]
            blob = variants.artifact_bytes(model)
            path = workdir / f"trial-{trial.number}.joblib"
            path.write_bytes(blob)
            probe = measurement.measure(
                model,
                test_texts,
                warmup=3,
                repetitions=SEARCH_PROBE_REPETITIONS,
                batch_docs=1,
                seed=run.seed,
            )
        except Exception as exc:
            row.state, row.error = TrialState.FAILED, str(exc)[:2000]
            row.save()
            log.write(f"trial {trial.number} failed: {exc}", progress=progress())
            raise
        files[trial.number] = (path, hashlib.sha256(blob).hexdigest())
        best[trial.number] = f1
        row.state = TrialState.COMPLETE
        row.macro_f1, row.size_bytes = f1, len(blob)
        row.search_p99_ms, row.fit_seconds = probe.p99_ms, round(fit_seconds, 3)
        row.scorer_path = probe.scorer_path
        row.save()
        log.write(
            f"trial {trial.number}{' (default model)' if row.is_default else ''}: "
            f"{_describe(variant)} → macro-F1 {f1:.4f}, {len(blob) / 1024:.0f} KB "
            f"({fit_seconds:.1f}s)",
            progress=progress(),
        )
        return f1, len(blob), probe.p99_ms

    def stop_when_cancelled(study: optuna.Study, trial) -> None:
        if log.cancelled():
            study.stop()

    study.optimize(
        objective,
        n_trials=run.max_trials,
        timeout=run.time_limit_seconds,
        callbacks=[stop_when_cancelled],
        catch=(ValueError, ArithmeticError, MemoryError),
        gc_after_trial=True,
    )
    log.write(f"search done: {len(files)} finished trials", progress=_SEARCH_SHARE)
    return files


def _measure_all(run, log, files, test_texts) -> list[measurement.Point]:
    warmup, reps = settings.OPTIMISATION_WARMUP, settings.OPTIMISATION_REPETITIONS
    priority = settings.OPTIMISATION_MEASUREMENT_FIFO_PRIORITY
    with measurement.scheduling(priority) as policy:  # the policy the timings will run under
        pass
    conditions = measurement.conditions(
        warmup=warmup, repetitions=reps, batch_docs=1000, scheduling=policy
    )
    OptimisationRun.objects.owned_by(run.tenant_id).filter(pk=run.pk).update(measurement=conditions)
    run.measurement = conditions
    log.write(
        f"measuring {len(files)} variants serially on the serving path: {warmup} warm-up calls, "
        f"{reps} single-item repetitions, 1000-text batch, scheduling {policy} "
        f"(load {conditions['load_average_1m']})"
    )
    trials = {t.number: t for t in run.trials.filter(state=TrialState.COMPLETE)}
    points = []
    for i, (number, (path, sha256)) in enumerate(sorted(files.items())):
        if log.cancelled():
            raise _Cancelled
        model = _load_trial(path, sha256)
        # Only the timing itself runs at the raised priority (loading and the database do not).
        with measurement.scheduling(priority):
            measured = measurement.measure(
                model, test_texts, warmup=warmup, repetitions=reps, batch_docs=1000, seed=run.seed
            )
        trial = trials[number]
        trial.p50_ms, trial.p99_ms, trial.mean_ms = (
            measured.p50_ms,
            measured.p99_ms,
            measured.mean_ms,
        )
        trial.docs_per_s, trial.scorer_path = measured.docs_per_s, measured.scorer_path
        trial.save(update_fields=["p50_ms", "p99_ms", "mean_ms", "docs_per_s", "scorer_path"])
        points.append(
            measurement.Point(
                key=number,
                f1=float(trial.macro_f1 or 0.0),
                p99_ms=measured.p99_ms,
                size_bytes=int(trial.size_bytes or 0),
            )
        )
        log.beat(progress=_SEARCH_SHARE + 0.15 * (i + 1) / len(files))
    return points


def _trial_bytes(path: Path, sha256: str) -> bytes:
    """A trial's artifact bytes from the run's work folder, refusing bytes that changed."""
    blob = path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise artifacts.ArtifactIntegrityError(f"{path.name} changed since it was written.")
    return blob


def _load_trial(path: Path, sha256: str):
    """A trial's model (verified before unpickling: a pickle is code)."""
    return joblib.load(io.BytesIO(_trial_bytes(path, sha256)))["model"]


def _describe(variant: dict[str, Any]) -> str:
    if variant["representation"] == "hashing":
        rep = f"hashing {variant['analyzer']}(1,{variant['ngram_max']}) 2^{variant['hash_bits']}"
    else:
        rep = (
            f"tfidf {variant['analyzer']}(1,{variant['ngram_max']}) min_df {variant['min_df']} "
            f"max {variant['max_features']}"
        )
        if variant.get("selection") == "chi2":
            rep += f" chi2 k={variant['k']}"
        elif variant.get("selection") == "weights":
            rep += f" prune keep {variant['keep_fraction']:.0%}"
    clf = variant["classifier"]
    if clf in ("logreg", "svm"):
        clf += f" C={variant['C']:.3g}" + (" l1" if variant.get("penalty") == "l1" else "")
    else:
        clf += f" alpha={variant['alpha']:.2g}"
    lead = f", first {variant['max_chars']} chars" if variant.get("max_chars") else ""
    return f"{rep} + {clf}, {variant['precision']}{lead}"


def _decide_and_register(
    run, log, files, points, test_texts, test_lists, labels, n_train: int
) -> None:
    size_budget_bytes = run.size_budget_kb * 1024
    front = measurement.pareto_front(points)
    front_keys = {p.key for p in front}
    fitting = {
        p.key
        for p in points
        if measurement.fits(
            p, latency_budget_ms=run.latency_budget_ms, size_budget_bytes=size_budget_bytes
        )
    }
    for trial in run.trials.filter(state=TrialState.COMPLETE):
        trial.pareto, trial.fits = trial.number in front_keys, trial.number in fitting
        trial.save(update_fields=["pareto", "fits"])
    chosen, misses = measurement.choose(
        points, latency_budget_ms=run.latency_budget_ms, size_budget_bytes=size_budget_bytes
    )
    trials = {t.number: t for t in run.trials.filter(state=TrialState.COMPLETE)}
    best = max(points, key=lambda p: (p.f1, -p.p99_ms), default=None)
    default = trials.get(0)
    result: dict[str, Any] = {
        "trials": len(run.trials.all()),
        "finished_trials": len(points),
        "front": [p.key for p in front],
        "unconstrained_best": None if best is None else {"trial": best.key, "f1": best.f1},
        "default_trial": 0 if default is not None else None,
    }
    capacity: dict[str, Any] = {}
    if default is not None and default.mean_ms is not None:
        capacity["default"] = measurement.capacity_plan(
            target_requests_per_s=run.target_requests_per_s,
            mean_ms=default.mean_ms,
            p99_ms=float(default.p99_ms or 0),
            docs_per_s=float(default.docs_per_s or 0),
            latency_budget_ms=run.latency_budget_ms,
        )
    runs = OptimisationRun.objects.owned_by(run.tenant_id).filter(pk=run.pk)
    if chosen is None:
        result.update(nothing_fits=misses, capacity=capacity)
        log.write(f"nothing fits: {misses['reason']}", progress=1.0)
        with transaction.atomic():
            locked = runs.select_for_update().get()
            if locked.cancel_requested:
                raise _Cancelled
            runs.update(
                status=OptimisationStatus.NOTHING_FITS,
                result=result,
                finished_at=timezone.now(),
                progress=1.0,
            )
        return
    trial = trials[chosen.key]
    capacity["chosen"] = measurement.capacity_plan(
        target_requests_per_s=run.target_requests_per_s,
        mean_ms=float(trial.mean_ms or 0),
        p99_ms=float(trial.p99_ms or 0),
        docs_per_s=float(trial.docs_per_s or 0),
        latency_budget_ms=run.latency_budget_ms,
    )
    result.update(
        chosen_trial=trial.number,
        f1_loss_vs_best=None if best is None else round(best.f1 - chosen.f1, 4),
        capacity=capacity,
    )
    path, sha256 = files[trial.number]
    model = _load_trial(path, sha256)
    metrics = evaluation.evaluate(model, test_texts, test_lists, labels=labels)
    metrics["evaluated_on"] = {"snapshot": run.snapshot.content_hash, "split": "test"}
    metrics["n_train"] = n_train
    if log.cancelled():
        raise _Cancelled
    # The very bytes whose size was optimised and whose model was measured.
    stored = artifacts.store_serialised(_trial_bytes(path, sha256))
    if stored.size != trial.size_bytes:  # the size the search optimised is the stored size
        raise OptimisationError(
            "size_mismatch",
            _("Stored %(size)s bytes, measured %(size_bytes)s.")
            % {"size": stored.size, "size_bytes": trial.size_bytes},
        )
    card = {
        "run": run.pk,
        "trial": trial.number,
        "budgets": {"p99_ms": run.latency_budget_ms, "size_kb": run.size_budget_kb},
        "measured": {
            "p50_ms": trial.p50_ms,
            "p99_ms": trial.p99_ms,
            "mean_ms": trial.mean_ms,
            "docs_per_s": trial.docs_per_s,
            "size_bytes": trial.size_bytes,
            "scorer_path": trial.scorer_path,
        },
        "conditions": run.measurement,
        "capacity": capacity["chosen"],
        "f1_loss_vs_unconstrained_best": result["f1_loss_vs_best"],
    }
    params = dict(model.params)
    params["split"] = {
        "seed": run.snapshot.seed,
        "test_fraction": run.snapshot.test_fraction,
        "snapshot": run.snapshot.content_hash,
    }
    params["optimisation"] = card
    with transaction.atomic():
        locked = runs.select_for_update().get()
        if locked.cancel_requested or locked.status != OptimisationStatus.RUNNING:
            raise _Cancelled
        registered_model = _target_model(run)
        version = model_version_register(
            registered_model=registered_model,
            stored=stored,
            algorithm=variants.algorithm_of(trial.params),
            params=params,
            snapshot=run.snapshot,
            metrics=metrics,
            latency={
                "p50_ms": trial.p50_ms,
                "p99_ms": trial.p99_ms,
                "docs_per_s": trial.docs_per_s,
            },
            actor=run.created_by,
            notes=f"Optimisation run {run.pk}, trial {trial.number}: {_describe(trial.params)}",
        )
        alias_set(
            registered_model=registered_model,
            alias=AliasName.CANDIDATE,
            version=version,
            actor=run.created_by,
            reason=f"optimisation run {run.pk}: most accurate variant within the budgets",
        )
        result["registered_version"] = {"id": version.pk, "name": str(version)}
        if run.need.model_id is None:  # as a training run does: the need gets its model line
            Need.objects.owned_by(run.tenant_id).filter(pk=run.need_id, model__isnull=True).update(
                model=registered_model
            )
        runs.update(
            status=OptimisationStatus.SUCCEEDED,
            chosen_trial=trial,
            registered_version=version,
            result=result,
            finished_at=timezone.now(),
            progress=1.0,
        )
    log.write(
        f"chose trial {trial.number} (macro-F1 {chosen.f1:.4f}, p99 {chosen.p99_ms:.3f} ms, "
        f"{chosen.size_bytes / 1024:.0f} KB); registered {version} as candidate",
        progress=1.0,
    )


def _target_model(run: OptimisationRun) -> RegisteredModel:
    """The need's own registered model (so the candidate alias sits beside its production one),
    or, when the need is served by a shared model, the tenant's own model line for the label set."""
    need = run.need
    if need.model is not None and need.model.tenant_id == run.tenant_id:
        return need.model
    return registered_model_get_or_create(
        label_set=run.snapshot.revision.label_set, algorithm="tfidf-logreg", tenant=need.tenant
    )


# --- The sweeper -----------------------------------------------------------------------------
def optimisation_runs_sweep() -> int:
    """Fail running runs whose worker stopped sending heartbeats (a redelivered message would
    restart them; this frees the need when none comes). Returns how many were failed."""
    stale = timezone.now() - timedelta(seconds=settings.OPTIMISATION_STALE_SECONDS)
    failed = 0
    for row in _stale_runs(stale):
        done = (
            OptimisationRun.objects.owned_by(row["tenant_id"])
            .filter(pk=row["pk"], status=OptimisationStatus.RUNNING, heartbeat_at__lt=stale)
            .update(
                status=OptimisationStatus.FAILED,
                error="The worker stopped reporting (it died or was restarted); nothing was "
                "registered. Start the run again.",
                finished_at=timezone.now(),
            )
        )
        if done:
            failed += 1
            shutil.rmtree(_workdir(row["pk"]), ignore_errors=True)
    return failed


def _stale_runs(stale) -> list[dict[str, Any]]:
    from tenants.models import Tenant

    rows: list[dict[str, Any]] = []
    for tenant_id in Tenant.objects.values_list("pk", flat=True):
        rows.extend(
            OptimisationRun.objects.owned_by(tenant_id)
            .filter(status=OptimisationStatus.RUNNING, heartbeat_at__lt=stale)
            .values("pk", "tenant_id")
        )
    return rows
