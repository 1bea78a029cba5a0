#!/usr/bin/env python
"""`make run`: migrate, load the demo, then run web + Celery workers + beat until Ctrl-C; a
process that exits is restarted (with backoff), the others keep running.

Everything uses the embedded defaults (SQLite and a file-system broker under var/) unless the
environment says otherwise. Running it again reuses the database, the demo and the artifacts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def start(name: str, argv: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'platform'}{os.pathsep}{ROOT}")
    # Each child leads its own process group so Ctrl-C is handled once, here, in order.
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
    print(f"  started {name} (pid {proc.pid}): {' '.join(argv)}", flush=True)
    return proc


class Supervisor:
    """Runs the children and restarts one that exits, with a backoff that doubles per quick
    crash (BACKOFF_FIRST ... BACKOFF_MAX seconds) and starts over once a child stayed up for
    STABLE_SECONDS. One crashed process never stops the others."""

    BACKOFF_FIRST = 1.0
    BACKOFF_MAX = 30.0
    STABLE_SECONDS = 60.0

    def __init__(self, specs: dict[str, list[str]], spawn=start) -> None:
        self.specs = specs
        self.spawn = spawn
        self.children: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}
        self.restarts: dict[str, int] = dict.fromkeys(specs, 0)

    def start_all(self) -> None:
        for name in self.specs:
            self._start(name)

    def _start(self, name: str) -> None:
        self.children[name] = self.spawn(name, self.specs[name])
        self.started_at[name] = time.monotonic()

    def check(self) -> None:
        """One supervision step: notice exits, schedule restarts, run the ones that are due."""
        now = time.monotonic()
        for name, proc in self.children.items():
            if name in self.restart_at or proc.poll() is None:
                continue
            end_group(proc)
            if now - self.started_at[name] >= self.STABLE_SECONDS:
                self.backoff[name] = self.BACKOFF_FIRST
            delay = self.backoff.get(name, self.BACKOFF_FIRST)
            self.backoff[name] = min(delay * 2, self.BACKOFF_MAX)
            self.restart_at[name] = now + delay
            print(
                f"!! {name} exited with code {proc.returncode}; restarting it in {delay:.0f} s",
                flush=True,
            )
        for name, due in list(self.restart_at.items()):
            if now >= due:
                del self.restart_at[name]
                self.restarts[name] += 1
                self._start(name)

    def stop_all(self) -> None:
        self.restart_at.clear()
        stop_all(self.children)


def stop_all(children: dict[str, subprocess.Popen]) -> None:
    for name, proc in children.items():
        if proc.poll() is None:
            print(f"  stopping {name}", flush=True)
            # Only the leader: gunicorn and Celery masters shut their own children down warmly.
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for proc in children.values():
        end_group(proc)


def end_group(proc: subprocess.Popen) -> None:
    """A leader that died on its own (kill -9, a crash) can leave its pool processes or
    gunicorn workers behind, holding the port or the broker: end its whole process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    os.chdir(ROOT)
    print("==> Preparing the database and the demo", flush=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    if os.environ.get("LOAD_DEMO", "1") != "0":
        manage("load_demo")

    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    print("==> Starting the platform", flush=True)
    specs: dict[str, list[str]] = {}
    specs["web"] = [
        str(VENV_BIN / "gunicorn"),
        "tagging_platform.wsgi",
        "--bind",
        f"{HOST}:{PORT}",
        "--workers",
        os.environ.get("WEB_CONCURRENCY", "2"),
        "--threads",
        "4",
        # gunicorn's default 2 s closes an idle keep-alive connection while a client (a pooled
        # requests.Session, a browser) may just be sending on it: the client sees a reset. Clients
        # reach this server directly (no nginx), so the server waits longer than they idle.
        "--keep-alive",
        os.environ.get("GUNICORN_KEEPALIVE", "75"),
        "--access-logfile",
        "-",
        "--graceful-timeout",
        "10",
    ]
    # Two workers, as in production's one-per-latency-class: a demo training run (minutes of
    # CPU) never holds the process that serves stream items, queued sync calls and /readyz.
    celery_worker = [str(VENV_BIN / "celery"), "-A", "tagging_platform", "worker"]
    specs["worker-online"] = [
        *celery_worker,
        *("-Q", "online", "--concurrency", "1", "--prefetch-multiplier", "1"),
        *("--loglevel", "INFO", "--hostname", "embedded-online@%h"),
    ]
    specs["worker"] = [
        *celery_worker,
        *("-Q", "batch,training,monitoring", "--concurrency", "2", "--prefetch-multiplier", "1"),
        *("--loglevel", "INFO", "--hostname", "embedded@%h"),
    ]
    specs["beat"] = [
        str(VENV_BIN / "celery"),
        "-A",
        "tagging_platform",
        "beat",
        "--loglevel",
        "INFO",
        "--scheduler",
        "django_celery_beat.schedulers:DatabaseScheduler",
    ]
    supervisor = Supervisor(specs)
    supervisor.start_all()
    from_env = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
    print(
        "\n"
        f"  Tagging Platform is running at http://{HOST}:{PORT}/\n"
        f"  Admin:     http://{HOST}:{PORT}/admin/   login {os.environ.get('DEMO_ADMIN_USERNAME', 'admin')} / {from_env}\n"
        f"  Readiness: http://{HOST}:{PORT}/readyz   API docs: http://{HOST}:{PORT}/api/docs/\n"
        "  Press Ctrl-C to stop everything. A process that exits is restarted.\n",
        flush=True,
    )
    try:
        while not stopping:
            supervisor.check()
            time.sleep(0.5)
    finally:
        print("==> Shutting down", flush=True)
        supervisor.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
