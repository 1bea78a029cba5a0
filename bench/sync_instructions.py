#!/usr/bin/env python
"""Sync tagging cost per request in CPU instructions, this checkout against a baseline commit.

    .venv/bin/python bench/sync_instructions.py [--before 064ba0c] [--after COMMIT]
        [--requests 150] [--profile] [--no-write]

Wall-clock benchmarks on a shared two-core machine swing with other people's load
(bench/arch_ab.py interleaves both sides to cope; its cells still move by +-15 %). An instruction
count does not: this script drives N `POST /api/v1/needs/news-topics/tag` requests through each
side's own WSGI application in one process (the full middleware stack, PostgreSQL + Redis, quota,
100 % prediction log, unique texts so the result cache never answers) under
`valgrind --tool=callgrind`, with instrumentation switched on only around the N requests (after
Django set-up and warm-up requests), and reports instructions per request. It also counts the SQL
queries and Python function calls per request (both deterministic) and, with --profile, prints the
functions whose own cost per request differs most between the sides (cProfile, outside valgrind).

Each side is a git worktree with its own bench database, Redis db and bench/serving_bench.py set-up,
as in bench/arch_ab.py. Writes "## Sync request cost in instructions" in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]

from bench import arch_ab  # noqa: E402

DEFAULT_BEFORE = "064ba0c"
SECTION = "## Sync request cost in instructions"
# The sides run one after the other, so they can share a Redis db (BENCH_REDIS_DB, default 1).
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "1"))
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "tagging_instr")
SIDES = {"before": {"db": "", "redis": REDIS_DB}, "after": {"db": "", "redis": REDIS_DB}}

# Work driven by the wall clock (the alias poll, the API key cache's expiry, the shadow share
# refresh, the write-behind timer) would run many times more often per request under valgrind's
# slowdown than in service (where the poll is one request in hundreds): pushed out of the window,
# so the count is the per-request path itself. Pending writes then ride the next request's Redis
# pipeline, as they do under load.
STEADY = {
    "ALIAS_POLL_SECONDS": "3600",
    "API_KEY_CACHE_SECONDS": "3600",
    "SHADOW_REFRESH_SECONDS": "3600",
    "WRITE_BEHIND_SECONDS": "3600",
}

# Runs inside a side's worktree (its own modules first on sys.path). Prints one JSON line.
DRIVER = r"""
import cProfile, gc, io, json, os, pstats, sys, time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")
import django
django.setup()
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.test.utils import CaptureQueriesContext

key, texts_path, n, items, mode, control = sys.argv[1:7]
n, items = int(n), int(items)
texts = json.load(open(texts_path))
app = get_wsgi_application()
counter = iter(range(10**9))

def environ():
    i = next(counter)
    chosen = [f"{texts[(i * items + k) % len(texts)]} zqinstr{os.getpid()}n{i}x{k}" for k in range(items)]
    body = json.dumps({"items": [{"id": f"{i}-{k}", "text": t} for k, t in enumerate(chosen)]}).encode()
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/needs/news-topics/tag", "QUERY_STRING": "",
        "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Api-Key {key}", "HTTP_ACCEPT": "application/json",
        "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9", "HTTP_USER_AGENT": "sync-instructions",
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }

def call():
    status = []
    chunks = app(environ(), lambda s, h, exc_info=None: status.append(s))
    body = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    if not status[0].startswith("200"):
        raise SystemExit(f"{status[0]}: {body[:300]!r}")

for _ in range(20):  # warm-up: model loaded, caches and connections open
    call()
gc.collect()
gc.freeze()
out = {}
if mode == "callgrind":
    control = Path(control)
    (control / "ready").touch()
    while not (control / "go").exists():  # polling, so valgrind sees the control command
        time.sleep(0.01)
    for _ in range(n):
        call()
    (control / "done").touch()
    while not (control / "exit").exists():
        time.sleep(0.01)
else:
    with CaptureQueriesContext(connection) as queries:
        for _ in range(n):
            call()
    out["queries"] = len(queries.captured_queries) / n
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    out["calls"] = sum(s[1] for s in stats.values()) / n
    funcs = {}
    for (path, line, name), (cc, nc, tt, ct, callers) in stats.items():
        label = f"{Path(path).name}:{name}" if path != "~" else name
        for marker in ("/site-packages/", "/platform/", "/tenants/", "/taxonomy/", "/workers/"):
            if marker in path:
                label = path.split(marker, 1)[1] + ":" + name
        entry = funcs.setdefault(label, [0, 0.0, 0.0])
        entry[0] += nc / n
        entry[1] += tt / n
        entry[2] += ct / n
    out["funcs"] = funcs
print("RESULT " + json.dumps(out))
"""


def run_driver(name: str, tree: Path, key: str, texts: Path, *, n: int, items: int, mode: str):
    env = {**arch_ab.side_env(tree, SIDES[name]), **STEADY}
    control = arch_ab.WORK / f"instr-{name}-{items}"
    control.mkdir(parents=True, exist_ok=True)
    for stale in control.iterdir():
        stale.unlink()
    command = [
        sys.executable,
        "-c",
        DRIVER,
        key,
        str(texts),
        str(n),
        str(items),
        mode,
        str(control),
    ]
    if mode != "callgrind":
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name}: driver failed\n{done.stderr[-3000:]}")
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        return json.loads(line[len("RESULT ") :])
    out_file = control / "callgrind.out"
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_file}",
            *command,
        ],
        cwd=tree,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def wait_for(marker: str) -> None:
        while not (control / marker).exists():
            if process.poll() is not None:
                raise SystemExit(f"{name}: driver exited\n{process.stderr.read()[-3000:]}")
            time.sleep(0.2)

    wait_for("ready")
    subprocess.run(
        ["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True
    )
    (control / "go").touch()
    wait_for("done")
    subprocess.run(
        ["callgrind_control", "-i", "off", str(process.pid)], check=True, capture_output=True
    )
    (control / "exit").touch()
    process.communicate()
    totals = [
        line.split()[1]
        for line in out_file.read_text(errors="replace").splitlines()
        if line.startswith("totals:")
    ]
    return {"instructions": int(totals[0]) / n}


def diff_profile(before: dict, after: dict, top: int = 25) -> list[str]:
    names = set(before["funcs"]) | set(after["funcs"])
    rows = []
    for label in names:
        b = before["funcs"].get(label, [0, 0.0, 0.0])
        a = after["funcs"].get(label, [0, 0.0, 0.0])
        rows.append((a[1] - b[1], label, b, a))
    lines = [f"{'own us/req diff':>16} {'calls b/a':>14}  function"]
    # By own time (noisy under load), then by call counts (deterministic).
    for key in (lambda r: -abs(r[0]), lambda r: -abs(r[3][0] - r[2][0])):
        rows.sort(key=key)
        for delta, label, b, a in rows[:top]:
            lines.append(f"{delta * 1e6:16.1f} {b[0]:6.1f}/{a[0]:<6.1f}  {label}")
        lines.append("")
    return lines


def report(rows: list[dict], meta: dict) -> str:
    lines = [
        SECTION,
        "",
        f"Measured by `bench/sync_instructions.py` on {meta['when']} (load average "
        f"{meta['load']}; instruction counts do not depend on it). Before: "
        f"`{meta['before'][:10]}`; after: `{meta['after'][:10]}`. Each side's own WSGI application "
        "in one process (its full middleware stack, DEBUG=0, PostgreSQL + Redis, quota, 100 % "
        "prediction log), unique texts (the result cache never answers), "
        f"{meta['requests']} requests per cell after 20 warm-up requests, counted with "
        "`valgrind --tool=callgrind` around the requests only (CPython, Django, scikit-learn, "
        "psycopg and redis-py in this process; not the PostgreSQL or Redis servers, which the "
        "query count stands for).",
        "",
        "| items/req | before instr/req | after instr/req | after / before | before / after "
        "SQL queries per req | before / after Python calls per req |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        b, a = row["before"], row["after"]
        lines.append(
            f"| {row['items']} | {b['instructions'] / 1e6:.2f} M | {a['instructions'] / 1e6:.2f} M"
            f" | {a['instructions'] / b['instructions']:.3f}x | {b['queries']:.1f} / "
            f"{a['queries']:.1f} | {b['calls']:.0f} / {a['calls']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE)
    parser.add_argument("--after", default="", help="default: this checkout")
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--items", default="1,16")
    parser.add_argument("--profile", action="store_true", help="print the cProfile differences")
    parser.add_argument("--no-callgrind", action="store_true", help="profile only (quick look)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    before_tree, before_sha = arch_ab.checkout(args.before, "before")
    if args.after:
        after_tree, after_sha = arch_ab.checkout(args.after, "after")
    else:
        after_tree = ROOT
        after_sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    trees = {"before": before_tree, "after": after_tree}
    # Each commit gets a database of its own: a schema migrated by newer code breaks older code.
    SIDES["before"]["db"] = f"{DB_PREFIX}_{before_sha[:10]}"
    SIDES["after"]["db"] = f"{DB_PREFIX}_{after_sha[:10]}"
    infos = {name: arch_ab.prepare_side(name, trees[name], SIDES[name]) for name in SIDES}
    texts = arch_ab.WORK / "instr-texts.json"
    texts.write_text(json.dumps(infos["after"]["test_texts"]))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []
    for items in [int(x) for x in args.items.split(",")]:
        row: dict = {"items": items}
        for name in SIDES:
            key = infos[name]["key"]
            kwargs = {"n": args.requests, "items": items}
            profile = run_driver(name, trees[name], key, texts, mode="profile", **kwargs)
            counted = (
                {"instructions": float("nan")}
                if args.no_callgrind
                else run_driver(name, trees[name], key, texts, mode="callgrind", **kwargs)
            )
            row[name] = {**profile, **counted}
            (arch_ab.WORK / f"instr-{name}-{items}.json").write_text(json.dumps(row[name]))
            print(
                f"items={items:2d} {name:6s} {counted['instructions'] / 1e6:8.2f} M instr/req "
                f"{profile['queries']:.1f} queries {profile['calls']:.0f} calls",
                flush=True,
            )
        if args.profile:
            print("\n".join(diff_profile(row["before"], row["after"])), flush=True)
        rows.append(row)
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": load,
        "before": before_sha,
        "after": after_sha,
        "requests": args.requests,
    }
    section = report(rows, meta)
    print(section)
    if not args.no_write:
        print(f"written to {save(section)}")


def save(section: str) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    start_at = text.find(SECTION)
    if start_at >= 0:
        end_at = text.find("\n## ", start_at + len(SECTION))
        # One blank line between this section and the next heading.
        rest = "\n\n" + text[end_at + 1 :] if end_at >= 0 else "\n"
        text = text[:start_at] + section.rstrip("\n") + rest
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n")
    return path


if __name__ == "__main__":
    main()
