"""`make run` (scripts/run.py) on the embedded defaults: it survives concurrent /readyz calls (the
file-system broker once crashed its worker), and a child that dies is restarted, not the end."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import run  # noqa: E402  (scripts/run.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, timeout: float = 15) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout} s")


class Output:
    """run.py's output, read on a thread."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def pid_of(self, name: str) -> int:
        pids = re.findall(rf"started {name} \(pid (\d+)\)", self.text)
        return int(pids[-1])


@pytest.fixture
def make_run(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    }
    env.update(
        DATA_DIR=str(tmp_path / "var"),
        PORT=str(port),
        LOAD_DEMO="0",  # no demo training competing for the CPU; the processes are the same
        WEB_CONCURRENCY="2",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = Output(proc)
    try:
        yield proc, port, output
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_embedded_run_survives_a_readyz_hammer_and_restarts_a_killed_worker(make_run):
    proc, port, output = make_run
    wait_until(lambda: get(port, "/readyz")[0] == 200, 180, "/readyz ok")

    # The repro (`seq 1 400 | xargs -P4 curl …/readyz`) crashed it within seconds; 8 at a time here.
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: get(port, "/readyz")[0], range(200)))
    assert codes.count(200) == 200, {c: codes.count(c) for c in set(codes)}
    assert "exited" not in output.text  # no child crashed
    assert get(port, "/readyz")[1]["checks"]["broker"]["ok"]

    # A keep-alive connection left idle longer than gunicorn's 2 s default is still open: the
    # server must not close it under a client that is about to send (a reset in the soak).
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        for pause in (0, 3.5):
            time.sleep(pause)
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            assert response.status == 200 and response.read()
            assert response.getheader("Connection", "").lower() != "close"
    finally:
        conn.close()

    # The worker that answers /readyz's ping, killed outright: it comes back by itself.
    worker = output.pid_of("worker-online")
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: "worker-online exited with code -9; restarting" in output.text, 30, "notice")
    wait_until(lambda: output.pid_of("worker-online") != worker, 30, "a new worker")
    wait_until(lambda: get(port, "/readyz")[0] == 200, 90, "/readyz ok after the restart")
    assert proc.poll() is None  # web and beat kept running throughout

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=40) == 0


def sleeper(code: int | None = None) -> list[str]:
    script = "import time; time.sleep(60)" if code is None else f"raise SystemExit({code})"
    return [sys.executable, "-c", script]


def quiet_start(name: str, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, start_new_session=True)


def test_supervisor_restarts_a_crashing_child_with_growing_backoff(monkeypatch):
    supervisor = run.Supervisor({"steady": sleeper(), "crashy": sleeper(3)}, spawn=quiet_start)
    supervisor.BACKOFF_FIRST, supervisor.BACKOFF_MAX = 0.2, 0.8
    supervisor.start_all()
    steady = supervisor.children["steady"]
    restart_times = []
    try:
        deadline = time.monotonic() + 20
        while supervisor.restarts["crashy"] < 4 and time.monotonic() < deadline:
            before = supervisor.restarts["crashy"]
            supervisor.check()
            if supervisor.restarts["crashy"] != before:
                restart_times.append(time.monotonic())
            time.sleep(0.02)
        assert supervisor.restarts["crashy"] == 4
        gaps = [b - a for a, b in zip(restart_times, restart_times[1:], strict=False)]
        assert gaps[0] < gaps[-1]  # 0.4 s, then 0.8 s (capped): backing off, never stopping
        assert supervisor.children["steady"] is steady and steady.poll() is None
        assert supervisor.restarts["steady"] == 0
    finally:
        supervisor.stop_all()
    assert steady.poll() is not None
