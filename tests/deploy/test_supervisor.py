"""deploy/cluster supervises its children (issue 12.3): a process that dies is restarted with
exponential backoff and `status` says so; one stopped on purpose stays down. Runs a stand-in
process (`sleep`) under the real supervision loop, so it needs no services."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from deploy.cluster import SUPERVISOR, Cluster


class OneProcessCluster(Cluster):
    """The real Cluster bookkeeping (pid files, holds, supervisor records) around one process."""

    def process_names(self) -> list[str]:
        return ["beat"]

    def _restart(self, name: str) -> None:
        self._start(name, ["sleep", "600"])


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


@pytest.fixture
def supervised(tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSTER_RESTART_BACKOFF_SECONDS", "0.2")
    monkeypatch.setenv("CLUSTER_RESTART_BACKOFF_MAX_SECONDS", "5")
    cluster = OneProcessCluster(tmp_path)
    cluster.run_dir.mkdir(parents=True)
    cluster.log_dir.mkdir(parents=True)
    cluster._start("beat", ["sleep", "600"])
    stop = threading.Event()
    thread = threading.Thread(
        target=cluster.supervise, kwargs={"poll": 0.02, "stop": stop.is_set}, daemon=True
    )
    thread.start()
    try:
        yield cluster
    finally:
        stop.set()
        thread.join(timeout=5)
        cluster._stop(["beat"], timeout=5)


def test_a_dead_process_is_restarted_with_growing_backoff_and_status_says_so(supervised):
    first = supervised.pid("beat")
    os.kill(first, signal.SIGKILL)
    second = wait_until(lambda: (p := supervised.pid("beat")) and p != first and p)
    os.kill(second, signal.SIGKILL)
    third = wait_until(lambda: (p := supervised.pid("beat")) and p != second and p)

    record = supervised.supervisor_report()["beat"]
    status = supervised.status()
    assert third not in (first, second)
    assert record["restarts"] == 2 and record["failures"] == 2
    # Two deaths in a row: the second restart waited twice the base delay.
    assert record["last_restart"] - record["last_exit"] >= 0.4 - 0.05
    assert status["beat"]["alive"] and status["beat"]["restarts"] == 2
    assert status["beat"]["last_restart"] == record["last_restart"]
    assert supervised.restarts("beat") == 2
    assert SUPERVISOR in status  # (not running here: the test runs the loop in a thread)


def test_a_process_stopped_on_purpose_stays_down(supervised):
    supervised._stop(["beat"], timeout=5)
    time.sleep(0.5)  # more than the backoff: a restart would have happened

    assert supervised.pid("beat") is None
    assert supervised.status()["beat"]["held"] is True
    assert supervised.restarts("beat") == 0

    supervised._start("beat", ["sleep", "600"])  # starting it again ends the hold
    assert not supervised.status()["beat"]["held"]
