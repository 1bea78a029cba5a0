"""Shadow mode's hook on the hot path: a sampled share of sync traffic is handed, off the
request, to whoever scores a challenger beside the champion. Its answers are never returned.

Serving owns the hook and knows nothing of challengers: an upper app registers a share provider
(`need_id -> (share, challenger version id) or None`, answered from its own in-process cache).
The hot path pays a dict lookup and one random draw per item; the chosen items ride the
process's next Redis pipeline (`writer`), so no extra round trip, and a per-process token bucket
caps them (SHADOW_MAX_ITEMS_PER_SECOND) whatever the share. The list is trimmed to
SHADOW_BUFFER_MAX lines, so a stopped drainer costs bounded memory. Without Redis nothing is
shadowed (best effort, like the prediction log's sampling).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from django.conf import settings

from serving.redis_pool import get_redis, writer

logger = logging.getLogger(__name__)

BUFFER_KEY = "tp:shadow"
ShareProvider = Callable[[int], "tuple[float, int] | None"]

_provider: ShareProvider | None = None


def register_share_provider(provider: ShareProvider) -> None:
    global _provider
    _provider = provider


class _Bucket:
    """Per-process token bucket: at most `rate` shadow items per second (bursts up to `rate`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._at = time.monotonic()

    def take(self, wanted: int, rate: float) -> int:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(rate, self._tokens + (now - self._at) * rate)
            self._at = now
            granted = min(wanted, int(self._tokens))
            self._tokens -= granted
            return granted


_bucket = _Bucket()


def offer(*, tenant_id: int, need_id: int, texts: Sequence[str], results: Sequence) -> int:
    """Called by sync tagging after the champion answered. Returns the items handed over."""
    if _provider is None:
        return 0
    try:
        decision = _provider(need_id)
    except Exception:  # shadowing must never fail a tagging request
        logger.warning("shadow share provider failed", exc_info=True)
        return 0
    if not decision:
        return 0
    share, challenger_id = decision
    picked = [i for i in range(len(texts)) if random.random() < share]
    if not picked:
        return 0
    picked = picked[: _bucket.take(len(picked), settings.SHADOW_MAX_ITEMS_PER_SECOND)]
    if not picked or get_redis() is None:
        return 0
    now = time.time()
    lines = [
        json.dumps(
            {
                "t": now,
                "tn": tenant_id,
                "nd": need_id,
                "mv": results[i].model.version_id,
                "cv": challenger_id,
                "tl": results[i].top_label,
                "x": texts[i],
            },
            separators=(",", ":"),
        ).encode()
        for i in picked
    ]
    keep = settings.SHADOW_BUFFER_MAX

    def push(pipe) -> None:
        pipe.rpush(BUFFER_KEY, *lines)
        pipe.ltrim(BUFFER_KEY, -keep, -1)

    try:
        writer.submit(push)
    except Exception:
        logger.warning("shadow buffer unavailable; %d items not shadowed", len(lines))
        return 0
    return len(lines)


def take(*, batch: int = 500) -> list[dict]:
    """Pop up to `batch` shadow items (the drainer, off the hot path)."""
    client = get_redis()
    if client is None:
        return []
    writer.flush()
    lines = client.lpop(BUFFER_KEY, batch) or []
    return [json.loads(line) for line in lines]
