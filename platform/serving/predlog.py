"""The prediction log, buffered so that recording never slows the hot path.

`record()` appends one JSON line per prediction to a Redis list with a single RPUSH, sent with the
process's next Redis pipeline (serving.redis_pool.writer). Without Redis, while it is down, or when
its write fails, the lines go to an in-process buffer that the same process writes to the database
itself (within PREDICTION_LOG_FLUSH_SECONDS, from a timer; again later if the database refused).
`flush()` moves the Redis buffer into PredictionLog in batches: each batch is taken out of the
buffer into a key of its own (atomically, by a Lua script) and written in one transaction with a
PredictionLogFlush row; a flusher that dies in between leaves the key, and the next flush writes
the batch, or drops it if its row exists. The `online.flush_prediction_log` task runs it every
PREDICTION_LOG_FLUSH_SECONDS, and `manage.py flush_prediction_log` runs it on demand.
Sync traffic is sampled with PREDICTION_LOG_SAMPLE_RATE; stream and batch are always logged.
`write()` skips the buffer: it inserts the rows in the caller's database transaction, for work whose
lines must commit (or roll back) with its results (batch chunks).
"""

from __future__ import annotations

import atexit
import io
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.localtime import zone
from serving import redis_pool
from serving.models import Channel, PredictionLog, PredictionLogFlush
from serving.redis_pool import get_redis, writer
from tenants.models import Tenant

logger = logging.getLogger(__name__)

BUFFER_KEY = "tp:predlog"
#: A sorted set of the keys holding batches a flusher took out of the buffer (score: when).
INFLIGHT_KEY = "tp:predlog:inflight"
#: A batch key older than this belongs to a flusher that died (the flush task's hard limit is
#: far below it).
INFLIGHT_STALE_SECONDS = 300
#: Lines one process keeps while neither Redis nor the database takes them; beyond it the oldest
#: are dropped and counted in the log (memory stays bounded through a long double outage).
LOCAL_MAX_LINES = 200_000
_local: list[bytes] = []
_local_lock = threading.Lock()
_local_flushed_at = time.monotonic()
_local_timer: threading.Timer | None = None

# Take up to ARGV[1] lines off the buffer's head into the batch key KEYS[2], and note the batch
# key in KEYS[3] with the time ARGV[2]: atomically, so a line is always in exactly one place.
_TAKE = """
local lines = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #lines == 0 then return lines end
redis.call('LTRIM', KEYS[1], #lines, -1)
for i = 1, #lines, 500 do
  redis.call('RPUSH', KEYS[2], unpack(lines, i, math.min(i + 499, #lines)))
end
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[2])
return lines
"""
# Put a batch back into the buffer (its flusher failed or died before writing it).
_GIVE_BACK = """
local lines = redis.call('LRANGE', KEYS[2], 0, -1)
for i = 1, #lines, 500 do
  redis.call('RPUSH', KEYS[1], unpack(lines, i, math.min(i + 499, #lines)))
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], KEYS[2])
return #lines
"""


def entries_for(
    *, tenant_id: int, need_id: int, channel: str, item_refs: Sequence[str], results
) -> list[bytes]:
    now = time.time()
    return [
        json.dumps(
            {
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
        for ref, result in zip(item_refs, results, strict=True)
    ]


def record(
    *,
    tenant_id: int,
    need_id: int,
    channel: str,
    item_refs: Sequence[str],
    results,
    background: bool = True,
) -> int:
    """Buffer one log line per result. Returns how many were buffered (0 when sampled out)."""
    if not results:
        return 0
    rate = settings.PREDICTION_LOG_SAMPLE_RATE
    if channel == Channel.SYNC and rate < 1.0 and random.random() >= rate:
        return 0
    lines = entries_for(
        tenant_id=tenant_id, need_id=need_id, channel=channel, item_refs=item_refs, results=results
    )
    client = get_redis()
    if client is not None and redis_pool.available("main"):
        if background:
            writer.submit(
                lambda pipe: pipe.rpush(BUFFER_KEY, *lines), fallback=lambda: keep_locally(lines)
            )
            return len(lines)
        try:
            client.rpush(BUFFER_KEY, *lines)
            return len(lines)
        except redis_pool.REDIS_ERRORS as exc:  # never fail a tagging request over its log
            redis_pool.mark_down("main", exc)
    keep_locally(lines, flush_now_if_due=client is None)
    return len(lines)


def keep_locally(lines: list[bytes], *, flush_now_if_due: bool = False) -> None:
    """Hold lines in this process until they are written to the database: without Redis (the
    embedded default: written when 1,000 are held or PREDICTION_LOG_FLUSH_SECONDS passed, by the
    caller when `flush_now_if_due`), and whenever Redis did not take them (by a timer)."""
    with _local_lock:
        _local.extend(lines)
        overflow = len(_local) - LOCAL_MAX_LINES
        if overflow > 0:
            del _local[:overflow]
        due = (
            len(_local) >= 1000
            or time.monotonic() - _local_flushed_at > settings.PREDICTION_LOG_FLUSH_SECONDS
        )
    if overflow > 0:
        logger.error(
            "prediction log: %d lines dropped; neither Redis nor the database took them and "
            "this process holds %d",
            overflow,
            LOCAL_MAX_LINES,
        )
    if due and flush_now_if_due:
        flush_local()
    else:
        _schedule_local_flush()


def _schedule_local_flush(delay: float | None = None) -> None:
    global _local_timer
    with _local_lock:
        if _local_timer is not None or not _local:
            return
        _local_timer = threading.Timer(
            settings.PREDICTION_LOG_FLUSH_SECONDS if delay is None else delay, _local_flush_timer
        )
        _local_timer.daemon = True
        _local_timer.start()


def _local_flush_timer() -> None:
    global _local_timer
    with _local_lock:
        _local_timer = None
    try:
        flush_local()
    finally:
        connection.close()  # the timer thread's own connection


def flush_local() -> int:
    """Write the lines this process holds; if the database refuses them, keep them and try again
    later. Returns the number written."""
    global _local_flushed_at
    with _local_lock:
        local, _local[:] = list(_local), []
        _local_flushed_at = time.monotonic()
    if not local:
        return 0
    try:
        with transaction.atomic():
            return write_now(local)
    except Exception:
        logger.warning("prediction log: %d held lines not written yet", len(local), exc_info=True)
        with _local_lock:
            _local[:0] = local
        _schedule_local_flush(delay=max(settings.PREDICTION_LOG_FLUSH_SECONDS, 5.0))
        return 0


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
    "labels, scores, top_label, top_score, above_threshold"
)


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
        buffer.write("\t".join(_copy_field(str(field)) for field in fields))
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
    writer.flush()  # lines this process still holds for write-behind
    written = flush_local()
    client = get_redis()
    if client is None:
        return written
    recover_inflight(client)
    take = client.register_script(_TAKE)
    while limit is None or written < limit:
        token = uuid.uuid4().hex
        key = f"{INFLIGHT_KEY}:{token}"
        lines = take(keys=[BUFFER_KEY, key, INFLIGHT_KEY], args=[batch, time.time()])
        if not lines:
            break
        # If this fails (or the process dies), the batch stays under its key, and
        # `recover_inflight` writes it or drops it by its token's row: never lost, never twice.
        with transaction.atomic():
            count = write_now(lines)
            PredictionLogFlush.objects.create(token=token, lines=count)
        client.delete(key)
        client.zrem(INFLIGHT_KEY, key)
        written += count
    return written


def recover_inflight(client, *, older_than: float = INFLIGHT_STALE_SECONDS) -> int:
    """Settle the batches of flushers that failed or died: a batch whose transaction committed
    (its token's row exists) is dropped, any other goes back into the buffer for the next
    batches. Returns how many batches went back."""
    returned = 0
    give_back = client.register_script(_GIVE_BACK)
    for raw in client.zrangebyscore(INFLIGHT_KEY, 0, time.time() - older_than):
        key = raw.decode() if isinstance(raw, bytes) else raw
        token = key.rsplit(":", 1)[1]
        if PredictionLogFlush.objects.filter(token=token).exists():
            client.delete(key)
            client.zrem(INFLIGHT_KEY, key)
            continue
        logger.warning("prediction log: batch %s of a flusher that died goes back", token)
        give_back(keys=[BUFFER_KEY, key, INFLIGHT_KEY])
        returned += 1
    PredictionLogFlush.objects.filter(created_at__lt=timezone.now() - timedelta(days=1)).delete()
    return returned


def pending() -> int:
    client = get_redis()
    with _local_lock:
        local = len(_local)
    if client is None:
        return local
    inflight = sum(client.llen(key) for key in client.zrange(INFLIGHT_KEY, 0, -1))
    return local + client.llen(BUFFER_KEY) + inflight


def _flush_at_exit() -> None:
    """A process that stops (a gunicorn worker's graceful exit) writes the lines it holds."""
    try:
        writer.flush()
        flush_local()
    except Exception:  # the database may be gone at exit; nothing else to do then
        logger.warning("prediction log: held lines not written at exit", exc_info=True)


atexit.register(_flush_at_exit)
