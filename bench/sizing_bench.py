#!/usr/bin/env python
"""Per-core throughput of sync tagging, batch and training, and the sizing table computed from it.

    /path/to/python bench/sizing_bench.py            # ~4 minutes; writes docs/benchmarks.md
    /path/to/python bench/sizing_bench.py --quick    # shorter cells, for a smoke run

One process is one core's worth of work, so each path runs in exactly one process and is
measured twice: wall-clock throughput, and throughput per CPU-second that process used
(utime + stime from /proc). The second is the per-core figure: on a shared machine a process
waits for a core part of the time, which the wall clock counts and the CPU clock does not.
Work done on the process's behalf by PostgreSQL and Redis is not in it (managed services,
sized on their own).

1. sync: the platform under gunicorn with ONE sync worker (deploy/gunicorn.conf.py: models
   warmed, gc.freeze), DEBUG=0, API key, quota, result cache (missed: unique texts) and a 100 %
   sampled prediction log; wrk with 2 keep-alive connections (enough to keep one worker busy),
   1 and 16 held-out BBC articles per request.
2. batch: a Celery batch worker with ONE pool process; a CSV job of BBC articles through
   POST /api/v1/batch-jobs; items per second from the first claim to the last commit.
3. training: `registry.ml.train` (tfidf-logreg, the default algorithm) on the BBC training split
   (80 %, 1,780 articles), in this process, three times; examples per second of training.

The setup (database, model, tenant, key) is bench/serving_bench.py's, on its own database
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/tagging_sizing_bench, dropped at
the end) and Redis (BENCH_REDIS_URL). The table goes to docs/benchmarks.md under
"## Sizing: per-core throughput"; README "Production deployment" uses it.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import math
import os
import platform as stdlib_platform
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tagging_sizing_bench"
)
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import serving_bench as sb  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SECTION = "## Sizing: per-core throughput"
#: The sizing rules: how busy a core may be on average at the stated load.
SYNC_UTILISATION = 0.5  # headroom for bursts and p99 (a sync worker that is always busy queues)
BATCH_UTILISATION = 0.8  # throughput work; the window, not latency, is the constraint
TRAINING_UTILISATION = 0.5
CORES_PER_HOST = 8
#: Illustrative units (the load each row is sized for).
UNITS = [
    # name, peak sync items/s, batch items/day (done within BATCH_WINDOW_HOURS), training runs/day
    # and examples per run
    ("small", 100, 5_000_000, 10, 20_000),
    ("medium", 1_000, 50_000_000, 50, 100_000),
    ("large", 10_000, 500_000_000, 200, 500_000),
]
BATCH_WINDOW_HOURS = 8


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (and of children they reaped), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def children(pid: int) -> list[int]:
    from deploy.cluster import child_pids

    return child_pids(pid)


def measure_sync(info: dict, duration: float) -> list[dict]:
    from deploy.cluster import free_port

    port = free_port()
    server = sb.start(
        [
            sb.PY,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "-w",
            "1",
            "-k",
            "sync",
            "--threads",
            "1",
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
        ],
        {**sb.ENV, "GUNICORN_ACCESS_LOG": ""},
        sb.DATA_DIR / "gunicorn-sizing.log",
    )
    rows = []
    try:
        sb.wait_port(port)
        target = sb.Target(
            "ours",
            port,
            "/api/v1/needs/news-topics/tag",
            {"Authorization": f"Api-Key {info['key']}"},
        )
        load = sb.run_load_wrk if shutil.which("wrk") else sb.run_load
        deadline = time.monotonic() + 30
        while not (workers := children(server.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Warm until the worker answers quickly: it loads and warms its model at start, which a
        # loaded machine can stretch to many seconds (not part of the steady state measured).
        for _ in range(12):
            warm = load(target, info["test_texts"], items=1, concurrency=1, duration=2, unique=True)
            if warm["requests"] and warm["p99_ms"] < 200:
                break
        for items in (16, 1):
            before = cpu_seconds(workers)
            result = load(
                target,
                info["test_texts"],
                items=items,
                concurrency=2,
                duration=duration,
                unique=True,
            )
            used = cpu_seconds(workers) - before
            rows.append(
                {
                    "path": f"sync, {items} item{'s' if items > 1 else ''}/request",
                    "wall": result["docs_per_s"],
                    "per_cpu": result["requests"] * items / used if used else float("nan"),
                    "cpu_share": used / duration,
                    "note": f"{result['rps']:.0f} req/s, p99 {result['p99_ms']:.0f} ms, "
                    f"{result['errors']} errors",
                }
            )
            print(rows[-1], flush=True)
    finally:
        sb.stop(server)
    return rows


def measure_batch(info: dict, texts: list[str]) -> dict:
    from serving.models import BatchChunk, BatchJob
    from tenants.models import Tenant

    tenant = Tenant.objects.get(slug="bench")  # serving_bench.prepare's

    worker = sb.start(
        [
            sb.PY,
            "-m",
            "celery",
            "-A",
            "tagging_platform.celery",
            "worker",
            "-Q",
            "batch",
            "-P",
            "prefork",
            "-c",
            "1",
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "-n",
            "sizing-batch@%h",
        ],
        sb.ENV,
        sb.DATA_DIR / "batch-sizing.log",
    )
    from deploy.cluster import free_port

    web_port = free_port()
    web = sb.start(
        [
            sb.PY,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "-w",
            "1",
            "-b",
            f"127.0.0.1:{web_port}",
            "--timeout",
            "300",
        ],
        {**sb.ENV, "GUNICORN_ACCESS_LOG": ""},
        sb.DATA_DIR / "gunicorn-sizing-batch.log",
    )
    try:
        sb.wait_port(web_port)
        deadline = time.monotonic() + 60
        while not (pool := children(worker.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # the worker connects and consumes
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "text"])
        run = int(time.time())
        for n, text in enumerate(texts):
            writer.writerow([f"s{n}", f"{text} zqsizing{run}x{n}"])
        boundary = "sizingboundary7f3a"
        payload = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="need"\r\n\r\n'
                "news-topics\r\n"
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                'filename="sizing.csv"\r\nContent-Type: text/csv\r\n\r\n'
            ).encode()
            + buffer.getvalue().encode()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        before = cpu_seconds(pool)
        conn = http.client.HTTPConnection("127.0.0.1", web_port, timeout=300)
        conn.request(
            "POST",
            "/api/v1/batch-jobs",
            payload,
            {
                "Authorization": f"Api-Key {info['key']}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status != 201:
            raise RuntimeError(f"batch POST failed: {response.status} {body}")
        job_id = body["id"]
        while True:
            job = BatchJob.objects.owned_by(tenant.pk).get(pk=job_id)
            if job.status not in ("queued", "running"):
                break
            time.sleep(0.2)
        used = cpu_seconds(pool) - before
        if job.status != "succeeded":
            raise RuntimeError(f"batch job ended {job.status}: {job.error}")
        chunks = BatchChunk.objects.filter(job_id=job_id)
        first = min(c.claimed_at for c in chunks)
        last = max(c.done_at for c in chunks)
        wall = (last - first).total_seconds()
        return {
            "path": "batch, one pool process",
            "wall": job.total_items / wall,
            "per_cpu": job.total_items / used if used else float("nan"),
            "cpu_share": used / wall,
            "note": f"{job.total_items:,} BBC articles in chunks of {job.chunk_size}, first "
            "claim to last commit",
        }
    finally:
        sb.stop(web)
        sb.stop(worker)


def measure_training(texts: list[str], labels: list[str], rounds: int) -> dict:
    import random

    from registry import ml

    order = list(range(len(texts)))
    random.Random(42).shuffle(order)
    train_idx = order[: int(0.8 * len(order))]
    walls, cpus = [], []
    for _ in range(rounds):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        ml.train(
            texts=[texts[i] for i in train_idx],
            label_lists=[[labels[i]] for i in train_idx],
            labels=sorted(set(labels)),
            multilabel=False,
            algorithm="tfidf-logreg",
        )
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "path": "training, tfidf-logreg",
        "wall": len(train_idx) / wall,
        "per_cpu": len(train_idx) / cpu,
        "cpu_share": cpu / wall,
        "note": f"{len(train_idx):,} articles, median of {rounds} runs: {wall:.1f} s "
        f"({cpu:.1f} CPU-s)",
    }


def sizing_lines(rates: dict[str, float], units: list[tuple]) -> list[str]:
    """The paragraph and the table: cores per tier at each unit's load, hosts of CORES_PER_HOST."""
    return [
        f"Sizing from these rates (sync at 16 items/request: {rates['sync']:,.0f}/core-s; "
        f"batch {rates['batch']:,.0f}/core-s; training {rates['training']:,.0f} examples/core-s). "
        f"Cores = load / rate / utilisation (sync {SYNC_UTILISATION:.0%}, batch "
        f"{BATCH_UTILISATION:.0%} over a {BATCH_WINDOW_HOURS} h window, training "
        f"{TRAINING_UTILISATION:.0%} of the day); hosts of {CORES_PER_HOST} cores, at least two "
        "web hosts. PostgreSQL, Redis and the object store are managed services, not counted. "
        "Another unit's load: `bench/sizing_bench.py --resize --unit NAME,SYNC_ITEMS_PER_S,"
        "BATCH_ITEMS_PER_DAY,TRAINING_RUNS_PER_DAY,EXAMPLES_PER_RUN` recomputes this table from "
        "the rates above without measuring again.",
        "",
        *sizing(rates, units),
    ]


def rates_from_docs() -> tuple[list[str], dict[str, float]]:
    """The measurement part of the section in docs/benchmarks.md and its per-core rates."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    found = re.search(re.escape(SECTION) + r"\n\n(.*?)(?=\nSizing from these rates)", text, re.S)
    if found is None:
        raise SystemExit(
            f"no measured rates under {SECTION!r} in docs/benchmarks.md: run the bench"
        )
    measured = found.group(1).rstrip("\n").splitlines()
    rates = {}
    for line in measured:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for key, prefix in (("sync", "sync, 16"), ("batch", "batch"), ("training", "training")):
            if cells[0].startswith(prefix):
                rates[key] = float(cells[1].replace(",", ""))
    return measured, rates


def sizing(rates: dict[str, float], units: list[tuple]) -> list[str]:
    """The sizing table: cores per tier at each unit's load, and hosts of CORES_PER_HOST."""
    lines = [
        f"| unit | peak sync items/s | batch items/day ({BATCH_WINDOW_HOURS} h window) | "
        "training runs/day x examples | web cores | batch cores | training cores | "
        f"hosts ({CORES_PER_HOST} cores): web / batch / training |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, sync, batch, runs, examples in units:
        web = sync / rates["sync"] / SYNC_UTILISATION
        batch_cores = batch / (BATCH_WINDOW_HOURS * 3600) / rates["batch"] / BATCH_UTILISATION
        training_seconds = runs * examples / rates["training"]  # CPU-seconds per day
        training = training_seconds / 86400 / TRAINING_UTILISATION
        # Two web hosts at least (one may fail); one host per other tier at least.
        hosts = (
            max(2, math.ceil(web / CORES_PER_HOST)),
            max(1, math.ceil(batch_cores / CORES_PER_HOST)),
            max(1, math.ceil(training / CORES_PER_HOST)),
        )
        lines.append(
            f"| {name} | {sync:,} | {batch:,} | {runs} x {examples:,} | {web:.1f} | "
            f"{batch_cores:.1f} | {training:.2f} | {hosts[0]} / {hosts[1]} / {hosts[2]} |"
        )
    return lines


def write_section(lines: list[str]) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    section = SECTION + "\n\n" + "\n".join(lines).rstrip() + "\n"
    pattern = re.compile(re.escape(SECTION) + r"\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    return path


def drop_database() -> None:
    import psycopg2

    base, name = sb.DATABASE_URL.rsplit("/", 1)
    from django.db import connections

    connections.close_all()
    conn = psycopg2.connect(f"{base}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per sync cell")
    parser.add_argument("--quick", action="store_true", help="short cells, a small batch")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument(
        "--resize",
        action="store_true",
        help="measure nothing: recompute the sizing table from the rates in docs/benchmarks.md",
    )
    parser.add_argument(
        "--unit",
        action="append",
        default=[],
        help="NAME,SYNC_ITEMS_PER_S,BATCH_ITEMS_PER_DAY,TRAINING_RUNS_PER_DAY,EXAMPLES_PER_RUN "
        "(repeat; default: the small/medium/large examples)",
    )
    args = parser.parse_args()
    units = [
        (name, *(int(v) for v in values))
        for name, *values in (unit.split(",") for unit in args.unit)
    ] or UNITS
    if args.resize:
        measured, rates = rates_from_docs()
        lines = [*measured, "", *sizing_lines(rates, units)]
        print("\n".join(lines))
        if not args.no_write:
            print(f"wrote {write_section(lines)}")
        return 0
    duration = 4.0 if args.quick else args.duration
    sb.DATA_DIR.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    sb.setup_django()
    try:
        texts, labels = sb.load_bbc()
        info = sb.prepare(texts, labels)
        rows = measure_sync(info, duration)
        rows.append(measure_batch(info, texts if args.quick else texts * 2))
        print(rows[-1], flush=True)
        rows.append(measure_training(texts, labels, 1 if args.quick else 3))
        print(rows[-1], flush=True)
    finally:
        if not args.keep_database:
            drop_database()
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rates = {
        "sync": rows[0]["per_cpu"],  # 16 items/request: how services call in bulk
        "batch": rows[2]["per_cpu"],
        "training": rows[3]["per_cpu"],
    }
    lines = [
        f"`python bench/sizing_bench.py` on {stdlib_platform.machine()} ({os.cpu_count()} cores "
        f"shared with other jobs), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load "
        f"average {load_before} before, {load_after} after. Each path runs in ONE process; "
        '"per core" is items per CPU-second that process used (utime + stime), "wall" its '
        "items per second of elapsed time (less when it waited for a core). Model: BBC news "
        "topics, tfidf-logreg; texts: held-out BBC articles (~2.3 kB), unique (no cache hit).",
        "",
        "| path | per core (items per CPU-s) | wall (items/s) | CPU share of its core | notes |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['path']} | {row['per_cpu']:,.0f} | {row['wall']:,.0f} | "
            f"{row['cpu_share']:.0%} | {row['note']} |"
        )
    lines += [
        "",
        *sizing_lines(rates, units),
    ]
    print("\n".join(lines))
    if not args.no_write:
        print(f"wrote {write_section(lines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
