#!/usr/bin/env python
"""Benchmark: what keeping a share of sync texts for review adds to a sync request's log write.

    REDIS_URL=redis://127.0.0.1:6379/N .venv/bin/python bench/sync_review_share_bench.py \
        [--requests 20000] [--items 8] [--no-write]

`serving.sync.tag_inline` calls `serving.predlog.record(...)` once per request; with a need's
`sync_review_share` above 0 that call draws per item and puts the kept texts into the same JSON
lines it pushes anyway (one RPUSH on the process's next pipeline). This times `record` alone,
in-process, against Redis, with the write-behind writer on (as in production), in interleaved
rounds: the baseline is the same code with no provider registered (before this feature a sync
line never had a text), then shares 0, 0.1 and 1.0 (every text kept: the worst case). The
provider is a dict lookup, as review.sync_texts.share_for_need is between refreshes. The buffer
is emptied after each round and never flushed to the database here: this measures only what the
web process pays. The table goes to docs/benchmarks.md under "## Sync texts kept for review"
(this section only).
"""

from __future__ import annotations

import argparse
import os
import platform as stdlib_platform
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (str(ROOT / "platform"), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")
SECTION = "## Sync texts kept for review"


@dataclass
class _Model:
    version_id: int = 7


@dataclass
class _Result:
    text_hash: str
    top_label: str = "news.tech"
    top_score: float = 0.91
    above_threshold: bool = True
    global_labels: list = field(default_factory=lambda: ["news.tech"])
    global_scores: dict = field(
        default_factory=lambda: {"news.tech": 0.91, "news.business": 0.06, "news.sport": 0.03}
    )
    model: _Model = field(default_factory=_Model)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    from serving import predlog
    from serving.models import Channel
    from serving.redis_pool import get_redis, writer

    settings.SERVING_ASYNC_WRITES = True
    texts = [f"an article of about two thousand characters, number {i} " * 40 for i in range(64)]
    texts = texts[: args.items]
    refs = [str(i) for i in range(len(texts))]
    results = [_Result(text_hash=f"{i:064x}") for i in range(len(texts))]
    configs = {
        "baseline: no provider (sync lines carry no text)": None,
        "need keeps no sync texts (share 0)": {1: 0.0},
        "share 0.1": {1: 0.1},
        "share 1.0 (every text kept)": {1: 1.0},
    }
    timings: dict[str, list[float]] = {name: [] for name in configs}
    client = get_redis()
    if client is None:
        raise SystemExit("this benchmark needs Redis (REDIS_URL)")
    client.delete(predlog.BUFFER_KEY)
    rounds = 10
    per_round = args.requests // rounds
    previous = predlog._text_share_provider
    for _ in range(rounds):
        for name, shares in configs.items():
            predlog.register_text_share_provider(
                None if shares is None else (lambda need_id, s=shares: s.get(need_id, 0.0))
            )
            samples = timings[name]
            for _ in range(per_round):
                start = time.perf_counter()
                predlog.record(
                    tenant_id=1,
                    need_id=1,
                    channel=Channel.SYNC,
                    item_refs=refs,
                    results=results,
                    texts=texts,
                )
                samples.append(time.perf_counter() - start)
            writer.flush()
            client.delete(predlog.BUFFER_KEY)
    predlog.register_text_share_provider(previous)

    def us(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

    base = statistics.median(timings[next(iter(configs))])
    rows = [
        f"| {name} | {statistics.mean(values) * 1e6:.1f} | {us(values, 0.5):.1f} | "
        f"{us(values, 0.99):.1f} | {(statistics.median(values) - base) * 1e6:+.1f} |"
        for name, values in timings.items()
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = "\n".join(
        [
            SECTION,
            "",
            f"`python bench/sync_review_share_bench.py` on {stamp} ({stdlib_platform.machine()}, "
            f"{os.cpu_count()} cores shared with other jobs, Python {stdlib_platform.python_version()}"
            f"). `serving.predlog.record` timed alone per sync request of {args.items} items "
            f"(~2.3 kB texts), {args.requests} calls per configuration in {rounds} interleaved "
            "rounds, write-behind writer on, Redis local.",
            "",
            "| configuration | mean µs | p50 µs | p99 µs | p50 vs baseline µs |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            "Result: a need that keeps no sync texts pays a dict lookup over the baseline. A kept "
            "text is serialised into the log line that is written anyway, so a share of 0.1 adds "
            "a few microseconds per request; keeping every text of 8 items adds tens of "
            'microseconds (JSON of 18 kB), against a sync p50 of milliseconds (see "Serving" '
            "above). There is no extra Redis round trip in any case. In this tight loop the "
            "write-behind queue fills and the request thread then sends the pipeline itself, in "
            "every configuration including the baseline: that is what the means and the p99 "
            "show (noisy on a shared machine); compare the p50 column.",
            "",
        ]
    )
    print(text)
    if args.no_write:
        return
    doc = ROOT / "docs" / "benchmarks.md"
    current = doc.read_text()
    pattern = re.compile(rf"{re.escape(SECTION)}\n.*?(?=\n## |\Z)", re.S)
    updated = (
        pattern.sub(text.rstrip("\n") + "\n", current)
        if SECTION in current
        else (current.rstrip("\n") + "\n\n" + text)
    )
    doc.write_text(updated)
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
