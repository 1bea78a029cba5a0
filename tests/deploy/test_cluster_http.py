"""What nginx does in front of the app, checked on the running cluster."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest

from deploy.cluster import QUEUES, http_get
from tests.deploy.conftest import CLUSTER_UPLOAD_MAX_BYTES

pytestmark = pytest.mark.cluster


def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _web_logs(cluster) -> str:
    return "\n".join(cluster.log_path(name).read_text() for name in cluster.web_names())


def _log_line(read, needle: str, timeout: float = 10.0) -> str:
    """The log line containing `needle`. gunicorn and nginx both write their access-log line
    just after sending the response, so it may land a moment after the client saw the answer."""
    deadline = time.monotonic() + timeout
    while True:
        for line in read().splitlines():
            if needle in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line with {needle!r}")
        time.sleep(0.1)


def _web_log_line(cluster, needle: str) -> str:
    return _log_line(lambda: _web_logs(cluster), needle)


def _nginx_log_line(cluster, needle: str) -> str:
    return _log_line(cluster.nginx_access_log.read_text, needle)


def test_readyz_through_nginx_checks_postgres_redis_queues_and_artifacts(cluster):
    auth = {"Authorization": f"Bearer {cluster.metrics_token}"}
    status, body = http_get(f"{cluster.url}/readyz", timeout=15, headers=auth)

    report = json.loads(body)
    assert status == 200, report
    assert report["checks"]["database"]["vendor"] == "postgresql"
    assert report["checks"]["broker"]["transport"] == "redis"
    assert report["checks"]["artifacts"]["path"] == str(cluster.artifact_root)
    assert all(report["checks"]["queues"][q]["consumers"] >= 1 for q in QUEUES)
    # Anonymous callers see verdicts only: no paths, transports or errors.
    status, body = http_get(f"{cluster.url}/readyz", timeout=15)
    assert status == 200 and str(cluster.artifact_root).encode() not in body
    assert json.loads(body)["checks"]["artifacts"] == {"ok": True}


def test_metrics_are_denied_by_nginx_outside_the_scrape_network_and_need_the_token(cluster):
    # The cluster's nginx allows only 127.0.0.1 (the default scrape network), so this client
    # reaches the app, which wants the bearer token outside DEBUG.
    assert http_get(f"{cluster.url}/metrics")[0] == 401
    status, body = http_get(
        f"{cluster.url}/metrics", headers={"Authorization": f"Bearer {cluster.metrics_token}"}
    )
    assert status == 200 and b"celery_queue_length" in body
    site = (cluster.directory / "nginx" / "tagging-platform.conf").read_text()
    block = site[site.index("location = /metrics") :]
    assert "allow 127.0.0.1;" in block and "deny all;" in block.split("}")[0]


def test_both_gunicorn_instances_get_traffic(cluster):
    for _ in range(12):
        assert http_get(f"{cluster.url}/healthz")[0] == 200

    lines = cluster.nginx_access_log.read_text().splitlines()
    served_by = {m.group(1) for line in lines if (m := re.search(r'ua="([^"]+)"', line))}
    assert {f"127.0.0.1:{port}" for port in cluster.web_ports} <= served_by


def test_static_files_are_served_by_nginx_without_touching_gunicorn(cluster):
    # The login page links the collected (hashed) stylesheet; fetch exactly that link.
    status, page = http_get(f"{cluster.url}/login/")
    assert status == 200
    css = re.search(rb'href="(/static/[^"]+\.css)"', page).group(1).decode()
    request_id = "static-probe-7f3a"

    request = urllib.request.Request(
        f"{cluster.url}{css}", headers={"X-Request-ID": request_id, "Accept-Encoding": "gzip"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        headers = response.headers
        assert response.status == 200
    assert headers["Content-Type"] == "text/css"
    assert headers["Content-Encoding"] == "gzip"  # the .gz sibling collectstatic wrote
    assert "immutable" in headers["Cache-Control"]  # a hashed name never changes content
    assert headers["X-Request-ID"] == request_id
    line = _nginx_log_line(cluster, f"rid={request_id} ")
    assert 'ua="-"' in line  # answered by nginx itself: no upstream was involved
    assert request_id not in _web_logs(cluster)


def test_caller_request_id_reaches_the_app_log_and_comes_back(cluster):
    request_id = "trace-4c1d-e2e"

    status, _ = http_get(f"{cluster.url}/healthz", headers={"X-Request-ID": request_id})
    request = urllib.request.Request(f"{cluster.url}/healthz", headers={"X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=10) as response:
        echoed = response.headers["X-Request-ID"]

    assert status == 200
    assert echoed == request_id
    assert re.search(r'"GET /healthz HTTP/1.1" 200 ', _web_log_line(cluster, f"rid={request_id} "))
    assert _nginx_log_line(cluster, f"rid={request_id} ")


def test_nginx_makes_the_request_id_when_the_caller_sends_none_or_a_bad_one(cluster):
    for sent in ({}, {"X-Request-ID": "no spaces or; semicolons"}):
        with urllib.request.urlopen(
            urllib.request.Request(f"{cluster.url}/healthz", headers=sent), timeout=10
        ) as response:
            request_id = response.headers["X-Request-ID"]

        assert re.fullmatch(r"[0-9a-f]{32}", request_id)  # nginx's $request_id
        assert _web_log_line(cluster, f"rid={request_id} ")
        assert _nginx_log_line(cluster, f"rid={request_id} ")


def test_access_log_records_upstream_timings_and_instance(cluster):
    request_id = "timing-probe-1"
    http_get(f"{cluster.url}/healthz", headers={"X-Request-ID": request_id})

    line = _nginx_log_line(cluster, f"rid={request_id} ")
    assert re.search(r" rt=\d+\.\d{3} urt=\d+\.\d{3} uct=\d+\.\d{3} ua=\"127\.0\.0\.1:\d+\"", line)
    gunicorn_line = _web_log_line(cluster, f"rid={request_id} ")
    assert re.search(r" \d+\.\d{6}s \d+ms rid=", gunicorn_line)  # %(L)s and %(M)s


def test_body_over_the_upload_limit_is_refused_by_nginx_in_the_api_error_shape(cluster):
    too_big = b"x" * (CLUSTER_UPLOAD_MAX_BYTES + 128 * 1024)

    status, body, headers = _post(
        f"{cluster.url}/api/v1/", too_big, {"Content-Type": "application/octet-stream"}
    )

    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    line = _nginx_log_line(cluster, f"rid={headers['X-Request-ID']} ")
    assert " 413 " in line and 'ua="-"' in line  # refused before any instance saw it


def test_body_within_the_upload_limit_reaches_the_app(cluster):
    within = b"x" * (CLUSTER_UPLOAD_MAX_BYTES - 1024)

    status, body, headers = _post(
        f"{cluster.url}/api/v1/", within, {"Content-Type": "application/octet-stream"}
    )

    assert status != 413
    assert status < 500
    assert _web_log_line(cluster, f"rid={headers['X-Request-ID']} ")


def test_nginx_answers_in_the_api_error_shape_when_no_instance_is_up(cluster):
    for index in (1, 2):
        cluster.kill_web(index)
    try:
        status, body = http_get(f"{cluster.url}/healthz")
        assert status == 502
        assert json.loads(body)["error"]["code"] == "upstream_unavailable"
    finally:
        for index in (1, 2):
            cluster.start_web(index, wait=False)
        for index in (1, 2):
            cluster.wait_web_healthy(index)
