"""The embedded broker survives concurrent publishers (kombu #1551 killed the `make run` worker)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kombu import Connection

from tagging_platform import embedded_broker

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 3
PER_WRITER = 300

PUBLISHER = """
import sys
from kombu import Connection
folder, transport, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": folder + "-ctl"}
with Connection("filesystem://", transport=transport, transport_options=options) as conn:
    queue = conn.SimpleQueue("work")
    for i in range(n):
        queue.put({"id": f"{tag}-{i}", "pad": "x" * 200_000})
"""


def drain(transport: str, tmp_path: Path) -> set[str]:
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "queue-ctl"),
        "polling_interval": 0.01,
    }
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, str(folder), transport, str(PER_WRITER), f"w{n}"],
            cwd=ROOT,
            env={"PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}", "PATH": "/usr/bin:/bin"},
        )
        for n in range(WRITERS)
    ]
    seen: set[str] = set()
    try:
        with Connection("filesystem://", transport=transport, transport_options=options) as conn:
            queue = conn.SimpleQueue("work")
            deadline = time.monotonic() + 120
            while len(seen) < WRITERS * PER_WRITER and time.monotonic() < deadline:
                try:
                    message = queue.get(timeout=0.01)
                except queue.Empty:
                    continue
                seen.add(message.payload["id"])
                message.ack()
    finally:
        for writer in writers:
            writer.wait(timeout=60)
    return seen


def test_a_consumer_never_reads_a_half_written_message(tmp_path):
    transport = f"{embedded_broker.__name__}:Transport"
    seen = drain(transport, tmp_path)
    assert seen == {f"w{n}-{i}" for n in range(WRITERS) for i in range(PER_WRITER)}
    assert not list((tmp_path / "queue").iterdir())  # nothing left behind, no temp files
    assert not (tmp_path / "bad").exists()


def test_an_unreadable_message_is_set_aside_not_raised(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    (folder / "1_cut.other.msg").write_bytes(b'{"body": "trunc')
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "ctl"),
        "polling_interval": 0.01,
    }
    transport = f"{embedded_broker.__name__}:Transport"
    with Connection("filesystem://", transport=transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("other")
        queue.put({"id": "after"})
        assert queue.get(timeout=10).payload == {"id": "after"}
        with pytest.raises(queue.Empty):
            queue.get(timeout=0.05)
    assert [p.name for p in (tmp_path / "bad").iterdir()] == ["1_cut.other.msg"]
