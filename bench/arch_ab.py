#!/usr/bin/env python
"""Sync serving before and after the architecture step (issue 13), side by side in one run.

    .venv/bin/python bench/arch_ab.py [--before COMMIT] [--duration 12] [--no-write]

"Before" is the commit before "Architecture step 1" (the runtime still in workers/, tenancy not
enforced in the managers, need labels in JSON); "after" is this checkout. Each side gets its own
git worktree (var/bench-ab/before, a detached checkout; this tree for after), its own bench
database and Redis db, and its own copy of bench/serving_bench.py's setup (the same BBC
tfidf-logreg model, tenant, need and API key). Both run gunicorn with their own
deploy/gunicorn.conf.py and 2 sync workers, as `make bench` does. The same unique texts go to
both (the result cache never answers), in slices interleaved A-B-B-A-A-B-B-A per cell, so
background load on the machine falls on both sides alike. Writes "## Architecture step: before
and after" in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]

from bench import serving_bench as sb  # noqa: E402

DEFAULT_BEFORE = "4b3673c^"
WORK = ROOT / "var" / "bench-ab"
SIDES = {
    "before": {"port": 8821, "db": "tagging_bench_before", "redis": 11},
    "after": {"port": 8822, "db": "tagging_bench_after", "redis": 12},
}
SECTION = "## Architecture step: before and after"

PREPARE = """
import json, sys
from bench import serving_bench as sb
sb.DATA_DIR.mkdir(parents=True, exist_ok=True)
sb.setup_django()
texts, labels = sb.load_bbc()
info = sb.prepare(texts, labels)
json.dump({"key": info["key"], "test_texts": info["test_texts"]}, open(sys.argv[1], "w"))
"""


def side_env(tree: Path, spec: dict) -> dict:
    data = tree / "var" / "bench"
    return {
        **os.environ,
        "BENCH_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{spec['db']}",
        "BENCH_REDIS_URL": f"redis://127.0.0.1:6379/{spec['redis']}",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{spec['db']}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{spec['redis']}",
        "DATA_DIR": str(data),
        "ARTIFACT_ROOT": str(data / "artifacts"),
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "PREDICTION_LOG_SAMPLE_RATE": "1.0",
        "GUNICORN_ACCESS_LOG": "",
        # The side's own modules come first on the path (before this venv's editable install).
        "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'platform'}",
    }


def checkout(commit: str, name: str) -> tuple[Path, str]:
    tree = WORK / name
    sha = subprocess.run(
        ["git", "rev-parse", commit], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    if tree.exists():
        current = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True
        ).stdout.strip()
        if current == sha:
            return tree, sha
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), sha],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return tree, sha


def prepare_side(name: str, tree: Path, spec: dict) -> dict:
    print(f"preparing {name} ({tree}) ...", flush=True)
    out = WORK / f"{name}.json"
    subprocess.run(
        [sys.executable, "-c", PREPARE, str(out)],
        cwd=tree,
        env=side_env(tree, spec),
        check=True,
    )
    return json.loads(out.read_text())


def start_side(name: str, tree: Path, spec: dict) -> subprocess.Popen:
    log = WORK / f"gunicorn-{name}.log"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(tree / "deploy" / "gunicorn.conf.py"),
            "-w",
            "2",
            "-k",
            "sync",
            "--threads",
            "1",
            "-b",
            f"127.0.0.1:{spec['port']}",
            "--backlog",
            "2048",
            "--timeout",
            "120",
        ],
        cwd=tree,
        env=side_env(tree, spec),
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def report(rows: list[dict], meta: dict) -> str:
    lines = [
        SECTION,
        "",
        f"Measured by `bench/arch_ab.py` on {meta['when']} ({meta['cores']} cores; load average "
        f"{meta['load_before']} before, {meta['load_after']} after: the machine was shared with "
        "other jobs, which is why both sides run interleaved in one run). Before: "
        f"`{meta['before'][:10]}` (the commit before the architecture step); after: "
        f"`{meta['after'][:10]}`. Both as deployed (their own deploy/gunicorn.conf.py, 2 sync "
        "workers, DEBUG=0, PostgreSQL + Redis, quota, 100 % prediction log), the same unique "
        f"texts (the result cache never answers), {meta['duration']:g} s per side and cell in "
        f"slices interleaved A-B-B-A-A-B-B-A; {meta['generator']}.",
        "",
        "| items/req | concurrency | before req/s | after req/s | after / before | before p50 / "
        "p99 ms | after p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        b, a = row["before"], row["after"]
        lines.append(
            f"| {row['items']} | {row['concurrency']} | {b['rps']:.0f} | {a['rps']:.0f} | "
            f"{a['rps'] / b['rps']:.2f}x | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} | "
            f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} |"
        )
    ratios = [row["after"]["rps"] / row["before"]["rps"] for row in rows]
    lines += [
        "",
        f"Throughput after / before: {min(ratios):.2f}x to {max(ratios):.2f}x (geometric mean "
        f"{meta['geomean']:.2f}x) across the {len(rows)} cells. Errors: before "
        f"{sum(r['before']['errors'] for r in rows)}, after {sum(r['after']['errors'] for r in rows)}.",
    ]
    return "\n".join(lines)


def save(section: str) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start_at = text.find(SECTION)
    if start_at >= 0:
        end_at = text.find("\n## ", start_at + len(SECTION))
        text = text[:start_at] + section + (text[end_at:] if end_at >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="commit of the 'before' side")
    parser.add_argument(
        "--after", default="", help="commit of the 'after' side (default: this checkout)"
    )
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per side and cell")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    before_tree, before_sha = checkout(args.before, "before")
    if args.after:
        after_tree, after_sha = checkout(args.after, "after")
    else:
        after_tree = ROOT
        after_sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    trees = {"before": before_tree, "after": after_tree}
    # Each commit gets a database of its own: a schema migrated by newer code breaks older code.
    SIDES["before"]["db"] = f"tagging_bench_{before_sha[:10]}"
    SIDES["after"]["db"] = f"tagging_bench_{after_sha[:10]}"
    infos = {name: prepare_side(name, trees[name], SIDES[name]) for name in SIDES}
    load = sb.run_load_wrk if shutil.which("wrk") else sb.run_load
    sb.DATA_DIR.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    servers = {name: start_side(name, trees[name], SIDES[name]) for name in SIDES}
    texts = infos["after"]["test_texts"]
    rows: list[dict] = []
    try:
        targets = {}
        for name, spec in SIDES.items():
            sb.wait_port(spec["port"])
            targets[name] = sb.Target(
                name,
                spec["port"],
                "/api/v1/needs/news-topics/tag",
                {"Authorization": f"Api-Key {infos[name]['key']}"},
            )
        for target in targets.values():  # warm up: every worker loads its model
            load(target, texts, items=4, concurrency=4, duration=2, unique=True)
        for items in (1, 16):
            for concurrency in (1, 8, 32):
                parts: dict[str, list[dict]] = {"before": [], "after": []}
                for name in ("before", "after", "after", "before") * 2:
                    parts[name].append(
                        load(
                            targets[name],
                            texts,
                            items=items,
                            concurrency=concurrency,
                            duration=args.duration / 4,
                            unique=True,
                        )
                    )
                row = {
                    "items": items,
                    "concurrency": concurrency,
                    "before": sb.merge(parts["before"]),
                    "after": sb.merge(parts["after"]),
                }
                print(
                    f"items={items:2d} c={concurrency:2d} before {row['before']['rps']:7.1f} "
                    f"req/s p99 {row['before']['p99_ms']:6.1f} | after {row['after']['rps']:7.1f}"
                    f" req/s p99 {row['after']['p99_ms']:6.1f}",
                    flush=True,
                )
                rows.append(row)
    finally:
        for server in servers.values():
            sb.stop(server)
    ratios = [row["after"]["rps"] / row["before"]["rps"] for row in rows]
    geomean = 1.0
    for ratio in ratios:
        geomean *= ratio
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count() or 1,
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "before": before_sha,
        "after": after_sha,
        "duration": args.duration,
        "generator": "wrk (1 thread)" if load is sb.run_load_wrk else "Python threads",
        "geomean": geomean ** (1 / len(ratios)),
    }
    section = report(rows, meta)
    print(section)
    if not args.no_write:
        print(f"written to {save(section)}")


if __name__ == "__main__":
    main()
