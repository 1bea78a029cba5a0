"""The deployment files themselves: they render, parse and say what the README promises. These
need no running cluster (nginx -t and systemd-analyze are used when installed)."""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from deploy.cluster import (
    MULTIPART_ALLOWANCE,
    QUEUES,
    ROOT,
    Cluster,
    ClusterError,
    render_site,
    render_template,
)

DEPLOY = ROOT / "deploy"


def test_rendered_nginx_config_passes_nginx_t(tmp_path):
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    cluster = Cluster(tmp_path / "c", web_ports=[18001, 18002], nginx_port=18000)

    assert "test is successful" in cluster.nginx_test_config()


def test_site_config_balances_all_instances_with_passive_failover_and_the_upload_limit():
    site = render_site(
        upstreams=["10.0.0.11:8000", "10.0.0.12:8000"],
        static_root="/srv/static/",
        upload_max_bytes=5_000_000,
        drained=["10.0.0.12:8000"],
    )

    assert "server 10.0.0.11:8000 max_fails=3 fail_timeout=10s;" in site
    assert "server 10.0.0.12:8000 max_fails=3 fail_timeout=10s down;" in site
    assert f"client_max_body_size {5_000_000 + MULTIPART_ALLOWANCE};" in site
    assert "alias /srv/static/;" in site
    # Only synchronous tagging (nothing to double) may be resent once it reached an instance.
    general = site.split("    location / {")[1].split("\n    }")[0]
    directives = [line.strip() for line in general.splitlines() if not line.strip().startswith("#")]
    assert "proxy_next_upstream error timeout http_502 http_503;" in directives
    assert not [line for line in directives if "non_idempotent" in line]
    tag = site.split("location ~ ^/api/v1/needs/[^/]+/tag$ {")[1].split("\n    }")[0]
    assert "proxy_next_upstream error http_502 non_idempotent;" in tag
    assert site.count("non_idempotent;") == 1
    assert "proxy_set_header X-Request-ID $tp_request_id;" in site


def test_site_config_denies_metrics_except_from_the_scrape_network():
    site = render_site(
        upstreams=["10.0.0.11:8000"], static_root="/srv/static", metrics_allow=["10.0.5.0/24"]
    )
    block = site.split("location = /metrics {")[1].split("\n    }")[0]
    rules = [line.strip() for line in block.splitlines() if line.strip()[:5] in ("allow", "deny ")]
    assert rules == ["allow 10.0.5.0/24;", "deny all;"]
    assert "allow 127.0.0.1;" in render_site(upstreams=["10.0.0.11:8000"], static_root="/s")


def test_template_rendering_refuses_an_unfilled_placeholder():
    with pytest.raises(ClusterError, match="TP_LISTEN"):
        render_template("listen ${TP_LISTEN}; set $x $host;", {})

    # nginx's own variables are left alone.
    assert render_template("listen ${TP_LISTEN}; $host", {"TP_LISTEN": "80"}) == "listen 80; $host"


def test_nginx_idle_upstream_timeout_is_below_gunicorn_keepalive(monkeypatch):
    monkeypatch.delenv("GUNICORN_KEEPALIVE", raising=False)
    conf = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    site = (DEPLOY / "nginx" / "tagging-platform.conf.template").read_text()
    upstream = site.split("upstream tagging_web {")[1].split("\n}")[0]
    nginx_idle = int(re.search(r"^\s*keepalive_timeout (\d+)s;", upstream, re.M).group(1))

    assert nginx_idle < conf["keepalive"]


def test_gunicorn_conf_takes_its_sizes_from_the_environment(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "7")
    monkeypatch.setenv("GUNICORN_BIND", "0.0.0.0:9000")
    monkeypatch.setenv("GUNICORN_MAX_REQUESTS", "500")
    conf = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))

    assert conf["workers"] == 7
    assert conf["bind"] == ["0.0.0.0:9000"]
    assert conf["max_requests"] == 500
    assert 0 < conf["max_requests_jitter"] < 500
    assert conf["preload_app"] is True
    assert conf["graceful_timeout"] < conf["timeout"]
    assert "%(L)s" in conf["access_log_format"] and "%(M)s" in conf["access_log_format"]
    assert "{x-request-id}o" in conf["access_log_format"]


def test_gunicorn_workers_default_to_the_cpu_count(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    conf = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))

    assert conf["workers"] == (os.cpu_count() or 1)


def _worker_command(queue: str, **env: str) -> subprocess.CompletedProcess:
    """What worker.sh would exec, printed by `echo` in place of celery."""
    return subprocess.run(
        ["sh", str(DEPLOY / "celery" / "worker.sh"), queue],
        env={**os.environ, "CELERY_BIN": "echo", **env},
        capture_output=True,
        text=True,
    )


def test_each_queue_gets_a_worker_command_fitting_its_latency_class():
    commands = {queue: _worker_command(queue).stdout for queue in QUEUES}

    for queue, command in commands.items():
        assert f"--queues {queue} " in command
        assert "--prefetch-multiplier 1" in command
    assert "--concurrency 1 " in commands["training"]
    assert "--max-tasks-per-child 1" in commands["training"]
    assert "--max-tasks-per-child" not in commands["online"]
    # A batch worker holds no unstarted chunks a crash could strand (issue 12.1).
    assert "--disable-prefetch" in commands["batch"]
    assert "--concurrency 3 " in _worker_command("online", CELERY_ONLINE_CONCURRENCY="3").stdout


def test_worker_script_refuses_an_unknown_queue():
    result = _worker_command("everything")

    assert result.returncode == 64
    assert "unknown queue" in result.stderr


def test_beat_uses_the_database_scheduler():
    result = subprocess.run(
        ["sh", str(DEPLOY / "celery" / "beat.sh")],
        env={**os.environ, "CELERY_BIN": "echo"},
        capture_output=True,
        text=True,
    )

    assert "--scheduler django_celery_beat.schedulers:DatabaseScheduler" in result.stdout


def test_redis_visibility_timeout_outlasts_the_longest_task():
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the broker is not Redis in this run")

    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]

    assert visibility > settings.CELERY_LONGEST_TASK_SECONDS


def test_compose_has_the_whole_topology_with_health_checks():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]

    assert {"postgres", "redis", "web1", "web2", "nginx", "beat"} <= set(services)
    assert {services[f"worker-{q}"]["command"][-1] for q in QUEUES} == set(QUEUES)
    for web in ("web1", "web2"):
        assert "/healthz" in " ".join(services[web]["healthcheck"]["test"])
        assert f"server {web}:8000" in services["nginx"]["environment"]["TP_UPSTREAM_SERVERS"]
    assert "/readyz" in " ".join(services["nginx"]["healthcheck"]["test"])
    assert services["beat"]["command"] == ["deploy/celery/beat.sh"]
    environment = services["web1"]["environment"]
    limit = int(services["nginx"]["environment"]["TP_CLIENT_MAX_BODY_SIZE"])
    assert limit == int(environment["UPLOAD_MAX_BYTES"]) + MULTIPART_ALLOWANCE


def test_dockerfile_runs_as_non_root_and_collects_static_at_build():
    dockerfile = (DEPLOY / "Dockerfile").read_text()

    assert "FROM python:3.11-slim AS base" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    app_stage = dockerfile.split("AS app")[1]
    assert "USER tagging" in app_stage
    assert 'CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py"]' in app_stage


def test_systemd_units_are_valid(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = []
    for name, instance in (
        ("gunicorn@.service", "gunicorn@8001.service"),
        ("celery-worker@.service", "celery-worker@batch.service"),
        ("celery-beat.service", "celery-beat.service"),
    ):
        shutil.copy(DEPLOY / "systemd" / name, tmp_path / name)
        units.append(instance)

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    # The only acceptable complaint here: /srv/tagging-platform does not exist on this machine.
    problems = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "is not executable: No such file or directory" not in line
    ]
    assert not problems, result.stderr


def test_systemd_worker_unit_sends_sigterm_to_the_main_process_only():
    unit = (DEPLOY / "systemd" / "celery-worker@.service").read_text()

    assert "KillMode=mixed" in unit
    assert "KillSignal=SIGTERM" in unit
    assert "EnvironmentFile=/etc/tagging-platform/env" in unit


def test_cluster_script_is_executable():
    assert os.access(DEPLOY / "cluster", os.X_OK)
    result = subprocess.run(
        [str(DEPLOY / "cluster"), "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    for command in ("up", "down", "status", "reload-web", "restart-worker", "kill-web"):
        assert command in result.stdout


def test_layout_keeps_deploy_out_of_the_platform_source_folder():
    assert not (ROOT / "platform" / "deploy").exists()
    assert Path(DEPLOY / "__init__.py").exists()


def test_gunicorn_workers_warm_live_models_and_freeze_the_heap_before_serving(
    db, tenant_a, monkeypatch
):
    import gc
    import logging

    from django.db import connections

    from tests.serving.factories import make_served_need
    from workers.runtime import get_runtime

    need = make_served_need(tenant=tenant_a)
    version_id = need.model.aliases.get(name="production").version_id
    runtime = get_runtime()
    runtime.forget()
    conf = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))  # keep the test process as is
    monkeypatch.setattr(connections, "close_all", lambda: None)  # the test's transaction stays

    class Worker:
        log = logging.getLogger("gunicorn.error")

    try:
        conf["post_worker_init"](Worker())
        assert version_id in runtime.loaded_version_ids()
        assert frozen == [True]
    finally:
        runtime.forget()


def test_result_cache_has_a_bounded_redis_of_its_own_and_the_broker_never_evicts():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    environment = services["web1"]["environment"]
    cache_conf = (DEPLOY / "redis" / "cache.conf").read_text()
    broker_conf = (DEPLOY / "redis" / "broker.conf").read_text()

    assert environment["CACHE_REDIS_URL"].startswith("redis://redis-cache:")
    assert environment["REDIS_URL"].startswith("redis://redis:")
    assert any("cache.conf" in volume for volume in services["redis-cache"]["volumes"])
    assert any("broker.conf" in volume for volume in services["redis"]["volumes"])
    assert re.search(r"^maxmemory \d+mb$", cache_conf, re.M)
    assert re.search(r"^maxmemory-policy allkeys-lru$", cache_conf, re.M)
    assert re.search(r"^maxmemory-policy noeviction$", broker_conf, re.M)
    assert re.search(r"^appendonly yes$", broker_conf, re.M)


def test_web_default_is_the_sync_worker_which_keeps_no_connection_to_drain(monkeypatch):
    for name in ("GUNICORN_WORKER_CLASS", "GUNICORN_THREADS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))

    from gunicorn.workers.sync import SyncWorker

    from deploy import gunicorn_worker

    module, name = conf["worker_class"].rsplit(".", 1)
    assert module == "deploy.gunicorn_worker"
    assert issubclass(getattr(gunicorn_worker, name), SyncWorker)
    assert conf["threads"] == 1  # more would make gunicorn switch to gthread


class _RecordingSocket:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def sendall(self, data) -> None:
        self.calls.append(("sendall", bytes(data)))

    def sendfile(self, file, offset=0, count=None) -> int:
        self.calls.append(("sendfile", b""))
        return 0

    def fileno(self) -> int:
        return 99


def test_default_worker_writes_headers_and_body_with_one_call():
    from deploy.gunicorn_worker import HOLD_LIMIT, _HeldWrites

    sock = _RecordingSocket()
    held = _HeldWrites(sock)
    held.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    held.sendall(b"{}")
    assert sock.calls == []  # nothing on the wire before the response is complete
    held.release()
    assert sock.calls == [("sendall", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")]
    assert held.fileno() == 99

    big = _RecordingSocket()
    streamed = _HeldWrites(big)
    streamed.sendall(b"headers\r\n\r\n")
    streamed.sendall(b"x" * (HOLD_LIMIT + 1))  # a download: streams from here on
    streamed.sendall(b"tail")
    streamed.sendfile(None)
    assert [name for name, _ in big.calls] == ["sendall", "sendall", "sendfile"]
    assert big.calls[0][1].startswith(b"headers") and big.calls[1][1] == b"tail"
