"""The prediction log, buffered so that recording never slows the hot path.

`record()` appends one JSON line per prediction to a Redis list with a single RPUSH, sent with the
process's next Redis pipeline (serving.redis_pool.writer; without Redis, to an in-process buffer
the same process flushes). `flush()` pops the buffer in batches and bulk-inserts PredictionLog
rows; the `online.flush_prediction_log` task runs it every PREDICTION_LOG_FLUSH_SECONDS, and
`manage.py flush_prediction_log` runs it on demand.
Sync traffic is sampled with PREDICTION_LOG_SAMPLE_RATE; stream and batch are always logged.
Sync texts are never logged, except a share per need that its owners opted in for review: an
upper app registers a provider (`need_id -> share`, answered from its own in-process cache), and
each logged sync prediction keeps its text with that probability, in the same line (no extra
write or round trip), with `text_share` = rate x share so that review can weight it back.
`write()` skips the buffer: it inserts the rows in the caller's database transaction, for work whose
lines must commit (or roll back) with its results (batch chunks).
"""

from __future__ import annotations

import io
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection

from core.localtime import zone
from serving.models import Channel, PredictionLog
from serving.redis_pool import get_redis, writer
from tenants.models import Tenant

logger = logging.getLogger(__name__)

BUFFER_KEY = "tp:predlog"
_local: list[bytes] = []
_local_lock = threading.Lock()
_local_flushed_at = time.monotonic()

TextShareProvider = Callable[[int], float]
_text_share_provider: TextShareProvider | None = None


def register_text_share_provider(provider: TextShareProvider | None) -> None:
    """The review app says which share of a need's sync texts is kept (serving knows no review)."""
    global _text_share_provider
    _text_share_provider = provider


def _text_share(need_id: int) -> float:
    if _text_share_provider is None:
        return 0.0
    try:
        return float(_text_share_provider(need_id) or 0.0)
    except Exception:  # keeping texts for review must never fail a tagging request
        logger.warning("sync text share provider failed", exc_info=True)
        return 0.0


def entries_for(
    *,
    tenant_id: int,
    need_id: int,
    channel: str,
    item_refs: Sequence[str],
    results,
    kept: dict[int, str] | None = None,
    text_share: float | None = None,
) -> list[bytes]:
    """One JSON line per result; `kept` ({position: text}) adds the text and its share."""
    now = time.time()
    kept = kept or {}
    return [
        json.dumps(
            {
                **({"x": kept[i], "p": text_share} if i in kept else {}),
                "t": now,
                "tn": tenant_id,
                "nd": need_id,
                "mv": result.model.version_id,
                "ch": channel,
                "ref": str(ref)[:200],
                "h": result.text_hash,
                "l": result.global_labels,
                "s": result.global_scores,
                "tl": result.top_label,
                "ts": result.top_score,
                "a": result.above_threshold,
            },
            separators=(",", ":"),
        ).encode()
        for i, (ref, result) in enumerate(zip(item_refs, results, strict=True))
    ]


def record(
    *,
    tenant_id: int,
    need_id: int,
    channel: str,
    item_refs: Sequence[str],
    results,
    texts: Sequence[str] | None = None,
    background: bool = True,
) -> int:
    """Buffer one log line per result. Returns how many were buffered (0 when sampled out).

    `texts` (sync only): each logged prediction keeps its text with the need's review share."""
    if not results:
        return 0
    rate = settings.PREDICTION_LOG_SAMPLE_RATE
    if channel == Channel.SYNC and rate < 1.0 and random.random() >= rate:
        return 0
    kept: dict[int, str] = {}
    share = 0.0
    if channel == Channel.SYNC and texts is not None:
        share = _text_share(need_id)
        if share > 0.0:
            kept = {i: text for i, text in enumerate(texts) if random.random() < share}
    lines = entries_for(
        tenant_id=tenant_id,
        need_id=need_id,
        channel=channel,
        item_refs=item_refs,
        results=results,
        kept=kept,
        text_share=min(rate, 1.0) * share if kept else None,
    )
    client = get_redis()
    if client is not None:
        try:
            if background:
                writer.submit(lambda pipe: pipe.rpush(BUFFER_KEY, *lines))
            else:
                client.rpush(BUFFER_KEY, *lines)
            return len(lines)
        except Exception:  # losing log lines beats failing a tagging request
            logger.warning("prediction log buffer unavailable; %d lines dropped", len(lines))
            return 0
    global _local_flushed_at
    with _local_lock:
        _local.extend(lines)
        due = (
            len(_local) >= 1000
            or time.monotonic() - _local_flushed_at > settings.PREDICTION_LOG_FLUSH_SECONDS
        )
    if due:
        flush()
    return len(lines)


def _rows(lines: list[bytes]) -> list[PredictionLog]:
    entries = [json.loads(raw) for raw in lines]
    # `day` is the tenant's calendar day (its time zone): one query per flush for the zones.
    zones = dict(
        Tenant.objects.filter(pk__in={entry["tn"] for entry in entries}).values_list(
            "pk", "time_zone"
        )
    )
    rows = []
    for entry in entries:
        created = datetime.fromtimestamp(entry["t"], tz=UTC)
        rows.append(
            PredictionLog(
                created_at=created,
                day=created.astimezone(zone(zones.get(entry["tn"], "UTC"))).date(),
                tenant_id=entry["tn"],
                need_id=entry["nd"],
                model_version_id=entry["mv"],
                channel=entry["ch"],
                item_ref=entry["ref"],
                text_hash=entry["h"],
                labels=entry["l"],
                scores=entry["s"],
                top_label=entry["tl"],
                top_score=entry["ts"],
                above_threshold=entry["a"],
                text=entry.get("x"),
                text_share=entry.get("p"),
            )
        )
    return rows


def write(*, tenant_id: int, need_id: int, channel: str, item_refs: Sequence[str], results) -> int:
    """Insert one log row per result now, in the caller's transaction (no buffer, no sampling).

    For work that commits its results in a transaction (batch chunks): the lines commit or roll
    back with the results, so a process killed right after the commit loses none, and a
    redelivered chunk that finds its results committed finds its lines too."""
    if not results:
        return 0
    return write_now(
        entries_for(
            tenant_id=tenant_id,
            need_id=need_id,
            channel=channel,
            item_refs=item_refs,
            results=results,
        )
    )


_COPY_COLUMNS = (
    "created_at, day, tenant_id, need_id, model_version_id, channel, item_ref, text_hash, "
    "labels, scores, top_label, top_score, above_threshold, text, text_share"
)


#: COPY's text format spells NULL as \N.
_NULL = "\\N"


def _copy_field(value: str) -> str:
    """A value in COPY's text format (tab-separated, backslash escapes)."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy(lines: list[bytes]) -> int:
    """PostgreSQL: stream the lines into the log with one COPY (no ORM objects: several times
    the rows/s of bulk_create; rows route to their day's partition)."""
    buffer = io.StringIO()
    entries = [json.loads(raw) for raw in lines]
    # `day` is the tenant's calendar day (its time zone), as in `_rows`.
    zones = dict(
        Tenant.objects.filter(pk__in={entry["tn"] for entry in entries}).values_list(
            "pk", "time_zone"
        )
    )
    for entry in entries:
        created = datetime.fromtimestamp(entry["t"], tz=UTC)
        fields = (
            created.isoformat(),
            created.astimezone(zone(zones.get(entry["tn"], "UTC"))).date().isoformat(),
            str(int(entry["tn"])),
            str(int(entry["nd"])),
            str(int(entry["mv"])),
            entry["ch"],
            entry["ref"],
            entry["h"],
            json.dumps(entry["l"], separators=(",", ":")),
            json.dumps(entry["s"], separators=(",", ":")),
            entry["tl"],
            repr(float(entry["ts"])),
            "t" if entry["a"] else "f",
        )
        kept = entry.get("x")
        buffer.write("\t".join(_copy_field(str(field)) for field in fields))
        # The text of a sampled sync row, else NULL (the share is only set with a text).
        if kept is None:
            buffer.write(f"\t{_NULL}\t{_NULL}")
        else:
            buffer.write(f"\t{_copy_field(kept)}\t{float(entry['p'])!r}")
        buffer.write("\n")
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY {PredictionLog._meta.db_table} ({_COPY_COLUMNS}) FROM STDIN", buffer
        )
    return len(lines)


def write_now(lines: list[bytes]) -> int:
    """Insert log lines directly (batch workers, which are already off the hot path)."""
    if not lines:
        return 0
    if connection.vendor == "postgresql":
        return _copy(lines)
    rows = _rows(lines)
    PredictionLog.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def flush(*, batch: int = 2000, limit: int | None = None) -> int:
    """Move buffered lines into PredictionLog. Returns the number of rows written."""
    global _local_flushed_at
    written = 0
    writer.flush()  # lines this process still holds for write-behind
    with _local_lock:
        local, _local[:] = list(_local), []
        _local_flushed_at = time.monotonic()
    if local:
        written += write_now(local)
    client = get_redis()
    if client is None:
        return written
    while limit is None or written < limit:
        lines = client.lpop(BUFFER_KEY, batch)
        if not lines:
            break
        written += write_now(lines)
    return written


def pending() -> int:
    client = get_redis()
    with _local_lock:
        local = len(_local)
    return local + (client.llen(BUFFER_KEY) if client is not None else 0)
