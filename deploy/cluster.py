"""The production topology on one machine: nginx -> N gunicorn instances -> PostgreSQL + Redis,
one Celery worker per queue and beat, all started natively (no containers).

Used three ways:
- `deploy/cluster up|down|status|reload-web|restart-web|restart-worker|kill-web|start-web`
  (and `make cluster-up` / `make cluster-down`);
- as a library by the end-to-end tests and the benchmark::

      from deploy.cluster import Cluster
      cluster = Cluster(directory, database_url=..., redis_url=..., nginx_port=0)
      cluster.up()
      ...
      cluster.down()

Every process runs in its own session (process group) with a pid file and a log under the
cluster directory, so a later `deploy/cluster down` from another shell stops exactly what `up`
started and nothing else (each pid is checked against its recorded start time before a signal).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
QUEUES = ("online", "batch", "training", "monitoring")
#: The process that restarts the others when they die (`deploy/cluster supervise`).
SUPERVISOR = "supervisor"
DEFAULT_DIR = ROOT / "var" / "cluster"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/tagging_cluster"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/1"
# Room for the multipart envelope and form fields around an upload of UPLOAD_MAX_BYTES, so the
# app (not nginx) answers uploads near the limit with its own error message.
MULTIPART_ALLOWANCE = 64 * 1024
# Settings inherited from the caller that must not leak into a production-like cluster.
_DROPPED_ENV = ("TESTING", "CELERY_TASK_ALWAYS_EAGER", "DJANGO_ALLOW_ASYNC_UNSAFE")


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


class ClusterError(RuntimeError):
    """Something in the cluster did not start, stop or become healthy in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _process_start_time(pid: int) -> int | None:
    """Clock ticks since boot when `pid` started; None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _process_group(proc: Proc) -> int | None:
    if not proc.alive():
        return proc.pid  # as before: the group a started process led
    try:
        return os.getpgid(proc.pid)
    except ProcessLookupError:
        return proc.pid


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (e.g. gunicorn's or nginx's workers), zombies excluded."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            children.append(int(entry.name))
    return sorted(children)


def http_get(url: str, *, timeout: float = 5.0, headers: dict | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too, connection errors raise OSError."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Proc:
    """One supervised process as its pid file records it: pid and start time (which tell a live
    process from a recycled pid)."""

    name: str
    pid: int | None = None
    started: int | None = None

    def alive(self) -> bool:
        return self.pid is not None and _process_start_time(self.pid) == self.started


@dataclass
class Cluster:
    """The whole topology under one directory. Ports of 0 are replaced by free ones at `up()`."""

    directory: Path = DEFAULT_DIR
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    web_instances: int = 2
    nginx_port: int = 8080
    web_ports: list[int] = field(default_factory=list)
    web_concurrency: int = 2
    host: str = "127.0.0.1"
    upload_max_bytes: int = 20 * 1024 * 1024
    extra_env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable

    def __post_init__(self) -> None:
        self.directory = Path(self.directory).resolve()
        self._popen: dict[str, subprocess.Popen] = {}
        self._drained: set[int] = set()
        self._generation: dict[str, int] = {}

    @classmethod
    def load(cls, directory: Path | str = DEFAULT_DIR) -> Cluster:
        """The cluster that `up()` started in `directory` (possibly from another process)."""
        cluster = cls(Path(directory))
        if not cluster._state_file.exists():
            raise ClusterError(f"no cluster in {cluster.directory} (start one with `up`)")
        cluster._load_state()
        return cluster

    # --- layout -----------------------------------------------------------------------------
    @property
    def _state_file(self) -> Path:
        return self.directory / "cluster.json"

    @property
    def run_dir(self) -> Path:
        return self.directory / "run"

    @property
    def log_dir(self) -> Path:
        return self.directory / "log"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def static_root(self) -> Path:
        return self.data_dir / "static"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def url(self) -> str:
        """The public entry point: nginx."""
        return f"http://{self.host}:{self.nginx_port}"

    def web_url(self, index: int) -> str:
        """One gunicorn instance directly (bypassing nginx), 1-based like the process names."""
        return f"http://{self.host}:{self.web_ports[index - 1]}"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def nginx_access_log(self) -> Path:
        return self.log_dir / "nginx-access.log"

    def web_names(self) -> list[str]:
        return [f"web-{i}" for i in range(1, self.web_instances + 1)]

    def process_names(self) -> list[str]:
        return [*self.web_names(), *(f"worker-{q}" for q in QUEUES), "beat", "nginx"]

    # --- state (so `down` in another shell knows what `up` started) ---------------------------
    def _save_state(self) -> None:
        state = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "web_instances": self.web_instances,
            "nginx_port": self.nginx_port,
            "web_ports": self.web_ports,
            "web_concurrency": self.web_concurrency,
            "host": self.host,
            "upload_max_bytes": self.upload_max_bytes,
            "extra_env": self.extra_env,
            "generation": self._generation,
            "drained": sorted(self._drained),
        }
        self._state_file.write_text(json.dumps(state, indent=2))

    def _load_state(self) -> None:
        state = json.loads(self._state_file.read_text())
        self.database_url = state["database_url"]
        self.redis_url = state["redis_url"]
        self.web_instances = state["web_instances"]
        self.nginx_port = state["nginx_port"]
        self.web_ports = state["web_ports"]
        self.web_concurrency = state["web_concurrency"]
        self.host = state["host"]
        self.upload_max_bytes = state["upload_max_bytes"]
        self.extra_env = state["extra_env"]
        self._generation = state.get("generation", {})
        self._drained = set(state.get("drained", []))

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _read_proc(self, name: str) -> Proc:
        proc = Proc(name=name)
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid, started = self._pidfile(name).read_text().split()
            proc.pid, proc.started = int(pid), int(started)
        return proc

    def pid(self, name: str) -> int | None:
        """The live pid of process `name` (e.g. "web-1", "worker-batch", "nginx"), or None."""
        proc = self._read_proc(name)
        if name in self._popen:
            self._popen[name].poll()  # reap it if it died, so it does not linger as a zombie
        return proc.pid if proc.alive() else None

    # --- environment --------------------------------------------------------------------------
    def _secret_key(self, name: str = "secret_key") -> str:
        path = self.directory / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def metrics_token(self) -> str:
        """The bearer token for /metrics and /readyz's details."""
        return self._secret_key("metrics_token")

    def env(self) -> dict[str, str]:
        """The environment every cluster process gets: production settings on local services."""
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        origins = [f"http://{self.host}:{self.nginx_port}", f"http://localhost:{self.nginx_port}"]
        env.update(
            DJANGO_SETTINGS_MODULE="tagging_platform.settings",
            PYTHONPATH=f"{ROOT / 'platform'}{os.pathsep}{ROOT}",
            DEBUG="0",
            SECRET_KEY=self._secret_key(),
            METRICS_BEARER_TOKEN=self.metrics_token,
            ALLOWED_HOSTS=f"{self.host},localhost",
            CSRF_TRUSTED_ORIGINS=",".join(origins),
            # Plain HTTP on 127.0.0.1: in production TLS ends at nginx (or a balancer before it).
            SECURE_SSL_REDIRECT="0",
            SECURE_HSTS_SECONDS="0",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CELERY_BROKER_URL=self.redis_url,
            CELERY_RESULT_BACKEND=self.redis_url,
            DATA_DIR=str(self.data_dir),
            ARTIFACT_ROOT=str(self.artifact_root),
            STATIC_ROOT=str(self.static_root),
            UPLOAD_MAX_BYTES=str(self.upload_max_bytes),
            WEB_CONCURRENCY=str(self.web_concurrency),
            CELERY_BIN=str(Path(self.python).parent / "celery"),
            CELERY_ONLINE_CONCURRENCY="2",
            CELERY_BATCH_CONCURRENCY="2",
        )
        env.update(self.extra_env)
        return env

    # --- lifecycle ----------------------------------------------------------------------------
    def up(self, *, timeout: float = 120.0) -> None:
        """Prepare the database and static files, start everything, wait until /readyz answers
        200 through nginx. On failure, everything started is stopped again."""
        if shutil.which("nginx") is None:
            raise ClusterError("nginx is not installed: apt-get install -y nginx")
        running = [name for name in [*self.process_names(), SUPERVISOR] if self.pid(name)]
        if running:
            raise ClusterError(
                f"a cluster is already running in {self.directory} ({', '.join(running)}); "
                "stop it first with `deploy/cluster down`"
            )
        for path in (self.run_dir, self.log_dir, self.data_dir, self.directory / "nginx"):
            path.mkdir(parents=True, exist_ok=True)
        if not self.nginx_port:
            self.nginx_port = free_port(self.host)
        if len(self.web_ports) != self.web_instances:
            self.web_ports = [free_port(self.host) for _ in range(self.web_instances)]
        self._drained = set()
        self._save_state()
        try:
            self.ensure_database()
            # Independent of each other, and the slowest part of a start: run them side by side.
            self.manage_parallel(
                ("migrate", "--noinput", "-v", "0"), ("collectstatic", "--noinput", "-v", "0")
            )
            for index in range(1, self.web_instances + 1):
                self.start_web(index, wait=False)
            for queue in QUEUES:
                self.start_worker(queue)
            self._start("beat", ["sh", str(DEPLOY / "celery" / "beat.sh")])
            self._render_nginx()
            self._start("nginx", self._nginx_argv())
            deadline = time.monotonic() + timeout
            for index in range(1, self.web_instances + 1):
                self.wait_web_healthy(index, timeout=max(1.0, deadline - time.monotonic()))
            self.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
            self.start_supervisor()
        except BaseException:
            self.down()
            raise

    def down(self, *, timeout: float = 30.0) -> list[str]:
        """Stop everything: nginx first (no new requests), then web, workers and beat with
        SIGTERM (graceful/warm), SIGKILL for whatever is still alive after `timeout`.
        Returns the names of the processes that had to be killed."""
        self._stop([SUPERVISOR], timeout=timeout)  # first: it would restart what stops next
        killed = self._stop(["nginx"], timeout=timeout)
        rest = [name for name in self.process_names() if name != "nginx"]
        rest += [name for name in self._extra_process_names() if name not in rest]
        killed += self._stop(rest, timeout=timeout)
        return killed

    def _extra_process_names(self) -> list[str]:
        """Pid files beyond the configured set (e.g. from an instance count that was lowered)."""
        if not self.run_dir.exists():
            return []
        return sorted(p.stem for p in self.run_dir.glob("*.pid"))

    def status(self) -> dict[str, dict]:
        """Per process: pid (or None), what the supervisor did (restarts, the pending restart
        and its backoff, or held: stopped on purpose) and, for web instances, the port and
        worker pids. The supervisor itself is the last entry."""
        report: dict[str, dict] = {}
        supervised = self.supervisor_report()
        for name in self.process_names():
            pid = self.pid(name)
            entry: dict = {"pid": pid, "alive": pid is not None}
            record = supervised.get(name, {})
            entry["restarts"] = record.get("restarts", 0)
            entry["last_restart"] = record.get("last_restart")
            entry["restart_at"] = record.get("restart_at") if pid is None else None
            entry["held"] = self._held(name)
            if name.startswith("web-"):
                index = int(name.split("-")[1])
                entry["port"] = self.web_ports[index - 1] if self.web_ports else None
                entry["workers"] = child_pids(pid) if pid else []
                entry["drained"] = index in self._drained
            elif name == "nginx":
                entry["port"] = self.nginx_port
            report[name] = entry
        pid = self.pid(SUPERVISOR)
        report[SUPERVISOR] = {"pid": pid, "alive": pid is not None}
        return report

    # --- supervision --------------------------------------------------------------------------
    def _hold_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.held"

    def _hold(self, name: str) -> None:
        if self.run_dir.exists():
            self._hold_file(name).touch()

    def _release(self, name: str) -> None:
        self._hold_file(name).unlink(missing_ok=True)

    def _held(self, name: str) -> bool:
        return self._hold_file(name).exists()

    @property
    def _supervisor_file(self) -> Path:
        return self.run_dir / "supervisor.json"

    def supervisor_report(self) -> dict[str, dict]:
        """What the supervisor recorded per process: restarts, last_restart (epoch seconds),
        failures in a row, restart_at (epoch seconds of a pending restart) and last_exit."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            return json.loads(self._supervisor_file.read_text())
        return {}

    def restarts(self, name: str) -> int:
        return self.supervisor_report().get(name, {}).get("restarts", 0)

    def start_supervisor(self) -> int:
        """Start `deploy/cluster supervise` for this directory (its own session, pid file, log)."""
        if self.pid(SUPERVISOR):
            raise ClusterError("the supervisor is already running")
        return self._start(
            SUPERVISOR,
            [self.python, str(DEPLOY / "cluster"), "--dir", str(self.directory), "supervise"],
        )

    def _restart(self, name: str) -> None:
        if name.startswith("web-"):
            self.start_web(int(name.split("-")[1]), wait=False)
        elif name.startswith("worker-"):
            self.start_worker(name.split("-", 1)[1])
        elif name == "beat":
            self._start("beat", ["sh", str(DEPLOY / "celery" / "beat.sh")])
        elif name == "nginx":
            self._start("nginx", self._nginx_argv())
        else:
            raise ClusterError(f"cannot restart {name!r}")

    def supervise(self, *, poll: float = 0.5, stop: Callable[[], bool] | None = None) -> None:
        """Restart every process that dies (not one stopped on purpose: `down`, `kill-web`,
        the old worker of a `restart-worker`), with exponential backoff: base x 2^(failures-1)
        up to a maximum, the failures counted anew once a process stayed up for `stable`
        seconds. CLUSTER_RESTART_BACKOFF_SECONDS (1), CLUSTER_RESTART_BACKOFF_MAX_SECONDS (60),
        CLUSTER_RESTART_STABLE_SECONDS (60). Records what it did for `status`."""
        base = float(os.environ.get("CLUSTER_RESTART_BACKOFF_SECONDS", "1"))
        ceiling = float(os.environ.get("CLUSTER_RESTART_BACKOFF_MAX_SECONDS", "60"))
        stable = float(os.environ.get("CLUSTER_RESTART_STABLE_SECONDS", "60"))
        report = self.supervisor_report()
        up_since = {name: time.time() for name in self.process_names()}
        stop = stop or (lambda: False)
        _log(f"supervising {', '.join(self.process_names())} (backoff {base:g}s..{ceiling:g}s)")
        while not stop():
            changed = False
            now = time.time()
            for name in self.process_names():
                record = report.setdefault(name, {"restarts": 0, "failures": 0})
                if self._held(name):
                    if record.pop("restart_at", None) is not None:
                        changed = True
                    continue
                if self.pid(name) is not None:
                    if record.get("failures") and now - up_since.get(name, now) >= stable:
                        record["failures"] = 0
                        changed = True
                    continue
                if record.get("restart_at") is None:
                    record["failures"] = record.get("failures", 0) + 1
                    delay = min(ceiling, base * 2 ** (record["failures"] - 1))
                    record["restart_at"] = now + delay
                    record["last_exit"] = now
                    _log(f"{name} is not running; restart in {delay:g}s")
                    changed = True
                if now >= record["restart_at"]:
                    try:
                        self._restart(name)
                    except (ClusterError, OSError) as exc:
                        _log(f"{name} did not start: {exc}")
                        record["restart_at"] = None  # next round counts a failure, backs off
                    else:
                        record["restarts"] = record.get("restarts", 0) + 1
                        record["last_restart"] = now
                        record.pop("restart_at", None)
                        up_since[name] = now
                        _log(
                            f"{name} restarted (pid {self.pid(name)}, restart {record['restarts']})"
                        )
                    changed = True
            if changed:
                tmp = self._supervisor_file.with_suffix(".tmp")
                tmp.write_text(json.dumps(report, indent=2))
                tmp.replace(self._supervisor_file)
            time.sleep(poll)

    # --- pieces -------------------------------------------------------------------------------
    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a manage.py command with the cluster's environment (e.g. migrate, load_demo);
        returns its output."""
        result = subprocess.run(
            [self.python, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ClusterError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def manage_parallel(self, *commands: tuple[str, ...]) -> None:
        """Several manage.py commands at once; raises with the first failure's output."""
        running = [
            (
                command,
                subprocess.Popen(
                    [self.python, str(ROOT / "manage.py"), *command],
                    cwd=ROOT,
                    env=self.env(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for command in commands
        ]
        failures = []
        for command, process in running:
            _, stderr = process.communicate()
            if process.returncode != 0:
                failures.append(f"manage.py {' '.join(command)} failed:\n{stderr[-3000:]}")
        if failures:
            raise ClusterError("\n".join(failures))

    def ensure_database(self) -> None:
        """Create the PostgreSQL database named in database_url if it does not exist yet."""
        if not self.database_url.startswith(("postgres://", "postgresql://")):
            return
        import psycopg2
        from psycopg2 import sql

        name = database_name(self.database_url)
        conn = psycopg2.connect(with_database(self.database_url, "postgres"), connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()

    def drop_database(self) -> None:
        """Drop the cluster's database (tests do this at the end; the cluster must be down)."""
        import psycopg2
        from psycopg2 import sql

        name = database_name(self.database_url)
        conn = psycopg2.connect(with_database(self.database_url, "postgres"), connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        finally:
            conn.close()

    def _start(self, name: str, argv: list[str], *, extra_env: dict | None = None) -> int:
        self._release(name)
        log = self.log_path(name).open("ab")
        log.write(f"\n==> {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        log.flush()
        env = self.env()
        env.update(extra_env or {})
        # A session of its own: signals from the caller's terminal do not reach it, and a SIGKILL
        # fallback can take its whole process group (gunicorn or Celery pool workers included).
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._popen[name] = popen
        started = None
        for _ in range(100):  # /proc/<pid>/stat appears with the fork; this loop is a formality
            started = _process_start_time(popen.pid)
            if started is not None:
                break
            time.sleep(0.01)
        if started is None:
            raise ClusterError(f"{name} exited at once; see {self.log_path(name)}")
        self._pidfile(name).write_text(f"{popen.pid} {started}\n")
        return popen.pid

    def _signal(self, name: str, signum: int) -> bool:
        pid = self.pid(name)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        return True

    def _wait_gone(self, names: Iterable[str], timeout: float) -> list[str]:
        """Wait until the named processes are gone; return those still alive after `timeout`."""
        names = list(names)
        deadline = time.monotonic() + timeout
        while True:
            alive = [name for name in names if self.pid(name)]
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.1)

    def _stop(self, names: list[str], *, timeout: float) -> list[str]:
        for name in names:
            self._hold(name)  # stopped on purpose: the supervisor must not bring it back
        procs = {name: self._read_proc(name) for name in names}
        # A re-executed gunicorn master (restart-web) is not its process group's leader.
        groups = {name: _process_group(proc) for name, proc in procs.items()}
        for name in names:
            # nginx: QUIT is its graceful shutdown (TERM is the fast one). gunicorn: TERM is
            # graceful. Celery: TERM is the warm shutdown.
            self._signal(name, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        stubborn = self._wait_gone(names, timeout)
        for name in stubborn:
            with contextlib.suppress(ProcessLookupError, PermissionError, TypeError):
                os.killpg(groups[name], signal.SIGKILL)
        self._wait_gone(stubborn, 5.0)
        for name in names:
            if groups[name] is not None:
                # The leader is gone; an orphan left in its group (a pool process whose parent
                # was killed) goes too.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(groups[name], signal.SIGKILL)
            if name in self._popen:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.pop(name).wait(timeout=5)
            self._pidfile(name).unlink(missing_ok=True)
        return stubborn

    # --- web tier -----------------------------------------------------------------------------
    def start_web(self, index: int, *, wait: bool = True, timeout: float = 60.0) -> int:
        """Start gunicorn instance `index` (1-based) on its port; optionally wait for /healthz."""
        name = f"web-{index}"
        if self.pid(name):
            raise ClusterError(f"{name} is already running")
        port = self.web_ports[index - 1]
        multiproc = self.run_dir / "prometheus" / name
        pid = self._start(
            name,
            [
                str(Path(self.python).parent / "gunicorn"),
                "--config",
                str(DEPLOY / "gunicorn.conf.py"),
                "--bind",
                f"{self.host}:{port}",
                "--pid",
                str(self.run_dir / f"{name}.gunicorn.pid"),
                "--name",
                f"tagging-{name}",
            ],
            extra_env={
                "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
                "GUNICORN_READY_DIR": str(self._ready_dir(index)),
            },
        )
        if wait:
            self.wait_web_healthy(index, timeout=timeout)
        return pid

    def kill_web(self, index: int) -> None:
        """SIGKILL gunicorn instance `index`, master and workers, as a crash would; returns once
        every one of its processes is gone."""
        name = f"web-{index}"
        proc = self._read_proc(name)
        if not proc.alive():
            raise ClusterError(f"{name} is not running")
        self._hold(name)  # stays down until start_web (a test of failover, not a crash)
        workers = child_pids(proc.pid)
        # getpgid: after a restart-web the master is a re-executed one, in its first group.
        os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        if name in self._popen:
            self._popen.pop(name).wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_process_start_time(p) for p in [proc.pid, *workers]):
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} survived SIGKILL")
            time.sleep(0.02)
        self._pidfile(name).unlink(missing_ok=True)

    def wait_web_healthy(self, index: int, *, timeout: float = 60.0) -> None:
        name = f"web-{index}"
        self._wait_http(f"{self.web_url(index)}/healthz", name=name, timeout=timeout)

    def wait_ready(self, *, timeout: float = 60.0) -> dict:
        """Wait until /readyz answers 200 through nginx (database, broker round trip through
        the online worker, artifact store); return its report."""
        body = self._wait_http(f"{self.url}/readyz", name="nginx", timeout=timeout)
        return json.loads(body)

    def _wait_http(self, url: str, *, name: str, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.pid(name) is None:
                raise ClusterError(f"{name} died; last lines of its log:\n{self.tail(name)}")
            try:
                status, body = http_get(url, timeout=5)
                if status == 200:
                    return body
                last = f"HTTP {status}: {body[:300]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ClusterError(f"{url} not healthy after {timeout:.0f}s ({last})\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _web_worker_pids(self, index: int) -> list[int]:
        pid = self.pid(f"web-{index}")
        return child_pids(pid) if pid else []

    def _wait_new_workers(self, index: int, old: set[int], timeout: float) -> None:
        """After a HUP: wait until the instance runs its full set of workers, all of them new."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = set(self._web_worker_pids(index))
            if len(workers) >= self.web_concurrency and not workers & old:
                return
            time.sleep(0.1)
        raise ClusterError(f"web-{index} did not replace its workers within {timeout:.0f}s")

    def reload_web(self, *, timeout: float = 60.0, restart: bool = False) -> None:
        """Rolling restart, one instance at a time, without touching nginx.

        HUP (`reload-web`): gunicorn starts new workers (re-read configuration) and the old ones
        finish their requests; all of them share the master's listening socket, so no
        connection is refused or reset. `restart` (`restart-web`, new code): USR2 re-executes
        the master, which loads the code from disk beside the old one and inherits the same
        listening socket; once its workers are warm the old master gets TERM and its workers
        finish what they hold. Either way the port never stops accepting.

        nginx is deliberately not reloaded to drain an instance first: a reload makes nginx's
        old workers close their idle client keep-alive connections, and a client that writes its
        next request into one at that moment gets BrokenPipe / RemoteDisconnected (seen with
        requests.Session clients; issue 12.6). Waits until each instance answers /healthz with
        all-new, warmed workers before the next; stops at the first that does not."""
        for index in range(1, self.web_instances + 1):
            if restart:
                self._reexec_web(index, timeout=timeout)
            else:
                old = set(self._web_worker_pids(index))
                if not self._signal(f"web-{index}", signal.SIGHUP):
                    raise ClusterError(f"web-{index} is not running")
                self._wait_new_workers(index, old, timeout)
                self._wait_workers_ready(index, set(self._web_worker_pids(index)), timeout)
            self.wait_web_healthy(index, timeout=timeout)

    def _ready_dir(self, index: int) -> Path:
        return self.run_dir / "ready" / f"web-{index}"

    def _wait_workers_ready(self, index: int, workers: set[int], timeout: float) -> None:
        """Wait until these worker pids have warmed their models (deploy/gunicorn.conf.py
        touches GUNICORN_READY_DIR/<pid> at the end of post_worker_init)."""
        deadline = time.monotonic() + timeout
        ready_dir = self._ready_dir(index)
        while time.monotonic() < deadline:
            if all((ready_dir / str(pid)).exists() for pid in workers):
                return
            time.sleep(0.1)
        raise ClusterError(f"web-{index}: workers {sorted(workers)} not ready in {timeout:.0f}s")

    def _reexec_web(self, index: int, *, timeout: float) -> None:
        """Replace instance `index`'s master and workers with freshly loaded code, gunicorn's
        USR2 way: the new master is forked by the old one and inherits its listening socket."""
        name = f"web-{index}"
        old = self._read_proc(name)
        if not old.alive():
            raise ClusterError(f"{name} is not running")
        new_pidfile = Path(f"{self.run_dir / f'{name}.gunicorn.pid'}.2")
        new_pidfile.unlink(missing_ok=True)
        os.kill(old.pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        new_pid = None
        while new_pid is None:
            with contextlib.suppress(FileNotFoundError, ValueError):
                new_pid = int(new_pidfile.read_text().strip())
            if time.monotonic() > deadline:
                raise ClusterError(f"{name}: no new master after USR2\n{self.tail(name)}")
            if new_pid is None:
                time.sleep(0.1)
        workers: list[int] = []
        while len(workers) < self.web_concurrency:
            if _process_start_time(new_pid) is None:
                raise ClusterError(f"{name}: the new master died\n{self.tail(name)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{name}: the new master started no workers\n{self.tail(name)}")
            time.sleep(0.1)
            workers = child_pids(new_pid)
        self._wait_workers_ready(index, set(workers), max(1.0, deadline - time.monotonic()))
        # From here on the new master is the instance (the pid file says so before the old one
        # goes, so nobody sees the instance as dead in between).
        self._pidfile(name).write_text(f"{new_pid} {_process_start_time(new_pid)}\n")
        os.kill(old.pid, signal.SIGTERM)
        popen = self._popen.pop(name, None)
        while _process_start_time(old.pid) == old.started:
            if popen is not None:
                popen.poll()  # reap it: a zombie keeps its /proc entry
            if time.monotonic() > deadline + 35:  # gunicorn's graceful_timeout is 30 s
                raise ClusterError(f"{name}: the old master did not exit\n{self.tail(name)}")
            time.sleep(0.1)

    # --- nginx --------------------------------------------------------------------------------
    def _nginx_argv(self) -> list[str]:
        return [
            shutil.which("nginx") or "nginx",
            "-p",
            str(self.directory),
            "-c",
            str(self.directory / "nginx" / "nginx.conf"),
            "-e",
            str(self.log_dir / "nginx-error.log"),
        ]

    def upstream_addresses(self) -> list[str]:
        """host:port of each web instance, as nginx reaches it."""
        return [f"{self.host}:{port}" for port in self.web_ports]

    def _render_nginx(self) -> None:
        addresses = self.upstream_addresses()
        site = render_site(
            upstreams=addresses,
            listen=f"{self.host}:{self.nginx_port}",
            static_root=str(self.static_root),
            upload_max_bytes=self.upload_max_bytes,
            access_log=str(self.nginx_access_log),
            drained=[addresses[index - 1] for index in self._drained],
        )
        main_conf = render_template(
            (DEPLOY / "nginx" / "nginx.conf.template").read_text(),
            {
                "TP_PREFIX": str(self.directory),
                "TP_WORKER_PROCESSES": "2",
                "TP_MIME_TYPES": "/etc/nginx/mime.types",
                "TP_USER_DIRECTIVE": _nginx_user_directive(),
            },
        )
        conf_dir = self.directory / "nginx"
        for target, text in (("tagging-platform.conf", site), ("nginx.conf", main_conf)):
            tmp = conf_dir / f".{target}.tmp"
            tmp.write_text(text)
            tmp.replace(conf_dir / target)  # atomic: a reload never reads half a file

    def nginx_test_config(self) -> str:
        """`nginx -t` on the rendered configuration; raises with nginx's message if invalid."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for path in (self.log_dir, self.run_dir, self.directory / "nginx"):
            path.mkdir(parents=True, exist_ok=True)
        self._render_nginx()
        result = subprocess.run([*self._nginx_argv(), "-t"], capture_output=True, text=True)
        if result.returncode != 0:
            raise ClusterError(result.stderr)
        return result.stderr

    def set_drained(self, drained: set[int], *, timeout: float = 20.0) -> None:
        """Mark these web instances `down` in nginx and reload gracefully. Returns once every
        nginx worker that ran the previous configuration has exited, so no request can reach a
        drained instance any more (in-flight ones have finished)."""
        self._drained = set(drained)
        self._render_nginx()
        master = self.pid("nginx")
        if master is None:
            raise ClusterError("nginx is not running")
        old = set(child_pids(master))
        os.kill(master, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = set(child_pids(master))
            if workers and not workers & old:
                return
            time.sleep(0.05)
        raise ClusterError(f"nginx did not reload within {timeout:.0f}s:\n{self.tail('nginx')}")

    # --- workers ------------------------------------------------------------------------------
    def start_worker(self, queue: str) -> int:
        if queue not in QUEUES:
            raise ClusterError(f"unknown queue {queue!r}; one of {', '.join(QUEUES)}")
        generation = self._bump_generation(queue)
        # A fresh node name per generation: during a restart the old and the new worker overlap.
        node = f"{queue}-{generation}@%h"
        return self._start(
            f"worker-{queue}",
            ["sh", str(DEPLOY / "celery" / "worker.sh"), queue],
            extra_env={"CELERY_NODE_NAME": node},
        )

    def worker_node(self, queue: str) -> str:
        """The node name prefix of the current worker for `queue` (e.g. "batch-2@")."""
        return f"{queue}-{self._current_generation(queue) or 1}@"

    def _generation_file(self, queue: str) -> Path:
        return self.run_dir / f"worker-{queue}.generation"

    def _current_generation(self, queue: str) -> int:
        """A file per queue, not cluster.json: the supervisor (another process) starts workers
        too, and must not overwrite the rest of the state with its stale copy."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(self._generation_file(queue).read_text())
        return self._generation.get(queue, 0)

    def _bump_generation(self, queue: str) -> int:
        generation = self._current_generation(queue) + 1
        self._generation_file(queue).write_text(f"{generation}\n")
        self._generation[queue] = generation
        return generation

    def worker_children(self, queue: str) -> list[int]:
        """The pool processes of the queue's worker (the ones that execute tasks)."""
        pid = self.pid(f"worker-{queue}")
        return child_pids(pid) if pid else []

    def restart_worker(self, queue: str, *, timeout: float = 120.0) -> None:
        """Warm restart without a gap: start a new worker for the queue, wait until it consumes,
        then SIGTERM the old one, which finishes its running tasks and hands reserved messages
        back to Redis before it exits."""
        name = f"worker-{queue}"
        old = self._read_proc(name)
        old_popen = self._popen.pop(name, None)
        self.start_worker(queue)
        self._wait_worker_ready(queue, timeout=timeout)
        if old.alive():
            os.kill(old.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while old.alive():
                if old_popen is not None:
                    old_popen.poll()
                if time.monotonic() > deadline:
                    os.killpg(old.pid, signal.SIGKILL)
                    raise ClusterError(f"{name} (old) ignored the warm shutdown; killed")
                time.sleep(0.1)

    def _wait_worker_ready(self, queue: str, *, timeout: float) -> None:
        """A worker logs "<node> ready." once it consumes; that line is in its log."""
        node = self.worker_node(queue)
        log = self.log_path(f"worker-{queue}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid(f"worker-{queue}") is None:
                raise ClusterError(f"worker-{queue} died:\n{self.tail(f'worker-{queue}')}")
            text = log.read_text(errors="replace") if log.exists() else ""
            if any(node in line and "ready." in line for line in text.splitlines()):
                return
            time.sleep(0.2)
        raise ClusterError(f"worker-{queue} not ready within {timeout:.0f}s")


def _nginx_user_directive() -> str:
    """Workers run as whoever started the cluster. A non-root master cannot switch users anyway;
    a root one would drop to `nobody`, which cannot read a private cluster directory."""
    if os.geteuid() != 0:
        return "# (not root: the workers run as the user who started nginx)"
    import pwd

    return f"user {pwd.getpwuid(os.geteuid()).pw_name};"


def upstream_lines(addresses: Iterable[str], drained: Iterable[str] = ()) -> str:
    """`server` lines for the upstream block: passive health checks on every instance."""
    drained = set(drained)
    return "\n    ".join(
        f"server {address} max_fails=3 fail_timeout=10s{' down' if address in drained else ''};"
        for address in addresses
    )


def render_site(
    *,
    upstreams: list[str],
    listen: str = "80",
    server_name: str = "_",
    static_root: str,
    upload_max_bytes: int = 20 * 1024 * 1024,
    access_log: str = "/var/log/nginx/tagging-access.log",
    drained: Iterable[str] = (),
    metrics_allow: Iterable[str] = ("127.0.0.1",),
) -> str:
    """The nginx site configuration (http context) for these gunicorn instances.
    `metrics_allow`: the addresses/CIDRs (the scrape network) that may read /metrics."""
    values = {
        "TP_UPSTREAM_SERVERS": upstream_lines(upstreams, drained),
        "TP_LISTEN": listen,
        "TP_SERVER_NAME": server_name,
        "TP_STATIC_ROOT": static_root.rstrip("/"),
        "TP_CLIENT_MAX_BODY_SIZE": str(upload_max_bytes + MULTIPART_ALLOWANCE),
        "TP_ACCESS_LOG": access_log,
        "TP_METRICS_ALLOW": " ".join(f"allow {net};" for net in metrics_allow),
    }
    return render_template(
        (DEPLOY / "nginx" / "tagging-platform.conf.template").read_text(), values
    )


def render_template(text: str, values: dict[str, str]) -> str:
    """Fill ${TP_...} placeholders only (like envsubst with a variable list); refuse leftovers."""
    rendered = Template(text).safe_substitute(values)
    leftover = sorted(
        {
            match.group(0)
            for match in Template.pattern.finditer(rendered)
            if (match.group("braced") or "").startswith("TP_")
        }
    )
    if leftover:
        raise ClusterError(f"unfilled placeholders: {', '.join(leftover)}")
    return rendered


# --- command line ---------------------------------------------------------------------------
def _print_status(cluster: Cluster) -> None:
    for name, entry in cluster.status().items():
        state = f"pid {entry['pid']}" if entry["alive"] else "stopped"
        extra = f"  port {entry['port']}" if entry.get("port") else ""
        if entry.get("workers"):
            extra += f"  workers {' '.join(map(str, entry['workers']))}"
        if entry.get("drained"):
            extra += "  (drained)"
        if entry.get("restarts"):
            when = time.strftime("%H:%M:%S", time.localtime(entry["last_restart"]))
            extra += f"  restarted {entry['restarts']}x (last {when})"
        if entry.get("restart_at"):
            extra += f"  restarting in {max(0.0, entry['restart_at'] - time.time()):.0f}s"
        elif entry.get("held") and not entry["alive"]:
            extra += "  (stopped on purpose)"
        if name == SUPERVISOR and not entry["alive"]:
            extra += "  (nothing restarts dead processes: `deploy/cluster supervise`)"
        print(f"  {name:<18} {state:<12}{extra}")


def _up(args) -> Cluster:
    directory = Path(args.dir)
    with contextlib.suppress(ClusterError):
        previous = Cluster.load(directory)
        running = [name for name in previous.process_names() if previous.pid(name)]
        if running:
            raise ClusterError(
                f"already running in {previous.directory} ({', '.join(running)}); "
                "`deploy/cluster down` first"
            )
    cluster = Cluster(
        directory,
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        web_instances=args.web,
        nginx_port=args.port,
        web_ports=[args.web_port + i for i in range(args.web)],
        web_concurrency=args.web_concurrency,
        upload_max_bytes=int(os.environ.get("UPLOAD_MAX_BYTES", str(20 * 1024 * 1024))),
    )
    print(f"==> Starting the cluster in {cluster.directory}", flush=True)
    print(f"    database {cluster.database_url.rsplit('@', 1)[-1]}, redis {cluster.redis_url}")
    cluster.up()
    print(f"\n  Tagging Platform (nginx -> {cluster.web_instances} gunicorn) at {cluster.url}/")
    print(f"  Readiness: {cluster.url}/readyz   API docs: {cluster.url}/api/docs/")
    for index in range(1, cluster.web_instances + 1):
        print(f"  web-{index} directly: {cluster.web_url(index)}/")
    print(f"  Logs: {cluster.log_dir}/   Stop: make cluster-down\n")
    _print_status(cluster)
    return cluster


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="deploy/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default=os.environ.get("CLUSTER_DIR", str(DEFAULT_DIR)))
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start nginx, gunicorn instances, workers and beat")
    up.add_argument("--web", type=int, default=int(os.environ.get("CLUSTER_WEB", "2")))
    up.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", "8080")))
    up.add_argument("--web-port", type=int, default=int(os.environ.get("CLUSTER_WEB_PORT", "8101")))
    up.add_argument(
        "--web-concurrency", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2"))
    )
    sub.add_parser("down", help="stop everything (graceful, then SIGKILL)")
    sub.add_parser("status", help="show the processes, their restarts and /readyz")
    sub.add_parser(
        "supervise", help="restart dead processes with backoff (`up` starts one in background)"
    )
    sub.add_parser("reload-web", help="rolling HUP of the gunicorn instances (config, workers)")
    sub.add_parser("restart-web", help="rolling restart of the gunicorn instances (new code)")
    worker = sub.add_parser("restart-worker", help="warm restart of one queue's worker")
    worker.add_argument("queue", choices=QUEUES)
    render = sub.add_parser(
        "render-nginx", help="print the nginx site config for given instances (bare machines)"
    )
    render.add_argument("--upstream", action="append", required=True, help="host:port, repeat")
    render.add_argument("--listen", default="80")
    render.add_argument("--server-name", default="_")
    render.add_argument("--static-root", required=True, help="STATIC_ROOT of the web machines")
    render.add_argument(
        "--upload-max-bytes", type=int, default=int(os.environ.get("UPLOAD_MAX_BYTES", 20971520))
    )
    render.add_argument("--access-log", default="/var/log/nginx/tagging-access.log")
    render.add_argument(
        "--metrics-allow",
        action="append",
        default=None,
        help="address/CIDR that may scrape /metrics, repeat (default 127.0.0.1)",
    )
    for verb in ("kill-web", "start-web"):
        one = sub.add_parser(verb, help=f"{verb.split('-')[0]} one gunicorn instance (1-based)")
        one.add_argument("index", type=int)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            _up(args)
            return 0
        if args.command == "render-nginx":
            print(
                render_site(
                    upstreams=args.upstream,
                    listen=args.listen,
                    server_name=args.server_name,
                    static_root=args.static_root,
                    upload_max_bytes=args.upload_max_bytes,
                    access_log=args.access_log,
                    metrics_allow=args.metrics_allow or ("127.0.0.1",),
                )
            )
            return 0
        cluster = Cluster.load(args.dir)
        if args.command == "down":
            killed = cluster.down()
            print(
                "  stopped"
                + (f"; killed after the grace period: {', '.join(killed)}" if killed else "")
            )
        elif args.command == "status":
            _print_status(cluster)
            if cluster.pid("nginx"):
                try:
                    status, body = http_get(
                        f"{cluster.url}/readyz",
                        timeout=10,
                        headers={"Authorization": f"Bearer {cluster.metrics_token}"},
                    )
                    print(f"  {cluster.url}/readyz -> {status} {body.decode()[:400]}")
                except OSError as exc:
                    print(f"  {cluster.url}/readyz -> {exc}")
        elif args.command == "supervise":
            stopping = []
            signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
            signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
            cluster.supervise(stop=lambda: bool(stopping))
        elif args.command in ("reload-web", "restart-web"):
            cluster.reload_web(restart=args.command == "restart-web")
            print("  every web instance was reloaded, one at a time")
        elif args.command == "restart-worker":
            cluster.restart_worker(args.queue)
            print(f"  the {args.queue} worker was restarted (warm)")
        elif args.command == "kill-web":
            cluster.kill_web(args.index)
            print(f"  web-{args.index} killed")
        elif args.command == "start-web":
            cluster.start_web(args.index)
            print(f"  web-{args.index} started")
    except ClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    return 0
