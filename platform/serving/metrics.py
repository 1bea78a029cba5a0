"""Prometheus metrics of serving: tag requests, items and latency per need and channel, and model
loads by outcome. They register in prometheus-client's default registry (multiprocess-aware, see
`monitoring.metrics`), which `/metrics` exposes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TAG_REQUESTS = Counter(
    "tagging_requests_total", "Tagging requests served, per need and channel.", ["need", "channel"]
)
TAG_ITEMS = Counter(
    "tagging_items_total", "Texts tagged, per need and channel.", ["need", "channel"]
)
TAG_LATENCY = Histogram(
    "tagging_request_duration_seconds",
    "Tagging request latency, per need and channel.",
    ["need", "channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MODEL_LOADS = Counter(
    "tagging_model_loads_total",
    "Model loads into a serving process, by outcome (loaded, cache_hit, failed, checksum_mismatch).",
    ["model", "version", "outcome"],
)


#: (need, channel) -> its three children. `.labels()` checks and converts the labels and takes the
#: metric's lock on every call; the children it returns never change (nothing here removes them).
#: Bounded: the needs are few, but a slug comes from the URL.
_tag_children: dict[tuple[str, str], tuple] = {}
_MAX_TAG_CHILDREN = 10_000


def _tag_metrics(need_slug: str, channel: str) -> tuple:
    key = (need_slug, channel)
    children = _tag_children.get(key)
    if children is None:
        children = (
            TAG_REQUESTS.labels(need=need_slug, channel=channel),
            TAG_ITEMS.labels(need=need_slug, channel=channel),
            TAG_LATENCY.labels(need=need_slug, channel=channel),
        )
        if len(_tag_children) < _MAX_TAG_CHILDREN:
            _tag_children[key] = children
    return children


def observe_tag_request(need_slug: str, channel: str, seconds: float, items: int) -> None:
    """Record one tagging request (sync, stream or batch chunk) for a need."""
    requests, items_counter, latency = _tag_metrics(need_slug, channel)
    requests.inc()
    items_counter.inc(max(int(items), 0))
    latency.observe(max(float(seconds), 0.0))


def record_model_load(model_name: str, version: int | str, outcome: str) -> None:
    MODEL_LOADS.labels(model=model_name, version=str(version), outcome=outcome).inc()
