#!/usr/bin/env python
"""Benchmark: the daily monitoring aggregation over 10 million prediction-log rows on PostgreSQL.

    /work/main/.venv/bin/python bench/aggregate_bench.py [--rows 10000000] [--regenerate] [--no-write]

It uses a dedicated database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/tp_bench),
creating and migrating it when needed. Rows are generated inside PostgreSQL with
`INSERT ... SELECT generate_series(...)` (no Python loop): four needs, three multi-class
(top label of five) and one multi-label (0-3 labels per row, JSON array), all on one day, plus a
small neighbouring day so the day filter has something to skip. Existing rows are reused between
runs unless --regenerate.

Timed, in the same run:
1. `aggregate_predictions_day` for that day (the production code path: INSERT ... SELECT GROUP BY),
   run twice (the second run replaces the first: idempotent recomputation);
2. the same with index scans disabled (`enable_indexscan/bitmapscan = off`);
3. a naive baseline: iterate a 1% sample of the day's rows in Python and count per label, then
   extrapolate to the full day (x 100).
4. the weekly roll-up from daily rows.

The table is written to docs/benchmarks.md under "## Daily aggregation" (this section only).
"""

from __future__ import annotations

import argparse
import os
import platform as stdlib_platform
import re
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT / "platform"), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

BENCH_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tp_bench")
DAY = date(2025, 6, 4)
NEIGHBOUR = date(2025, 6, 3)
NEWS = ["news.business", "news.entertainment", "news.politics", "news.sport", "news.tech"]
FLAGS = ["flag.urgent", "flag.local", "flag.opinion", "flag.exclusive"]


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


def fixtures():
    """A tenant with three multi-class needs and one multi-label need, each with a model version."""
    from tenants.models import Need, Tenant
    from tests.monitoring.factories import make_monitored_need

    tenant, _ = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    out = []
    for slug, labels, kind in [
        ("news-1", NEWS, "multiclass"),
        ("news-2", NEWS, "multiclass"),
        ("news-3", NEWS, "multiclass"),
        ("flags", FLAGS, "multilabel"),
    ]:
        need = Need.objects.for_tenant(tenant).filter(slug=slug).first()
        if need is None:
            need, version = make_monitored_need(
                tenant=tenant, slug=slug, baseline={k: 100 for k in labels}, kind=kind
            )
        else:
            version = need.model.versions.get(version=1)
        out.append((need, version, labels, kind))
    return tenant, out


def generate(rows: int, tenant, needs, *, regenerate: bool) -> float:
    from django.db import connection

    from serving.models import PredictionLog

    table = PredictionLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE day = %s", [DAY])
        existing = cursor.fetchone()[0]
    if existing == rows and not regenerate:
        print(f"reusing {existing:,} rows of {DAY}")
        return 0.0
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table}")
        cursor.execute("SET synchronous_commit = off")
        # Bulk-load tricks for a throw-away bench database: skip the per-row foreign-key triggers
        # (the referenced rows exist) and build the secondary indexes (the
        # model's (need, day) and (day) plus the foreign-key ones) once, after the load.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT LIKE %s",
            [table, "%_pkey"],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        multiclass = [n for n in needs if n[3] == "multiclass"]
        multilabel = [n for n in needs if n[3] == "multilabel"]
        share = {"multiclass": 0.25, "multilabel": 0.25}
        chunk = 2_500_000
        for need, version, labels, kind in multiclass + multilabel:
            n = int(rows * share[kind])
            if (need, version, labels, kind) == (multiclass + multilabel)[-1]:
                n = rows - sum(int(rows * share[k[3]]) for k in (multiclass + multilabel)[:-1])
            array = "ARRAY[" + ",".join(f"'{label}'" for label in labels) + "]"
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                if kind == "multiclass":
                    # Skewed label choice (squared uniform) so shares differ; score in [0.2, 1).
                    select = f"""
                        SELECT g, l AS top_label, s AS top_score,
                               jsonb_build_array(l) AS labels, jsonb_build_object(l, s) AS scores
                        FROM (SELECT g, ({array})[1 + floor(power(random(), 2) * {len(labels)})::int] AS l,
                                     0.2 + 0.8 * random() AS s
                              FROM generate_series({start + 1}, {stop}) AS g) x"""
                else:
                    # Each flag independently above the 0.5 threshold with its own probability.
                    parts = ", ".join(
                        f"CASE WHEN random() < {0.15 + 0.1 * i} THEN '{label}' END"
                        for i, label in enumerate(labels)
                    )
                    select = f"""
                        SELECT g, COALESCE(a[1], '{labels[0]}') AS top_label, 0.55 AS top_score,
                               to_jsonb(a) AS labels, '{{}}'::jsonb AS scores
                        FROM (SELECT g, array_remove(ARRAY[{parts}], NULL) AS a
                              FROM generate_series({start + 1}, {stop}) AS g) x"""
                cursor.execute(
                    f"""
                    INSERT INTO {table} (created_at, day, tenant_id, need_id, model_version_id,
                        channel, item_ref, text_hash, labels, scores, top_label, top_score,
                        above_threshold)
                    SELECT %s::timestamptz + (g %% 86400) * interval '1 second', %s, %s, %s, %s,
                        'sync', '', '', labels, scores, top_label, top_score,
                        jsonb_array_length(labels) > 0
                    FROM ({select}) y
                    """,
                    [f"{DAY} 00:00:00+00", DAY, tenant.pk, need.pk, version.pk],
                )
                print(f"  {need.slug}: {stop:,}/{n:,} rows", flush=True)
        # A small neighbouring day: the day filter must skip it.
        need, version, labels, _ = multiclass[0]
        cursor.execute(
            f"""
            INSERT INTO {table} (created_at, day, tenant_id, need_id, model_version_id, channel,
                item_ref, text_hash, labels, scores, top_label, top_score, above_threshold)
            SELECT %s::timestamptz, %s, %s, %s, %s, 'sync', '', '', '["news.tech"]',
                '{{"news.tech": 0.9}}', 'news.tech', 0.9, true
            FROM generate_series(1, 100000)
            """,
            [f"{NEIGHBOUR} 12:00:00+00", NEIGHBOUR, tenant.pk, need.pk, version.pk],
        )
        started_indexes = time.perf_counter()
        for _, definition in indexes:
            cursor.execute(definition)
        print(f"  rebuilt {len(indexes)} indexes in {time.perf_counter() - started_indexes:.0f} s")
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def naive_sample() -> tuple[float, int]:
    """Python loop over a 1% sample of the day's rows (what "load the rows and count" costs)."""
    from django.db import connection

    from serving.models import PredictionLog

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM serving_predictionlog WHERE day = %s", [DAY])
        total = cursor.fetchone()[0]
    started = time.perf_counter()
    volume: Counter = Counter()
    conf: Counter = Counter()
    labels: Counter = Counter()
    rows = 0
    # TABLESAMPLE SYSTEM (1): a 1% page sample, streamed in chunks.
    sample = PredictionLog.objects.dangerously_unscoped().raw(
        "SELECT id, need_id, model_version_id, top_label, top_score, labels "
        "FROM serving_predictionlog TABLESAMPLE SYSTEM (1) REPEATABLE (42) WHERE day = %s",
        [DAY],
    )
    for row in sample.iterator():
        key = (row.need_id, row.model_version_id)
        volume[key] += 1
        conf[key] += row.top_score
        for label in row.labels or [row.top_label]:
            labels[(key, label)] += 1
        rows += 1
    elapsed = time.perf_counter() - started
    return elapsed * (total / max(rows, 1)), rows


def write_table(lines: list[str]) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    path.parent.mkdir(exist_ok=True)
    section = "## Daily aggregation\n\n" + "\n".join(lines).rstrip() + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"## Daily aggregation\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    ensure_database(BENCH_URL)
    setup_django()
    from django.db import connection, transaction

    from monitoring import aggregation
    from monitoring.models import LabelAggregate, PredictionAggregate

    tenant, needs = fixtures()
    gen_seconds = generate(args.rows, tenant, needs, regenerate=args.regenerate)

    first, counts = timed(lambda: aggregation.aggregate_predictions_day(day=DAY))
    second, _ = timed(lambda: aggregation.aggregate_predictions_day(day=DAY))
    volume = sum(
        PredictionAggregate.objects.dangerously_unscoped()
        .filter(period="day", period_start=DAY)
        .values_list("volume", flat=True)
    )
    label_rows = (
        LabelAggregate.objects.dangerously_unscoped().filter(period="day", period_start=DAY).count()
    )
    assert volume == args.rows, (volume, args.rows)

    def without_index():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            return aggregation.aggregate_predictions_day(day=DAY)

    noindex, _ = timed(without_index)
    naive, sampled = naive_sample()
    week, _ = timed(lambda: aggregation.aggregate_week(start=DAY))
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SHOW max_parallel_workers_per_gather")
        parallel = cursor.fetchone()[0]

    lines = [
        f"`python bench/aggregate_bench.py` on {stdlib_platform.machine()} "
        f"({os.cpu_count()} cores shared with other jobs, PostgreSQL {pg_version}, "
        f"max_parallel_workers_per_gather={parallel}). {args.rows:,} prediction-log rows on one "
        f"day (3 multi-class needs x 25%, 1 multi-label need x 25% with 0-3 labels each as a "
        f"JSON array) plus 100,000 rows on the day before, generated in SQL with "
        f"`INSERT ... SELECT generate_series`"
        + (f" in {gen_seconds:.0f} s." if gen_seconds else " (reused from an earlier run)."),
        "",
        "| step | seconds | notes |",
        "|---|---:|---|",
        f"| daily aggregation (production path) | {first:.1f} | `aggregate_predictions_day`: "
        f"3 x `INSERT ... SELECT ... GROUP BY` -> {counts['prediction_rows']} volume rows, "
        f"{label_rows} label rows; volume sum = {volume:,} |",
        f"| same day recomputed (idempotent) | {second:.1f} | delete + insert in one "
        f"transaction, identical rows |",
        f"| same, index scans disabled | {noindex:.1f} | `enable_indexscan/bitmapscan = off` |",
        f"| naive: Python loop, extrapolated | {naive:.1f} | {sampled:,} rows (1% "
        f"`TABLESAMPLE`) iterated in Python, x{args.rows / max(sampled, 1):.0f} |",
        f"| weekly roll-up from daily rows | {week:.3f} | sums of the daily aggregate rows |",
        "",
        f"Result: the daily aggregation of {args.rows:,} rows takes {first:.1f} s "
        f"({'under' if first < 60 else 'OVER'} the 60 s target), "
        f"{naive / first:.0f}x faster than loading the rows into Python.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        print(f"wrote {write_table(lines)}")
    return 0 if first < 60 else 1


if __name__ == "__main__":
    sys.exit(main())
