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


def observe_tag_request(need_slug: str, channel: str, seconds: float, items: int) -> None:
    """Record one tagging request (sync, stream or batch chunk) for a need."""
    TAG_REQUESTS.labels(need=need_slug, channel=channel).inc()
    TAG_ITEMS.labels(need=need_slug, channel=channel).inc(max(int(items), 0))
    TAG_LATENCY.labels(need=need_slug, channel=channel).observe(max(float(seconds), 0.0))


def record_model_load(model_name: str, version: int | str, outcome: str) -> None:
    MODEL_LOADS.labels(model=model_name, version=str(version), outcome=outcome).inc()
