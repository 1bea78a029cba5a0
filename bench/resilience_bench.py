#!/usr/bin/env python
"""Web-tier benchmark for issue 12: the web worker class, latency across a promotion, and the
result cache's Redis memory. One command (about 3 minutes; `--quick` about 1.5):

    /path/to/python bench/resilience_bench.py [--quick] [--no-write]

It reuses bench/serving_bench.py's setup (the BBC tfidf-logreg model, tenant, need and key on a
bench PostgreSQL database), but runs on two Redis servers it starts itself on free ports: a
"broker" Redis (REDIS_URL, noeviction) and a cache Redis (CACHE_REDIS_URL) started from
deploy/redis/cache.conf with a small `maxmemory`, so the shared Redis on 6379 is never touched.
gunicorn always runs deploy/gunicorn.conf.py; only the worker settings differ.

1. Web worker class: the default (sync, one process per core), CPU+1 sync processes, and the
   previous default DrainingThreadWorker (3 processes x 4 threads), side by side, in slices
   interleaved A-B-C-C-B-A per cell, unique texts (the result cache never answers).
2. Promotion: keep-alive clients tag at a steady rate while the need's alias moves to another
   version; the slowest request in the 10 s after the promotion against the slowest before it
   (steady state, same run), and how many times each process loaded the new version.
3. Redis outage: keep-alive clients tag while the cache Redis is SIGKILLed for 5 s and started
   again: answers during the outage (all 200, JSON) and how soon quotas are counted again.
4. Result cache memory: unique texts for a while; the cache Redis's used memory and key count
   sampled every few seconds level off at maxmemory (allkeys-lru evicts), with 0 write errors.

Writes four sections of docs/benchmarks.md ("Web worker class", "Promotion latency",
"Redis outage", "Result cache memory"); `--only SECTION` reruns one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE_MAXMEMORY_MB = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, workdir: Path, *config: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            "redis-server",
            *config,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on {port} did not start")


WORKDIR = Path(tempfile.mkdtemp(prefix="tp-resilience-bench-"))
BROKER_PORT, CACHE_PORT = free_port(), free_port()
os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tagging_bench_resilience"
)
os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{BROKER_PORT}/0"
sys.path.insert(0, str(ROOT))

from bench import serving_bench as sb  # noqa: E402  (reads BENCH_* above)

sb.ENV["CACHE_REDIS_URL"] = f"redis://127.0.0.1:{CACHE_PORT}/0"
CACHE_ARGS = (
    CACHE_PORT,
    WORKDIR,
    str(ROOT / "deploy" / "redis" / "cache.conf"),
    "--maxmemory",
    f"{CACHE_MAXMEMORY_MB}mb",
)
cache_process: subprocess.Popen | None = None


def start_web(port: int, log: Path, **env: str) -> subprocess.Popen:
    command = [sb.PY, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")]
    command += ["-b", f"127.0.0.1:{port}", "--backlog", "2048"]
    return sb.start(command, {**sb.ENV, "GUNICORN_ACCESS_LOG": "", **env}, log)


CONFIGS = {
    "sync, 1 process per core (new default)": {},
    "sync, CPU+1 processes": {"WEB_CONCURRENCY": str((os.cpu_count() or 1) + 1)},
    "DrainingThreadWorker 3 x 4 threads (old default)": {
        "GUNICORN_WORKER_CLASS": "deploy.gunicorn_worker.DrainingThreadWorker",
        "WEB_CONCURRENCY": "3",
        "GUNICORN_THREADS": "4",
    },
}


def worker_classes(info: dict, texts: list[str], slice_seconds: float) -> list[dict]:
    load = sb.run_load_wrk if sb.shutil.which("wrk") else sb.run_load
    servers, targets = {}, {}
    try:
        for n, (name, env) in enumerate(CONFIGS.items()):
            port = free_port()
            servers[name] = start_web(port, sb.DATA_DIR / f"web-class-{n}.log", **env)
            targets[name] = sb.Target(
                name,
                port,
                "/api/v1/needs/news-topics/tag",
                {"Authorization": f"Api-Key {info['key']}"},
            )
        for target in targets.values():
            sb.wait_port(target.port)
            load(target, texts, items=4, concurrency=4, duration=2, unique=True)
        rows = []
        names = list(CONFIGS)
        for items in (1, 16):
            for concurrency in (1, 8, 32):
                parts: dict[str, list[dict]] = {name: [] for name in names}
                for name in names + names[::-1]:
                    parts[name].append(
                        load(
                            targets[name],
                            texts,
                            items=items,
                            concurrency=concurrency,
                            duration=slice_seconds,
                            unique=True,
                        )
                    )
                row = {"items": items, "concurrency": concurrency}
                row.update({name: sb.merge(parts[name]) for name in names})
                rows.append(row)
                print(
                    f"items={items:2d} c={concurrency:2d} "
                    + " | ".join(
                        f"{name.split(' (')[0]}: {row[name]['rps']:.0f} req/s "
                        f"p99 {row[name]['p99_ms']:.1f} ms"
                        for name in names
                    ),
                    flush=True,
                )
        return rows
    finally:
        for server in servers.values():
            sb.stop(server)


def second_version(texts: list[str], labels: list[str]):
    """A second version of the bench model (trained on another 60 % of the corpus)."""
    import random

    from registry import artifacts, ml
    from registry.models import DatasetSnapshot, ModelVersion, RegisteredModel

    registered = RegisteredModel.objects.dangerously_unscoped().get(
        name="news-topics/tfidf-logreg", tenant=None
    )
    marker = sb.DATA_DIR / "model-b.sha256"
    sha = marker.read_text().strip() if marker.exists() else ""
    if not sha or not artifacts.path_for(sha).exists():
        order = list(range(len(texts)))
        random.Random(7).shuffle(order)
        keep = order[: int(0.6 * len(order))]
        model = ml.train(
            texts=[texts[i] for i in keep],
            label_lists=[[labels[i]] for i in keep],
            labels=sorted(sb.BBC_FOLDERS.values()),
            multilabel=False,
            algorithm="tfidf-logreg",
        )
        sha = artifacts.store(model).sha256
        marker.write_text(sha)
    version = (
        ModelVersion.objects.dangerously_unscoped()
        .filter(registered_model=registered, artifact_sha256=sha)
        .first()
    )
    if version is None:
        first = registered.versions.order_by("version").first()
        snapshot = DatasetSnapshot.objects.create(
            revision=first.revision, content_hash=f"b-{sha}"[:64], label_distribution={}
        )
        version = ModelVersion.objects.create(
            registered_model=registered,
            version=registered.versions.count() + 1,
            artifact_sha256=sha,
            artifact_size=artifacts.path_for(sha).stat().st_size,
            python_version=sys.version.split()[0],
            sklearn_version=first.sklearn_version,
            algorithm="tfidf-logreg",
            params={},
            snapshot=snapshot,
            revision=first.revision,
        )
    return registered, version


def move_alias(registered, version) -> None:
    from django.utils import timezone

    from registry.models import ModelAlias

    ModelAlias.objects.filter(registered_model=registered, name="production").update(
        version=version, updated_at=timezone.now()
    )


def promotion(info: dict, texts: list[str], all_texts, all_labels, seconds: float) -> dict:
    import requests

    from registry.models import ModelAlias

    registered, new_version = second_version(all_texts, all_labels)
    old_version_id = ModelAlias.objects.get(
        registered_model=registered, name="production"
    ).version_id
    port = free_port()
    log = sb.DATA_DIR / "web-promotion.log"
    log.unlink(missing_ok=True)
    server = start_web(port, log, LOG_LEVEL="INFO", ALIAS_POLL_SECONDS="1")
    samples: list[tuple[float, float, int | None]] = []  # (start, seconds, version or None)
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {info['key']}"
        k = 0
        while not stop.is_set():
            k += 1
            text = f"{texts[(n * 997 + k) % len(texts)]} zqpromo{n}x{k}x{time.time_ns()}"
            started = time.monotonic()
            try:
                response = session.post(
                    f"http://127.0.0.1:{port}/api/v1/needs/news-topics/tag",
                    json={"items": [{"id": str(k), "text": text}]},
                    timeout=30,
                )
                version = response.json()["model"]["version"] if response.ok else None
            except requests.RequestException:
                version = None
            with lock:
                samples.append((started, time.monotonic() - started, version))
            stop.wait(0.02)  # a steady rate below saturation: latency, not queueing, is measured

    try:
        sb.wait_port(port)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        promoted_at = time.monotonic()
        move_alias(registered, new_version)
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sb.stop(server)
        move_alias(registered, registered.versions.get(pk=old_version_id))
    warm = [s for s in samples if s[0] >= samples[0][0] + 1.0]  # skip the first second
    before = [s for s in warm if s[0] + s[1] < promoted_at]
    after = [s for s in warm if s[0] >= promoted_at]
    new_number = new_version.version
    first_new = min((s[0] for s in after if s[2] == new_number), default=None)
    loads = len(re.findall(rf"loaded and warmed \S+@v{new_number}\b", log.read_text()))

    def pct(rows, q):
        values = sorted(s[1] for s in rows)
        return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 2 else 0.0

    return {
        "before_requests": len(before),
        "after_requests": len(after),
        "before_max_ms": max(s[1] for s in before) * 1000,
        "after_max_ms": max(s[1] for s in after) * 1000,
        "before_p99_ms": pct(before, 99),
        "after_p99_ms": pct(after, 99),
        "errors": sum(1 for s in samples if s[2] is None),
        "switch_s": (first_new - promoted_at) if first_new else None,
        "loads": loads,
        "processes": os.cpu_count(),
        "new_version": new_number,
    }


def redis_outage(info: dict, texts: list[str], outage_seconds: float) -> dict:
    """Keep-alive clients tag while the cache Redis is SIGKILLed and, after a while, started
    again: answers and errors during the outage, and how soon quota counting resumes."""
    import redis
    import requests

    port = free_port()
    server = start_web(port, sb.DATA_DIR / "web-outage.log")
    cache = redis.Redis(port=CACHE_PORT)
    samples: list[tuple[float, float, int | None, str]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Api-Key {info['key']}"
        k = 0
        while not stop.is_set():
            k += 1
            started = time.monotonic()
            try:
                response = session.post(
                    f"http://127.0.0.1:{port}/api/v1/needs/news-topics/tag",
                    json={"items": [{"id": str(k), "text": texts[(n * 31 + k) % len(texts)]}]},
                    timeout=30,
                )
                status, kind = response.status_code, response.headers.get("Content-Type", "")
            except requests.RequestException:
                status, kind = None, ""
            with lock:
                samples.append((started, time.monotonic() - started, status, kind))
            stop.wait(0.02)

    global cache_process
    try:
        sb.wait_port(port)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        cache_process.kill()
        cache_process.wait()
        killed_at = time.monotonic()
        time.sleep(outage_seconds)
        cache_process = start_redis(*CACHE_ARGS)
        restarted_at = time.monotonic()
        counting_again = None
        while time.monotonic() - restarted_at < 20:
            if cache.keys("tp:rl:*"):
                counting_again = time.monotonic() - restarted_at
                break
            time.sleep(0.05)
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sb.stop(server)
    during = [s for s in samples if killed_at <= s[0] < restarted_at]
    return {
        "outage_s": outage_seconds,
        "during": len(during),
        "ok_during": sum(1 for s in during if s[2] == 200),
        "non_json": sum(1 for s in samples if s[2] and "json" not in s[3]),
        "failed": sum(1 for s in samples if s[2] != 200),
        "max_during_ms": max((s[1] for s in during), default=0.0) * 1000,
        "counting_again_s": counting_again,
        "requests": len(samples),
    }


def cache_memory(info: dict, texts: list[str], seconds: float, interval: float) -> dict:
    import redis

    from serving import predlog

    load = sb.run_load_wrk if sb.shutil.which("wrk") else sb.run_load
    cache = redis.Redis(port=CACHE_PORT)
    cache.flushall()
    cache.config_resetstat()
    predlog.flush()  # the earlier sections' log lines, so the samples time only this load
    port = free_port()
    server = start_web(port, sb.DATA_DIR / "web-cache.log")
    target = sb.Target(
        "ours", port, "/api/v1/needs/news-topics/tag", {"Authorization": f"Api-Key {info['key']}"}
    )
    points = []
    requests_sent = 0
    try:
        sb.wait_port(port)
        began = time.monotonic()
        while time.monotonic() - began < seconds:
            result = load(target, texts, items=4, concurrency=8, duration=interval, unique=True)
            requests_sent += result["requests"]
            predlog.flush()  # what the flush task does: the broker Redis's log buffer drains
            memory, stats = cache.info("memory"), cache.info("stats")
            points.append(
                {
                    "t": time.monotonic() - began,
                    "requests": requests_sent,
                    "used_mb": memory["used_memory"] / 2**20,
                    "keys": cache.dbsize(),
                    "evicted": stats["evicted_keys"],
                    "rejected": stats.get("total_error_replies", 0),
                    "errors": result["errors"],
                }
            )
            p = points[-1]
            print(
                f"t={p['t']:5.1f}s requests={p['requests']:6d} used={p['used_mb']:.2f} MB "
                f"keys={p['keys']} evicted={p['evicted']}",
                flush=True,
            )
    finally:
        sb.stop(server)
    return {"points": points, "maxmemory_mb": CACHE_MAXMEMORY_MB}


def report(classes, promo, memory, meta: dict, outage=None) -> dict[str, str]:
    sections: dict[str, str] = {}
    if outage:
        resumed = (
            f"{outage['counting_again_s']:.1f} s"
            if outage["counting_again_s"] is not None
            else "not within 20 s"
        )
        sections["Redis outage"] = "\n".join(
            [
                "## Redis outage",
                "",
                f"Measured by `bench/resilience_bench.py` on {meta['when']}: one gunicorn "
                "instance (default settings), 4 keep-alive clients tagging; the cache Redis "
                f"(result cache + quotas) is SIGKILLed for {outage['outage_s']:g} s, then "
                "started again (empty). QUOTA_WHEN_REDIS_DOWN=open (the default).",
                "",
                "| requests during the outage | answered 200 | slowest during the outage ms | "
                "non-JSON answers (whole run) | failed (whole run) | quota counted again after "
                "restart |",
                "|---:|---:|---:|---:|---:|---:|",
                f"| {outage['during']} | {outage['ok_during']} | {outage['max_during_ms']:.1f} | "
                f"{outage['non_json']} | {outage['failed']} of {outage['requests']} | {resumed} |",
                "",
                "Inline models keep answering through the outage (uncounted, logged, every "
                "lookup a miss); each process retries Redis once a second, so counting and "
                "caching resume within about a second of Redis being back.",
                "",
            ]
        )
    if classes:
        sections["Web worker class"] = report_classes(classes, meta)
    if promo:
        sections["Promotion latency"] = report_promotion(promo, meta)
    if memory:
        sections["Result cache memory"] = report_memory(memory, meta)
    return sections


def report_classes(classes: list[dict], meta: dict) -> str:
    names = list(CONFIGS)
    lines = [
        "## Web worker class",
        "",
        f"Measured by `bench/resilience_bench.py` on {meta['when']} ({meta['cores']} cores, "
        f"shared with other jobs; load average {meta['load_before']} before). The platform as "
        "deployed (deploy/gunicorn.conf.py, DEBUG=0, PostgreSQL + Redis, quota, result cache "
        "missing every time, 100 % prediction log), three worker settings running side by "
        f"side, slices of {meta['slice']:g} s interleaved A-B-C-C-B-A per cell; wrk (1 thread) "
        "on fresh keep-alive connections straight to gunicorn.",
        "",
        "| items/req | concurrency | "
        + " | ".join(f"{n} req/s, p50 / p99 ms" for n in names)
        + " |",
        "|---:|---:|" + "---:|" * len(names),
    ]
    for row in classes:
        cells = [
            f"{row[n]['rps']:.0f}, {row[n]['p50_ms']:.1f} / {row[n]['p99_ms']:.1f}" for n in names
        ]
        lines.append(f"| {row['items']} | {row['concurrency']} | " + " | ".join(cells) + " |")
    default, threaded = names[0], names[2]
    better = sum(1 for row in classes if row[default]["p99_ms"] <= row[threaded]["p99_ms"])
    faster = sum(1 for row in classes if row[default]["rps"] >= row[threaded]["rps"])
    lines += [
        "",
        f"The default (first column) has a p99 no worse than the threaded worker in {better} of "
        f"{len(classes)} cells and at least its throughput in {faster} of {len(classes)}. "
        "Inline inference is CPU-bound and the GIL serialises it inside a process, so threads "
        "add contention to the tail. A sync worker also closes every connection after its "
        "response (`Connection: close`), so nginx keeps no idle connection to it that a "
        "stopping worker could drop: it needs no draining (deploy/gunicorn_worker.py keeps the "
        "draining gthread worker for whoever picks threads).",
        "",
    ]
    return "\n".join(lines)


def report_promotion(promo: dict, meta: dict) -> str:
    switch = f"{promo['switch_s']:.1f} s" if promo["switch_s"] is not None else "never"
    return "\n".join(
        [
            "## Promotion latency",
            "",
            f"Measured by `bench/resilience_bench.py` on {meta['when']}: one gunicorn instance "
            f"(default settings, {promo['processes']} processes, ALIAS_POLL_SECONDS=1), 4 "
            "keep-alive clients (`requests.Session`) sending one unique text every ~20 ms each; "
            f"after {meta['promo']:g} s the need's `production` alias moves to version "
            f"{promo['new_version']}. Baseline: the same run before the promotion.",
            "",
            "| window | requests | max ms | p99 ms |",
            "|---|---:|---:|---:|",
            f"| steady state (before) | {promo['before_requests']} | "
            f"{promo['before_max_ms']:.1f} | {promo['before_p99_ms']:.1f} |",
            f"| across the promotion ({meta['promo']:g} s after) | {promo['after_requests']} | "
            f"{promo['after_max_ms']:.1f} | {promo['after_p99_ms']:.1f} |",
            "",
            f"Errors: {promo['errors']}. First answer from the new version {switch} after the "
            f"alias moved; the new version was loaded {promo['loads']} time(s) in total over "
            f"{promo['processes']} processes (once per process at most: single-flight, on a "
            "background thread, while the old version answers; the switch is one assignment). "
            "Before this change each request thread that saw the new alias loaded the version "
            "itself: 7 loads across 4 processes and a 3.27 s request were measured in issue 12. "
            "What is left of the max is the loader thread sharing the process's GIL with the "
            "request being served (unpickling an artifact is one long C call): requests are "
            "slowed while the version loads, none waits for the whole load.",
            "",
        ]
    )


def report_memory(memory: dict, meta: dict) -> str:
    points = memory["points"]
    rows = [
        "## Result cache memory",
        "",
        f"Measured by `bench/resilience_bench.py` on {meta['when']}: the cache Redis runs "
        f"deploy/redis/cache.conf with `maxmemory {memory['maxmemory_mb']}mb` (production: "
        "256mb) and allkeys-lru; the platform (default settings) gets unique texts, 4 per "
        "request, at concurrency 8, so every request adds 4 cache entries.",
        "",
        "| seconds | requests | used memory MB | keys | evicted keys |",
        "|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        rows.append(
            f"| {p['t']:.0f} | {p['requests']} | {p['used_mb']:.2f} | {p['keys']} | {p['evicted']} |"
        )
    errors = sum(p["errors"] for p in points)
    rows += [
        "",
        f"Memory levels off at the limit while keys keep being written and evicted; {errors} "
        "failed requests. Without a limit the cache grew about 1 MB and 5.4k keys per 10k "
        "requests for its whole 7-day TTL (issue 12.9); the TTL is now 1 day "
        "(RESULT_CACHE_SECONDS). The broker's Redis (REDIS_URL) is a separate instance with "
        "`noeviction` (deploy/redis/broker.conf), so no queued task or log line is ever evicted.",
        "",
    ]
    return "\n".join(rows)


def save(sections: dict[str, str]) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    for title, section in sections.items():
        start_at = text.find(f"## {title}\n")
        if start_at >= 0:
            end_at = text.find("\n## ", start_at + 5)
            rest = text[end_at + 1 :] if end_at >= 0 else ""
            text = text[:start_at] + section.rstrip("\n") + "\n\n" + rest
        else:
            text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter slices and windows")
    parser.add_argument("--no-write", action="store_true", help="print, leave docs/ alone")
    parser.add_argument(
        "--only",
        choices=["classes", "promotion", "outage", "memory"],
        action="append",
        help="run only these sections (repeatable); the others keep their docs text",
    )
    args = parser.parse_args()
    slice_seconds = 1.0 if args.quick else 2.0
    promo_seconds = 6.0 if args.quick else 10.0
    memory_seconds = 20.0 if args.quick else 40.0
    global cache_process
    broker = start_redis(BROKER_PORT, WORKDIR, str(ROOT / "deploy" / "redis" / "broker.conf"))
    cache_process = start_redis(*CACHE_ARGS)
    try:
        sb.DATA_DIR.mkdir(parents=True, exist_ok=True)
        sb.setup_django()
        texts, labels = sb.load_bbc()
        info = sb.prepare(texts, labels)
        meta = {
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": os.cpu_count(),
            "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
            "slice": slice_seconds,
            "promo": promo_seconds,
        }
        only = set(args.only or ["classes", "promotion", "outage", "memory"])
        classes = promo = memory = outage = None
        if "classes" in only:
            classes = worker_classes(info, info["test_texts"], slice_seconds)
        if "promotion" in only:
            promo = promotion(info, info["test_texts"], texts, labels, promo_seconds)
            print(json.dumps(promo), flush=True)
        if "outage" in only:
            outage = redis_outage(info, info["test_texts"], outage_seconds=5.0)
            print(json.dumps(outage), flush=True)
        if "memory" in only:
            memory = cache_memory(info, info["test_texts"], memory_seconds, interval=4.0)
    finally:
        for process in (broker, cache_process):
            process.kill()
            process.wait()
    sections = report(classes, promo, memory, meta, outage)
    for section in sections.values():
        print(section)
    if not args.no_write:
        print(f"written to {save(sections)}")


if __name__ == "__main__":
    main()
