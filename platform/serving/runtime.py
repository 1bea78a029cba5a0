"""The inference runtime: need -> alias -> model version -> a verified, warmed, cached classifier.

One `Runtime` lives per process (`get_runtime()`), shared by the web process (inline sync tagging)
and Celery workers (queued sync, stream, batch). It keeps:

* a bounded LRU of loaded models (`MODEL_CACHE_SIZE`), keyed by model version id. A version is
  loaded through `registry.artifacts.load`, which checks the sha256 before unpickling, then warmed
  up with one prediction so the first real request does not pay for lazy initialisation;
* a per-need binding (thresholds, label mapping, the version its alias points at), re-read at most
  every `ALIAS_POLL_SECONDS`. Promotions and rollbacks are therefore picked up within seconds with
  one indexed query per need and poll, and never on the hot path in between;
* a content-hash result cache in the Django cache (Redis in production), keyed by
  (model version, sha256(text)) and shared by every tenant and channel, so the same article asked
  for by two tenants served by the same model version costs one prediction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from registry import ml
from serving import metrics, result_cache

logger = logging.getLogger(__name__)

#: Texts a compiled scorer must score exactly like the model's own predict_scores before use.
_CHECK_TEXTS = [
    "warm-up",
    "Shares rose as the central bank held interest rates; investors cheered the profit report.",
    "The striker scored twice in the second half and the coach praised the young team.",
    "新款手机发布，芯片性能提升，市场反应热烈。",
    "",
]


def serving_scorer(classifier) -> tuple[Any, str]:
    """The scorer production serves `classifier` with, and its path ("tfidf-linear", "linear" or
    the generic "predict_scores"): the one definition, shared with latency measurement."""
    return ml.compile_scorer(classifier, check_texts=_CHECK_TEXTS)


class NeedNotFound(LookupError):
    """No such need for this tenant (another tenant's need is reported the same way)."""


class NeedNotServed(RuntimeError):
    """The need exists but has no model (or no version at its alias) to serve it with."""


class NeedInactive(NeedNotServed):
    """The lifecycle forbids serving: the need is not approved yet (`requested`) or `retired`.

    `code` is the API error code, the same for sync, stream and batch."""

    def __init__(self, slug: str, status: str) -> None:
        self.status = status
        if status == "retired":
            self.code = "need_retired"
            message = f"Need '{slug}' is retired and no longer served."
        else:
            self.code = "need_not_approved"
            message = f"Need '{slug}' is not approved yet; platform staff must approve it first."
        super().__init__(message)


class ModelUnavailable(RuntimeError):
    """The model version could not be loaded (missing, tampered or incompatible artifact).

    Its message is for tenants and says nothing about artifacts; the detail (hash, path, what to
    do) is in the log and the ArtifactIntegrityIncident that `registry.artifacts` opened."""


@dataclass(frozen=True)
class LoadedModel:
    version_id: int
    name: str
    number: int
    classifier: Any  # registry.ml.TextClassifier
    labels: tuple[str, ...]
    multilabel: bool
    label_thresholds: dict[str, float]
    #: `classifier.predict_scores`, compiled for serving (registry.ml.compile_scorer).
    scorer: Any = None
    scorer_path: str = "predict_scores"

    @property
    def ref(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.number}


@dataclass
class ServedNeed:
    """What the hot path needs to know about a need, refreshed every ALIAS_POLL_SECONDS."""

    id: int
    tenant_id: int
    slug: str
    status: str
    execution: str
    model: LoadedModel
    top_k: int
    #: Per-label cut-offs in model label order (global thresholds already resolved).
    cutoffs: np.ndarray
    #: Tenant-facing names in model label order (global key when unmapped).
    names: tuple[str, ...]
    checked_at: float = 0.0


@dataclass(frozen=True)
class TagResult:
    text_hash: str
    labels: list[str]  # tenant names, assigned (top-k above thresholds)
    scores: dict[str, float]  # tenant name -> score, every label, best first
    global_labels: list[str]
    global_scores: dict[str, float]
    top_label: str  # global key
    top_score: float
    above_threshold: bool
    model: LoadedModel

    def public(self, item_id: str) -> dict[str, Any]:
        return {
            "id": item_id,
            "labels": self.labels,
            "scores": self.scores,
            "model": self.model.ref,
        }


#: Need statuses that may be served; `requested` and `retired` may not (checked at every bind,
#: so a status change reaches every process within ALIAS_POLL_SECONDS).
_SERVABLE = frozenset({"approved", "live"})


def servable_version_id(need) -> int:
    """The id of the version serving `need`, from the database only (nothing is loaded);
    raises NeedInactive / NeedNotServed when its lifecycle or its model's alias forbids it."""
    from registry.selectors import serving_versions

    if need.status not in _SERVABLE:
        raise NeedInactive(need.slug, need.status)
    if need.model_id is None:
        raise NeedNotServed(f"Need '{need.slug}' has no model yet.")
    if hasattr(need, "alias_version_id"):  # annotated by `serving_version_subquery()`
        version_id = need.alias_version_id
    else:
        version_id = serving_versions(need).values_list("pk", flat=True).first()
    if version_id is None:
        raise NeedNotServed(
            f"Need '{need.slug}': its model has no version at alias '{need.model_alias}'."
        )
    return version_id


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _VersionMeta:
    """What loading a version needs from the database, read on the caller's thread (so the load
    itself, possibly on a background thread, never queries)."""

    version_id: int
    name: str
    number: int
    sha256: str
    label: str


class _Flight:
    """One in-progress load of a version: everybody who wants it waits on the same one."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.model: LoadedModel | None = None
        self.error: BaseException | None = None


class Runtime:
    #: After a failed background load, the previous version keeps serving and the new one is
    #: not tried again for this long (a tampered artifact is not re-read every poll).
    FAILED_LOAD_RETRY_SECONDS = 30.0

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._models: OrderedDict[int, LoadedModel] = OrderedDict()
        self._needs: dict[int, ServedNeed] = {}
        self._need_ids: dict[tuple[int, str], int] = {}
        #: Loads in progress, one per version (single-flight), and needs waiting for them.
        self._flights: dict[int, _Flight] = {}
        self._waiting: dict[int, set[int]] = {}
        self._failed_until: dict[int, float] = {}
        #: Texts actually sent to a model (cache misses); tests and the benchmark read it.
        self.predicted_texts = 0
        #: Versions this process has loaded (count per version id); tests and the bench read it.
        self.loads: dict[int, int] = {}
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A loader thread of the parent does not exist in the child: its flights never finish.
        self._lock = threading.RLock()
        self._flights, self._waiting = {}, {}

    # --- models -------------------------------------------------------------------------------
    def model(self, version_id: int) -> LoadedModel:
        """The loaded version, loading it now if needed; concurrent callers share one load."""
        with self._lock:
            loaded = self._models.get(version_id)
            if loaded is not None:
                self._models.move_to_end(version_id)
                return loaded
            flight = self._flights.get(version_id)
            owner = flight is None
            if owner:
                flight = self._flights[version_id] = _Flight()
        if owner:
            try:
                meta = self._version_meta(version_id)
            except BaseException as exc:
                self._land(version_id, flight, error=exc)
                raise
            self._fly(meta, flight)
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        return flight.model

    def wait_for_loads(self, timeout: float | None = None) -> bool:
        """Wait for the loads in flight now (tests, benchmarks); False if one is still running."""
        with self._lock:
            flights = list(self._flights.values())
        return all(flight.done.wait(timeout) for flight in flights)

    def _loaded(self, version_id: int) -> LoadedModel | None:
        with self._lock:
            loaded = self._models.get(version_id)
            if loaded is not None:
                self._models.move_to_end(version_id)
            return loaded

    def _load_beside(self, version_id: int, need_id: int) -> None:
        """Start loading `version_id` on a background thread unless it is in flight already or
        failed recently; `need_id` is re-bound as soon as it is ready."""
        with self._lock:
            self._waiting.setdefault(version_id, set()).add(need_id)
            if version_id in self._flights:
                return
            if time.monotonic() < self._failed_until.get(version_id, 0.0):
                return
            flight = self._flights[version_id] = _Flight()
        try:
            meta = self._version_meta(version_id)
        except BaseException as exc:
            self._land(version_id, flight, error=exc)
            raise
        thread = threading.Thread(
            target=self._fly,
            args=(meta, flight),
            kwargs={"background": True},
            name=f"model-load-{version_id}",
            daemon=True,
        )
        thread.start()

    def _fly(self, meta: _VersionMeta, flight: _Flight, *, background: bool = False) -> None:
        try:
            loaded = self._load_meta(meta)
        except BaseException as exc:
            if background:
                logger.error(
                    "background load of %s failed; the previous version keeps serving: %s",
                    meta.label,
                    exc,
                )
            self._land(meta.version_id, flight, error=exc)
        else:
            self._land(meta.version_id, flight, model=loaded)
        finally:
            if background:
                from django.db import connections

                connections.close_all()  # this thread's own connections (an incident write)

    def _land(self, version_id: int, flight: _Flight, *, model=None, error=None) -> None:
        with self._lock:
            if model is not None:
                self._models[version_id] = model
                self._models.move_to_end(version_id)
                self.loads[version_id] = self.loads.get(version_id, 0) + 1
                while len(self._models) > settings.MODEL_CACHE_SIZE:
                    evicted, _ = self._models.popitem(last=False)
                    logger.info("model cache full: evicted version %s", evicted)
                self._failed_until.pop(version_id, None)
            else:
                self._failed_until[version_id] = time.monotonic() + self.FAILED_LOAD_RETRY_SECONDS
            if self._flights.get(version_id) is flight:
                del self._flights[version_id]
            # The needs waiting for this version re-bind on their next request (the switch is
            # one dict assignment there), instead of at their next poll.
            for need_id in self._waiting.pop(version_id, set()) if model is not None else ():
                served = self._needs.get(need_id)
                if served is not None:
                    served.checked_at = float("-inf")
        flight.model, flight.error = model, error
        flight.done.set()

    def _load(self, version_id: int) -> LoadedModel:
        return self._load_meta(self._version_meta(version_id))

    @staticmethod
    def _version_meta(version_id: int) -> _VersionMeta:
        from registry.models import ModelVersion

        version = (
            ModelVersion.objects.dangerously_unscoped()
            .select_related("registered_model")
            .get(pk=version_id)
        )
        return _VersionMeta(
            version_id=version.pk,
            name=version.registered_model.name,
            number=version.version,
            sha256=version.artifact_sha256,
            label=str(version),
        )

    def _load_meta(self, meta: _VersionMeta) -> LoadedModel:
        from registry import artifacts

        name, number = meta.name, meta.number
        try:
            classifier = artifacts.load(meta.sha256)
        except artifacts.ArtifactError as exc:
            logger.error("cannot load %s: %s", meta.label, exc)
            outcome = (
                "checksum_mismatch"
                if isinstance(exc, artifacts.ArtifactIntegrityError)
                else "failed"
            )
            metrics.record_model_load(name, number, outcome)
            raise ModelUnavailable(
                f"The model serving this need ({name} v{number}) is unavailable; "
                "the platform team has been alerted."
            ) from exc
        # Compiling also warms the model: first-call costs land here, not on a request.
        scorer, scorer_path = serving_scorer(classifier)
        metrics.record_model_load(name, number, "loaded")
        logger.info("loaded and warmed %s (%s)", meta.label, meta.sha256[:12])
        return LoadedModel(
            version_id=meta.version_id,
            name=name,
            number=number,
            classifier=classifier,
            labels=tuple(classifier.labels),
            multilabel=bool(classifier.multilabel),
            label_thresholds=dict(getattr(classifier, "thresholds", {}) or {}),
            scorer=scorer,
            scorer_path=scorer_path,
        )

    def loaded_version_ids(self) -> list[int]:
        with self._lock:
            return list(self._models)

    # --- needs --------------------------------------------------------------------------------
    def need(self, *, tenant_id: int, slug: str) -> ServedNeed:
        """The served need `slug` of `tenant_id`; raises NeedNotFound / NeedNotServed."""
        need_id = self._need_ids.get((tenant_id, slug))
        if need_id is None:
            from tenants.models import Need

            need_id = (
                Need.objects.for_tenant(tenant_id)
                .filter(slug=slug)
                .values_list("pk", flat=True)
                .first()
            )
            if need_id is None:
                raise NeedNotFound(slug)
        served = self.need_by_id(need_id)
        self._need_ids[(tenant_id, slug)] = need_id
        return served

    def need_by_id(self, need_id: int) -> ServedNeed:
        served = self._needs.get(need_id)
        if (
            served is not None
            and time.monotonic() - served.checked_at < settings.ALIAS_POLL_SECONDS
        ):
            return served
        served = self._bind(need_id)
        self._needs[need_id] = served
        return served

    def forget(self) -> None:
        """Drop every binding and model (tests; a real process simply polls)."""
        with self._lock:
            self._models.clear()
            self._needs.clear()
            self._need_ids.clear()
            self._waiting.clear()
            self._failed_until.clear()
            self.loads.clear()

    def _bind(self, need_id: int) -> ServedNeed:
        from registry.selectors import serving_version_subquery
        from tenants.models import Need

        # Two indexed queries, whatever the label count: the need with the version its alias
        # points at, and its label rows.
        need = (
            Need.objects.dangerously_unscoped()
            .filter(pk=need_id)
            .annotate(alias_version_id=serving_version_subquery())
            .with_labels()
            .first()
        )
        if need is None:
            self._need_ids = {k: v for k, v in self._need_ids.items() if v != need_id}
            raise NeedNotFound(str(need_id))
        version_id = servable_version_id(need)
        # A version this process has not loaded yet is loaded beside the one serving now (single-
        # flight, on a background thread) and switched to when ready: no request waits for a
        # promotion's load. Only a need with nothing to serve meanwhile waits for its model.
        model = self._loaded(version_id)
        current = self._needs.get(need_id)
        if model is None and current is not None:
            if current.model.version_id == version_id:  # evicted from the LRU, still bound
                model = current.model
            else:
                self._load_beside(version_id, need_id)
                model = self._loaded(version_id) or current.model
        elif model is None:
            model = self.model(version_id)
        return ServedNeed(
            id=need.pk,
            tenant_id=need.tenant_id,
            slug=need.slug,
            status=need.status,
            execution=need.execution,
            model=model,
            top_k=max(1, int(need.top_k or 1)),
            cutoffs=_cutoffs(need, model),
            names=_tenant_names(need, model),
            checked_at=time.monotonic(),
        )

    # --- tagging ------------------------------------------------------------------------------
    def tag(
        self,
        served: ServedNeed,
        texts: list[str],
        *,
        use_cache: bool = True,
        hashes: list[str] | None = None,
        cached: list[bytes | None] | None = None,
    ) -> list[TagResult]:
        """Tag `texts` with the need's model: one vectorised predict for every cache miss.

        `cached` is the result-cache lookup when the caller already did it (the sync path folds
        it into the same Redis round trip as the quota count)."""
        model = served.model
        hashes = hashes or [text_sha256(text) for text in texts]
        scores = self.scores(model, texts, hashes, use_cache=use_cache, cached=cached)
        return _decide(served, hashes, scores)

    def scores(
        self,
        model: LoadedModel,
        texts: list[str],
        hashes: list[str],
        *,
        use_cache: bool = True,
        cached: list[bytes | None] | None = None,
    ) -> np.ndarray:
        n_labels = len(model.labels)
        out = np.empty((len(texts), n_labels), dtype=np.float64)
        use_cache = use_cache and bool(settings.RESULT_CACHE_SECONDS)
        keys = result_cache.keys_for(model.version_id, hashes) if use_cache else []
        if use_cache and cached is None:
            try:
                cached = result_cache.lookup(keys)
            except Exception:  # a cache outage costs predictions, never a failed request
                logger.warning("result cache unavailable", exc_info=True)
        missing = []
        for i in range(len(texts)):
            raw = cached[i] if cached else None
            if raw is not None and len(raw) == 4 * n_labels:
                out[i] = np.frombuffer(raw, dtype=np.float32)
            else:
                missing.append(i)
        if missing:
            # Identical texts inside one request are predicted once too.
            unique: dict[str, int] = {}
            for i in missing:
                unique.setdefault(hashes[i], i)
            order = list(unique.values())
            predicted = model.scorer([texts[i] for i in order])
            self.predicted_texts += len(order)
            by_hash = {hashes[i]: predicted[j] for j, i in enumerate(order)}
            for i in missing:
                out[i] = by_hash[hashes[i]]
            if use_cache:
                try:
                    result_cache.store(
                        {
                            keys[i]: np.asarray(by_hash[hashes[i]], dtype=np.float32).tobytes()
                            for i in order
                        }
                    )
                except Exception:
                    logger.warning("result cache unavailable", exc_info=True)
        return out


def _tenant_names(need, model: LoadedModel) -> tuple[str, ...]:
    to_name = {key: name for name, key in need.label_mapping.items()}
    return tuple(to_name.get(label, label) for label in model.labels)


def _cutoffs(need, model: LoadedModel) -> np.ndarray:
    """Per-label threshold: the need's per-label value, else the need's threshold, else
    (multi-label models) the threshold the model was tuned with."""
    per_label = need.per_label_thresholds
    cut = []
    for label in model.labels:
        if label in per_label:
            cut.append(float(per_label[label]))
        elif need.threshold:
            cut.append(float(need.threshold))
        elif model.multilabel:
            cut.append(float(model.label_thresholds.get(label, 0.5)))
        else:
            cut.append(0.0)
    return np.asarray(cut, dtype=np.float64)


def _decide(served: ServedNeed, hashes: list[str], scores: np.ndarray) -> list[TagResult]:
    model = served.model
    labels, names = model.labels, served.names
    top_k = min(served.top_k, len(labels))
    order = np.argsort(-scores, axis=1, kind="stable")
    rounded = np.round(scores, 4)
    results = []
    for i, text_hash in enumerate(hashes):
        row, ranked = scores[i], order[i]
        chosen = [j for j in ranked[:top_k] if row[j] >= served.cutoffs[j]]
        best = int(ranked[0])
        results.append(
            TagResult(
                text_hash=text_hash,
                labels=[names[j] for j in chosen],
                scores={names[j]: float(rounded[i, j]) for j in ranked},
                global_labels=[labels[j] for j in chosen],
                global_scores={labels[j]: float(rounded[i, j]) for j in ranked},
                top_label=labels[best],
                top_score=float(row[best]),
                above_threshold=bool(row[best] >= served.cutoffs[best]),
                model=model,
            )
        )
    return results


def warm_live_needs(*, budget_seconds: float | None = None) -> int:
    """Load the models of live needs (at most MODEL_CACHE_SIZE) so the first task doesn't pay.
    With a budget, no new load starts once it is spent (the rest load on first use)."""
    from serving.selectors import live_need_ids_all_tenants

    runtime = get_runtime()
    warmed = 0
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    for need_id in live_need_ids_all_tenants(limit=settings.MODEL_CACHE_SIZE):
        if deadline is not None and time.monotonic() >= deadline:
            logger.info(
                "model warm-up budget of %.0f s spent; the rest load on use", budget_seconds
            )
            break
        try:
            runtime.need_by_id(need_id)
            warmed += 1
        except (NeedNotFound, NeedNotServed, ModelUnavailable) as exc:
            logger.warning("not warming need %s: %s", need_id, exc)
    return warmed


def warm_at_process_start(*, budget_seconds: float | None = None) -> int:
    """`warm_live_needs` for a process that has just started (a forked Celery pool process or
    gunicorn worker): never on a connection inherited from the parent, and a failure is logged,
    not raised (a cold start is slower, not broken)."""
    from django.db import connections

    try:
        connections.close_all()
        return warm_live_needs(budget_seconds=budget_seconds)
    except Exception:
        logger.warning("model warm-up at process start failed", exc_info=True)
        return 0
    finally:
        connections.close_all()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process-wide runtime (created on first use, so forked workers build their own)."""
    global _runtime
    if _runtime is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime()
    return _runtime
