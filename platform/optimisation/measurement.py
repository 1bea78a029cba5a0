"""Latency measurement on the serving path, the Pareto front, the choice and capacity planning.

Latency is always measured, never estimated: the model is compiled exactly as production compiles
it (`serving.runtime.serving_scorer`, which also decides whether the fast compiled path or the
generic `predict_scores` path serves it), warmed up, then timed one text at a time. The
optimisation service runs this serially after the search, one model at a time in one process, so
no trial disturbs another's timing; the conditions go into the result.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.runtime import serving_scorer

#: Texts scored per call in the throughput measurement (a batch chunk).
BATCH_CHUNK = 256


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    mean_ms: float
    docs_per_s: float
    scorer_path: str


@contextmanager
def scheduling(fifo_priority: int) -> Iterator[str]:
    """Run the block at real-time priority SCHED_FIFO `fifo_priority` (as `chrt --fifo N` would),
    so that on a shared machine the timings measure the scorer, not the scheduler's queue; 0
    leaves the policy alone. Only the calling thread is raised, and only for the block. Yields
    the policy the block actually ran under (raising it needs CAP_SYS_NICE; refused means normal)."""
    if fifo_priority <= 0 or not hasattr(os, "sched_setscheduler"):
        yield "normal (SCHED_OTHER)"
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo_priority))
    except OSError as exc:
        yield f"normal (SCHED_OTHER): raising to SCHED_FIFO {fifo_priority} was refused ({exc})"
        return
    try:
        yield f"SCHED_FIFO {fifo_priority} (real-time, as chrt --fifo {fifo_priority})"
    finally:
        os.sched_setscheduler(0, policy, param)


def conditions(
    *, warmup: int, repetitions: int, batch_docs: int, scheduling: str = "normal (SCHED_OTHER)"
) -> dict[str, Any]:
    """What a measurement's numbers depend on, recorded next to them."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {
        "scheduling": scheduling,
        "warmup_calls": warmup,
        "repetitions": repetitions,
        "single_item": "one text per call, as a sync request scores it",
        "batch_docs": batch_docs,
        "batch_chunk": BATCH_CHUNK,
        "path": "serving.runtime.serving_scorer (the scorer production compiles for the model)",
        "process": "the optimisation worker process, after the search, one model at a time",
        "cpu_count": os.cpu_count(),
        "load_average_1m": None if load[0] is None else round(load[0], 2),
    }


def measure(
    classifier,
    texts: list[str],
    *,
    warmup: int,
    repetitions: int,
    batch_docs: int = 1000,
    seed: int = 0,
) -> Latency:
    """Single-item p50/p99/mean (ms) and batch throughput (docs/s) of `classifier` as served."""
    if not texts:
        raise ValueError("No texts to measure latency on.")
    scorer, path = serving_scorer(classifier)
    rng = random.Random(seed)
    for _ in range(warmup):
        scorer([rng.choice(texts)])
    timings = np.empty(repetitions)
    for i in range(repetitions):
        text = rng.choice(texts)
        start = time.perf_counter()
        scorer([text])
        timings[i] = (time.perf_counter() - start) * 1000
    batch = [texts[i % len(texts)] for i in range(batch_docs)]
    start = time.perf_counter()
    for i in range(0, len(batch), BATCH_CHUNK):
        scorer(batch[i : i + BATCH_CHUNK])
    elapsed = max(time.perf_counter() - start, 1e-9)
    return Latency(
        p50_ms=round(float(np.percentile(timings, 50)), 4),
        p99_ms=round(float(np.percentile(timings, 99)), 4),
        mean_ms=round(float(timings.mean()), 4),
        docs_per_s=round(len(batch) / elapsed, 1),
        scorer_path=path,
    )


# --- The front and the choice ----------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One measured trial: maximise f1, minimise p99 and size."""

    key: int
    f1: float
    p99_ms: float
    size_bytes: int


def _dominates(a: Point, b: Point) -> bool:
    no_worse = a.f1 >= b.f1 and a.p99_ms <= b.p99_ms and a.size_bytes <= b.size_bytes
    better = a.f1 > b.f1 or a.p99_ms < b.p99_ms or a.size_bytes < b.size_bytes
    return no_worse and better


def pareto_front(points: list[Point]) -> list[Point]:
    """The measured points no other point dominates, best F1 first."""
    front = [p for p in points if not any(_dominates(q, p) for q in points if q is not p)]
    return sorted(front, key=lambda p: (-p.f1, p.p99_ms, p.size_bytes, p.key))


def fits(point: Point, *, latency_budget_ms: float, size_budget_bytes: int) -> bool:
    return point.p99_ms <= latency_budget_ms and point.size_bytes <= size_budget_bytes


def choose(
    points: list[Point], *, latency_budget_ms: float, size_budget_bytes: int
) -> tuple[Point | None, dict[str, Any]]:
    """The most accurate point within both budgets (ties: faster, then smaller), or None and the
    closest misses: the fastest and the smallest point, and the best point within each budget."""
    fitting = [
        p
        for p in points
        if fits(p, latency_budget_ms=latency_budget_ms, size_budget_bytes=size_budget_bytes)
    ]
    if fitting:
        best = min(fitting, key=lambda p: (-p.f1, p.p99_ms, p.size_bytes, p.key))
        return best, {}
    if not points:
        return None, {"reason": "No trial finished, so nothing could be measured."}
    fastest = min(points, key=lambda p: (p.p99_ms, -p.f1, p.key))
    smallest = min(points, key=lambda p: (p.size_bytes, -p.f1, p.key))
    within_latency = [p for p in points if p.p99_ms <= latency_budget_ms]
    within_size = [p for p in points if p.size_bytes <= size_budget_bytes]
    misses: dict[str, Any] = {
        "latency": {
            "trial": fastest.key,
            "p99_ms": fastest.p99_ms,
            "budget_ms": latency_budget_ms,
            "over_by_ms": round(max(0.0, fastest.p99_ms - latency_budget_ms), 4),
            "size_bytes": fastest.size_bytes,
        },
        "size": {
            "trial": smallest.key,
            "size_bytes": smallest.size_bytes,
            "budget_bytes": size_budget_bytes,
            "over_by_bytes": max(0, smallest.size_bytes - size_budget_bytes),
            "p99_ms": smallest.p99_ms,
        },
    }
    if not within_latency:
        reason = (
            f"No variant meets the p99 budget of {latency_budget_ms:g} ms: the fastest "
            f"(trial {fastest.key}) measured {fastest.p99_ms:.3f} ms."
        )
    elif not within_size:
        reason = (
            f"No variant fits the size budget of {size_budget_bytes / 1024:.0f} KB: the smallest "
            f"(trial {smallest.key}) is {smallest.size_bytes / 1024:.0f} KB."
        )
    else:
        best_l = max(within_latency, key=lambda p: p.f1)
        best_s = max(within_size, key=lambda p: p.f1)
        reason = (
            "Some variants meet the latency budget and some the size budget, but none meets both: "
            f"within latency the smallest is {min(p.size_bytes for p in within_latency) / 1024:.0f}"
            f" KB, within size the fastest p99 is {min(p.p99_ms for p in within_size):.3f} ms."
        )
        misses["best_within_latency"] = {"trial": best_l.key, "f1": best_l.f1}
        misses["best_within_size"] = {"trial": best_s.key, "f1": best_s.f1}
    misses["reason"] = reason
    return None, misses


# --- Capacity planning -----------------------------------------------------------------------
#: Share of a process's time it may be busy before queueing dominates.
MAX_UTILISATION = 0.85


def _erlang_c(servers: int, offered: float) -> float:
    """Probability that a request waits in an M/M/c queue with `offered` = λ/μ erlangs."""
    if offered >= servers:
        return 1.0
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= offered / k
        total += term
    term *= offered / servers
    last = term * servers / (servers - offered)
    return last / (total + last)


def capacity_plan(
    *,
    target_requests_per_s: float | None,
    mean_ms: float,
    p99_ms: float,
    docs_per_s: float,
    latency_budget_ms: float,
    max_processes: int = 512,
) -> dict[str, Any]:
    """How many single-threaded serving processes (gunicorn sync workers, or Celery `online`
    processes, one request at a time each, one CPU core each) keep the p99 within budget at the
    target rate, and how many Celery batch processes absorb that rate as bulk work.

    An estimate from measured service times (M/M/c queueing: the p99 of the wait plus the measured
    p99 of the work must stay within the budget); the latencies themselves are measured."""
    if not target_requests_per_s:
        return {"target_requests_per_s": None, "note": "The need states no target request rate."}
    rate = float(target_requests_per_s)
    service_s = max(mean_ms, 1e-6) / 1000.0
    offered = rate * service_s
    slack_s = (latency_budget_ms - p99_ms) / 1000.0
    workers = None
    if slack_s >= 0:
        c = max(1, math.ceil(offered / MAX_UTILISATION))
        while c <= max_processes:
            wait_prob = _erlang_c(c, offered)
            drain = c / service_s - rate
            wait_p99 = 0.0 if wait_prob <= 0.01 else math.log(wait_prob / 0.01) / drain
            if wait_p99 <= slack_s:
                workers = c
                break
            c += 1
    batch = math.ceil(rate / (docs_per_s * MAX_UTILISATION)) if docs_per_s > 0 else None
    return {
        "target_requests_per_s": rate,
        "offered_load_erlangs": round(offered, 3),
        "serving_processes": workers,
        "serving_processes_note": (
            "gunicorn sync workers (or Celery online processes), one core each"
            if workers is not None
            else "no number of processes keeps p99 within the budget: the model's own p99 "
            "already exceeds it, or more than the planning limit would be needed"
        ),
        "batch_processes": batch,
        "max_utilisation": MAX_UTILISATION,
        "method": "M/M/c (Erlang C) on the measured mean; measured p99 added to the wait p99",
    }
