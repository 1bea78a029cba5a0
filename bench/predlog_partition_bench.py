#!/usr/bin/env python
"""Benchmark: the prediction log partitioned by day, at scale, on PostgreSQL.

    .venv/bin/python bench/predlog_partition_bench.py [--rows 100000000] [--days 10] [--no-write]

It uses a dedicated database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/tp_scale_bench), created and migrated when needed, so the log
is the partitioned table of serving migration 0008. Rows are generated inside PostgreSQL with
`INSERT ... SELECT generate_series(...)` (no Python loop), spread over `--days` days with a skew
(the largest day holds about twice the average), four needs per day as in
bench/aggregate_bench.py (three multi-class, one multi-label). Secondary indexes are built once
after the load (bulk-load practice for a throw-away database).

Timed:
1. `aggregate_predictions_day` of the largest day (the production path; the `day = <literal>`
   filter prunes to that day's partition: the EXPLAIN is checked to scan one partition);
2. dropping a whole day (`serving.partitions.log_partition_drop`: `DROP TABLE` of the partition);
3. the log's insert rate: `predlog.write_now` (the flush path: JSON lines -> bulk INSERT) of
   200,000 rows in batches of 1,000 into today's partition, against the tagging rate it must keep
   up with (the highest items/s of the sync benchmark in docs/benchmarks.md "## Serving", every
   item logged).

The table is written to docs/benchmarks.md under "## Prediction log partitions".
"""

from __future__ import annotations

import argparse
import os
import platform as stdlib_platform
import re
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT / "platform"), str(ROOT), str(ROOT / "bench")):
    if path not in sys.path:
        sys.path.insert(0, path)

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tp_scale_bench")
from aggregate_bench import BENCH_URL, FLAGS, NEWS, ensure_database, fixtures  # noqa: E402

FIRST = date(2025, 6, 1)
TABLE = "serving_predictionlog"


def setup_django() -> None:
    os.environ["DATABASE_URL"] = BENCH_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def day_sizes(rows: int, days: int) -> dict[date, int]:
    """Skewed: day i gets weight 1 + i (the last day about twice the average)."""
    weights = [1 + i for i in range(days)]
    total = sum(weights)
    sizes = {FIRST + timedelta(days=i): rows * w // total for i, w in enumerate(weights)}
    last = FIRST + timedelta(days=days - 1)
    sizes[last] += rows - sum(sizes.values())
    return sizes


def _select(kind: str, labels: list[str], start: int, stop: int) -> str:
    array = "ARRAY[" + ",".join(f"'{label}'" for label in labels) + "]"
    if kind == "multiclass":
        return f"""
            SELECT g, l AS top_label, s AS top_score,
                   jsonb_build_array(l) AS labels, jsonb_build_object(l, s) AS scores
            FROM (SELECT g, ({array})[1 + floor(power(random(), 2) * {len(labels)})::int] AS l,
                         0.2 + 0.8 * random() AS s
                  FROM generate_series({start + 1}, {stop}) AS g) x"""
    parts = ", ".join(
        f"CASE WHEN random() < {0.15 + 0.1 * i} THEN '{label}' END"
        for i, label in enumerate(labels)
    )
    return f"""
        SELECT g, COALESCE(a[1], '{labels[0]}') AS top_label, 0.55 AS top_score,
               to_jsonb(a) AS labels, '{{}}'::jsonb AS scores
        FROM (SELECT g, array_remove(ARRAY[{parts}], NULL) AS a
              FROM generate_series({start + 1}, {stop}) AS g) x"""


def generate(sizes: dict[date, int], tenant, needs, *, reuse: bool = False) -> dict:
    """Fill the partitions; with `reuse`, keep every day whose partition already holds its
    rows (an earlier run's) and generate only the others. Secondary indexes are dropped and
    built again after the load either way. Returns the seconds spent and the days generated."""
    from django.db import connection

    from serving.partitions import log_partition_ensure, partition_name

    started = time.perf_counter()
    for day in sizes:
        log_partition_ensure(day=day)
    with connection.cursor() as cursor:
        present = {}
        if reuse:
            for day in sizes:
                cursor.execute(f"SELECT count(*) FROM {partition_name(day)}")
                present[day] = cursor.fetchone()[0]
        else:
            cursor.execute(f"TRUNCATE {TABLE}")
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
            "AND indexname NOT LIKE %s",
            [TABLE, "%_pkey"],
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        chunk = 2_500_000
        generated = []
        for day, size in sizes.items():
            if present.get(day) == size:
                continue
            if present.get(day):
                cursor.execute(f"TRUNCATE {partition_name(day)}")
            generated.append(day)
            share = [size // 4] * 3 + [size - 3 * (size // 4)]
            for (need, version, labels, kind), n in zip(needs, share, strict=True):
                for start in range(0, n, chunk):
                    stop = min(n, start + chunk)
                    cursor.execute(
                        f"""
                        INSERT INTO {TABLE} (created_at, day, tenant_id, need_id,
                            model_version_id, channel, item_ref, text_hash, labels, scores,
                            top_label, top_score, above_threshold)
                        SELECT %s::timestamptz + (g %% 86400) * interval '1 second', %s, %s, %s,
                            %s, 'sync', '', '', labels, scores, top_label, top_score,
                            jsonb_array_length(labels) > 0
                        FROM ({_select(kind, labels, start, stop)}) y
                        """,
                        [f"{day} 00:00:00+00", day, tenant.pk, need.pk, version.pk],
                    )
            print(f"  {day}: {size:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
        loaded = time.perf_counter()
        print(f"  loaded, building indexes ({loaded - started:.0f} s)", flush=True)
        for name, definition in indexes:
            # pg_indexes shows a partitioned table's index as `CREATE INDEX ... ON ONLY parent`,
            # which builds no index on the partitions (and stays invalid): build them all.
            cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))
            print(f"    {name} ({time.perf_counter() - started:.0f} s)", flush=True)
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute(f"ANALYZE {TABLE}")
        cursor.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = %s AND NOT i.indisvalid",
            [TABLE],
        )
        assert cursor.fetchone()[0] == 0, "an index of the log is invalid"
    finished = time.perf_counter()
    return {
        "load_seconds": loaded - started,
        "index_seconds": finished - loaded,
        "generated": generated,
        "indexes": len(indexes),
    }


def tagging_rate() -> tuple[float, str]:
    """The highest items/s of the sync benchmark (docs/benchmarks.md, "## Serving")."""
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    section = re.search(r"## Serving\n(.*?)(?=\n## |\Z)", text, re.S)
    best, where = 0.0, "no serving benchmark found"
    for line in (section.group(1) if section else "").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 4 and cells[0].isdigit() and cells[1].isdigit():
            try:
                rate = int(cells[0]) * float(cells[3])
            except ValueError:
                continue
            if rate > best:
                best, where = rate, f"{cells[0]} items/req x {cells[3]} req/s"
    return best, where


def insert_rate(tenant, needs, total: int = 200_000, batch: int = 1000) -> float:
    import json

    from serving import predlog
    from serving.partitions import log_partition_ensure

    log_partition_ensure(day=date.today())
    need, version, labels, _ = needs[0]
    now = time.time()
    lines = [
        json.dumps(
            {
                "t": now,
                "tn": tenant.pk,
                "nd": need.pk,
                "mv": version.pk,
                "ch": "sync",
                "ref": f"item-{i}",
                "h": f"{i:064x}",
                "l": [labels[i % len(labels)]],
                "s": {labels[i % len(labels)]: 0.9},
                "tl": labels[i % len(labels)],
                "ts": 0.9,
                "a": True,
            }
        ).encode()
        for i in range(total)
    ]
    started = time.perf_counter()
    for start in range(0, total, batch):
        predlog.write_now(lines[start : start + batch])
    return total / (time.perf_counter() - started)


def write_table(lines: list[str]) -> Path:
    path = ROOT / "docs" / "benchmarks.md"
    title = "## Prediction log partitions"
    section = title + "\n\n" + "\n".join(lines).rstrip() + "\n"
    text = path.read_text()
    pattern = re.compile(re.escape(title) + r"\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(text):
        text = pattern.sub(section.rstrip("\n") + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the days an earlier run generated (generate only missing days)",
    )
    args = parser.parse_args()

    ensure_database(BENCH_URL)
    setup_django()
    from django.db import connection
    from django.db.models import Sum

    from monitoring import aggregation
    from monitoring.models import PredictionAggregate
    from serving import partitions

    tenant, needs = fixtures()
    assert [n[2] for n in needs] == [NEWS, NEWS, NEWS, FLAGS]
    sizes = day_sizes(args.rows, args.days)
    generation = generate(sizes, tenant, needs, reuse=args.reuse)
    largest = max(sizes, key=sizes.get)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [partitions.partition_name(largest)])
        day_bytes = cursor.fetchone()[0]
        cursor.execute(
            f"EXPLAIN SELECT need_id, COUNT(*) FROM {TABLE} WHERE day = %s GROUP BY 1", [largest]
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    scanned = sorted(set(re.findall(rf"{TABLE}_(?:p\d{{8}}|default)", plan)))
    assert scanned == [partitions.partition_name(largest)], plan

    started = time.perf_counter()
    counts = aggregation.aggregate_predictions_day(day=largest)
    aggregate_seconds = time.perf_counter() - started
    print(
        f"  aggregated {largest} ({sizes[largest]:,} rows) in {aggregate_seconds:.1f} s", flush=True
    )
    volume = (
        PredictionAggregate.objects.for_tenant(tenant)
        .filter(period="day", period_start=largest)
        .aggregate(total=Sum("volume"))["total"]
    )
    assert volume == sizes[largest], (volume, sizes[largest])

    oldest = min(sizes)
    started = time.perf_counter()
    partitions.log_partition_drop(day=oldest)
    drop_seconds = time.perf_counter() - started
    print(f"  dropped {oldest} in {drop_seconds:.3f} s", flush=True)
    assert oldest not in partitions.log_partition_days()

    rate = insert_rate(tenant, needs)
    tagging, tagging_source = tagging_rate()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]

    lines = [
        f"`python bench/predlog_partition_bench.py --rows {args.rows} --days {args.days}` on "
        f"{stdlib_platform.machine()} ({os.cpu_count()} cores shared with other jobs, PostgreSQL "
        f"{pg_version}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. {args.rows:,} "
        f"prediction-log rows over {args.days} daily partitions (skewed: day i has weight i+1), "
        f"generated in SQL with `INSERT ... SELECT generate_series`"
        + (
            f" ({len(generation['generated'])} of {args.days} days in this run, the others kept "
            "from an earlier run with --reuse)"
            if args.reuse
            else ""
        )
        + f" in {generation['load_seconds']:.0f} s; its {generation['indexes']} secondary "
        f"indexes (plus the primary key) built after the load in "
        f"{generation['index_seconds']:.0f} s.",
        "",
        "| step | result | notes |",
        "|---|---:|---|",
        f"| daily aggregation of the largest day | {aggregate_seconds:.1f} s | {largest}: "
        f"{sizes[largest]:,} rows ({day_bytes / 1e9:.1f} GB with indexes); the plan scans only "
        f"its partition; {counts['prediction_rows']} volume rows, volume sum = {volume:,} |",
        f"| drop a whole day | {drop_seconds:.3f} s | {oldest}: {sizes[oldest]:,} rows, "
        f"`DROP TABLE` of its partition (no `DELETE`) |",
        f"| log insert rate | {rate:,.0f} rows/s | `predlog.write_now`, 200,000 rows in batches of "
        f"1,000, one process |",
        f"| tagging rate to keep up with | {tagging:,.0f} items/s | best sync cell in "
        f'"## Serving" ({tagging_source}), every item logged |',
        "",
        f"Result: the largest day ({sizes[largest]:,} rows) aggregates in "
        f"{aggregate_seconds:.1f} s; a day drops in {drop_seconds * 1000:.0f} ms; one flushing "
        f"process inserts {rate / max(tagging, 1):.1f}x the peak tagging rate.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        print(f"wrote {write_table(lines)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
