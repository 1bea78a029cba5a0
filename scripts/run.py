#!/usr/bin/env python
"""`make run`: migrate, load the demo, then run web + Celery worker + beat until Ctrl-C.

Everything uses the embedded defaults (SQLite and a file-system broker under var/) unless the
environment says otherwise. Running it again reuses the database, the demo and the artifacts.
"""

from __future__ import annotations

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
    print(f"  starting {name}: {' '.join(argv)}", flush=True)
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'platform'}{os.pathsep}{ROOT}")
    # Each child leads its own process group so Ctrl-C is handled once, here, in order.
    return subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)


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


def main() -> int:
    os.chdir(ROOT)
    print("==> Preparing the database and the demo", flush=True)
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("load_demo")

    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    print("==> Starting the platform", flush=True)
    children["web"] = start(
        "web",
        [
            str(VENV_BIN / "gunicorn"),
            "tagging_platform.wsgi",
            "--bind",
            f"{HOST}:{PORT}",
            "--workers",
            os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "10",
        ],
    )
    children["worker"] = start(
        "worker",
        [
            str(VENV_BIN / "celery"),
            "-A",
            "tagging_platform",
            "worker",
            "-Q",
            "online,batch,training,monitoring",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--hostname",
            "embedded@%h",
        ],
    )
    children["beat"] = start(
        "beat",
        [
            str(VENV_BIN / "celery"),
            "-A",
            "tagging_platform",
            "beat",
            "--loglevel",
            "INFO",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
        ],
    )
    from_env = os.environ.get("DEMO_ADMIN_PASSWORD", "admin")
    print(
        "\n"
        f"  Tagging Platform is running at http://{HOST}:{PORT}/\n"
        f"  Admin:     http://{HOST}:{PORT}/admin/   login {os.environ.get('DEMO_ADMIN_USERNAME', 'admin')} / {from_env}\n"
        f"  Readiness: http://{HOST}:{PORT}/readyz   API docs: http://{HOST}:{PORT}/api/docs/\n"
        "  Press Ctrl-C to stop everything.\n",
        flush=True,
    )
    exit_code = 0
    try:
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    print(
                        f"!! {name} exited with code {proc.returncode}; stopping the rest",
                        flush=True,
                    )
                    stopping, exit_code = True, 1
                    break
            time.sleep(0.5)
    finally:
        print("==> Shutting down", flush=True)
        stop_all(children)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
