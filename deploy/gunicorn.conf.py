"""gunicorn settings for one web instance behind nginx (`gunicorn -c deploy/gunicorn.conf.py`).

Every value can be overridden from the environment (or on the command line, which wins over this
file). nginx's upstream keepalive depends on `keepalive` below staying above nginx's idle timeout.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Imported here, at start-up, not in child_exit: that hook runs inside the SIGCHLD handler, and a
# first import there can re-enter a half-imported module (seen during rolling HUPs).
from prometheus_client import multiprocess

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for deploy.gunicorn_worker, loaded before `pythonpath` applies
# The project lives in the plain source folder platform/ (see STYLE.md), next to top-level apps.
pythonpath = f"{ROOT / 'platform'},{ROOT}"
wsgi_app = "tagging_platform.wsgi:application"
proc_name = os.environ.get("GUNICORN_PROC_NAME", "tagging-web")

bind = [os.environ.get("GUNICORN_BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"]
# Which proxies may set X-Forwarded-* (nginx: same host by default; its address in Docker).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Inline inference is CPU-bound and the GIL serialises it within a process, so the default is
# a sync worker: one request per process at a time, no threads contending for the GIL.
# Measured against 3 x 4 gthread on the same machine (docs/benchmarks.md, "Web worker class"):
# better p99 at every concurrency. A sync worker also answers `Connection: close`, so nginx never
# keeps an idle connection to it, and no restart (HUP, TERM, max_requests) can close one that nginx
# is sending a request into: there is nothing to drain. nginx buffers request and response
# bodies, so a slow client never holds a process. `WEB_CONCURRENCY` defaults to one process per
# core: measured, a third process on two cores worsened p99 more than it filled I/O waits.
# Needs with `execution=queue` hold a process while they wait for the online queue: with many of
# them, choose the threaded worker that drains its kept-alive connections instead:
# GUNICORN_WORKER_CLASS=deploy.gunicorn_worker.DrainingThreadWorker GUNICORN_THREADS=4.
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
# (gunicorn's sync worker, writing each response at once: deploy/gunicorn_worker.py)
worker_class = os.environ.get(
    "GUNICORN_WORKER_CLASS", "deploy.gunicorn_worker.WholeResponseSyncWorker"
)
# gunicorn turns a sync worker with threads > 1 into gthread; 1 keeps it sync.
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# The app (Django, scikit-learn) is imported once in the master and shared copy-on-write.
# Consequence: HUP recycles workers and re-reads this file but does NOT load new code; deploy
# new code with a rolling restart (deploy/cluster restart-web, or systemctl restart per instance).
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"

# Recycle workers now and then (bounded memory growth from model caches and fragmentation); the
# jitter keeps all workers from restarting at the same moment.
# Not too often: a recycled worker reloads and re-warms its models before it serves again.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", str(max_requests // 10)))

# A worker silent for `timeout` seconds is killed: for a sync worker that is one request running
# that long (above nginx's proxy_read_timeout, so nginx gave up first); for gthread, a stuck loop. On TERM/HUP a worker gets
# `graceful_timeout` seconds to finish its requests.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Above nginx's upstream keepalive_timeout (5 s), so nginx always closes idle connections first;
# also how long a stopping worker waits for nginx to do so (deploy/gunicorn_worker.py).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "10"))

# The worker heartbeat file on tmpfs: a slow disk (or Docker's overlayfs) must not look like a hang.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Latency in seconds (%(L)s) and milliseconds (%(M)s), and the request id the app answered with
# (nginx's id, or one the app made), which is also on every application log line.
access_log_format = (
    '%(h)s "%(r)s" %(s)s %(b)s %(L)ss %(M)sms rid=%({x-request-id}o)s pid=%(p)s "%(a)s"'
)


def on_starting(server) -> None:
    """Start with an empty Prometheus multiprocess directory: stale files would be summed in."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()


def pre_fork(server, worker) -> None:
    """Close, in the master, any database connection the preloaded app opened: a socket shared
    with forked workers would interleave their queries. (Closing it in a child instead would
    terminate the session under everybody.)"""
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def child_exit(server, worker) -> None:
    """Tell prometheus_client that this worker's live gauges are gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """Before a worker takes its first request: load and warm the live needs' models (the first
    request must not pay for it), then move everything alive so far into the garbage collector's
    permanent generation. Django, scikit-learn and the models are some 190,000 tracked objects;
    a full collection over them stalls a request for ~100 ms, and they never become garbage."""
    import gc

    from django.conf import settings

    from workers.runtime import warm_at_process_start

    # Bounded (SERVING_WARM_SECONDS, below `timeout`): a worker still loading is never killed.
    warm_at_process_start(budget_seconds=settings.SERVING_WARM_SECONDS)
    gc.freeze()
    ready_dir = os.environ.get("GUNICORN_READY_DIR")
    if ready_dir:  # deploy/cluster waits for these before it retires an old master
        Path(ready_dir).mkdir(parents=True, exist_ok=True)
        (Path(ready_dir) / str(os.getpid())).touch()


def worker_exit(server, worker) -> None:
    ready_dir = os.environ.get("GUNICORN_READY_DIR")
    if ready_dir:
        (Path(ready_dir) / str(worker.pid)).unlink(missing_ok=True)
