#!/usr/bin/env python
"""Acceptance bench of the monitoring rules: 60 days of real held-out texts per demo need.

    .venv/bin/python bench/monitoring_replay.py [--stable-days 45] [--shift-days 15] [--seed 14]
                                               [--no-write]

45 stable days (the training mix, ±30 % daily volume, sampling noise), then each of five shifts
(a label disappears, a label's share doubles, a gradual mix change over 10 days, CTR of one label
halves, negative feedback on one label triples) replayed on top of the same stable history, all
through the production path (prediction log -> daily aggregation -> drift -> rules -> incidents).
See `monitoring.replay` for how the days are drawn.

It uses a dedicated database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/tp_monitoring_replay), creating and migrating it when needed.
The table goes to stdout and to docs/benchmarks.md under "## Monitoring replay" (that section only).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT / "platform"), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tp_monitoring_replay"
)


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


def setup_django() -> None:
    os.environ["DATABASE_URL"] = BENCH_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def write_section(table: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = (
        "## Monitoring replay\n\n"
        "`bench/monitoring_replay.py` (see `platform/monitoring/replay.py`): real held-out texts "
        "of the bundled data sets, classified by a model trained on the rest, replayed through "
        "the production monitoring path with the default rule settings. Days to detect count the "
        "first shifted day as day 1. The label-share rule is the trend test over the last "
        "`share_trend_days` days with the correction family screened to the comparisons that "
        "can alert by chance (docs/monitoring.md).\n\n" + table.rstrip() + "\n"
    )
    pattern = re.compile(r"## Monitoring replay\n.*?(?=\n## |\Z)", re.S)
    text = pattern.sub(section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    doc.write_text(text)
    print(f"wrote {doc.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stable-days", type=int, default=45)
    parser.add_argument("--shift-days", type=int, default=15)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    ensure_database(BENCH_URL)
    setup_django()
    from django.core.mail import get_connection  # noqa: F401  (settings loaded)

    from monitoring import replay

    class Out:
        def write(self, message: str) -> None:
            print(message, flush=True)

    started = time.perf_counter()
    result = replay.replay(
        stable_days=args.stable_days,
        shift_days=args.shift_days,
        seed=args.seed,
        stdout=Out(),
    )
    table = replay.result_table(result)
    print()
    print(table)
    print(f"\n(seed {args.seed}; {time.perf_counter() - started:.0f} s)")
    if not args.no_write:
        write_section(table + f"\n\nSeed {args.seed}.")


if __name__ == "__main__":
    main()
