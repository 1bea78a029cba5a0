"""The embedded broker: kombu's file-system transport, made safe for concurrent processes.

kombu's own transport (kombu issue #1551) creates a message file under its final name and then
writes it, while a consumer lists the folder, moves the file away (to the system temp folder, a
copy when that is another file system) and reads it at once: a consumer that comes between the
two reads a half-written file, and the JSONDecodeError kills the Celery worker. That took the
embedded `make run` down within seconds of concurrent /readyz calls.

Here a message is written under a temporary name that no queue matches and renamed into place
(`os.replace`, atomic on POSIX), so a consumer only ever sees complete files; a consumer claims
a file with a rename inside the broker folder (atomic too, and exactly one consumer wins); the
exchange tables used for broadcasts are replaced the same way. A file that still cannot be
decoded (left by an older writer, or cut by a full disk) is moved to `bad/` and logged, never
raised into the worker.

Selected by settings (CELERY_BROKER_TRANSPORT) whenever the broker URL is `filesystem://`.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"  # partition(".")[2] of these names never equals "<queue>.msg"


def _write_atomically(path: Path | str, data: bytes) -> None:
    path = Path(path)
    tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ChannelError(f"Cannot write {path}") from exc


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # Same name scheme as kombu (sorted by time of publication), written atomically.
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        _write_atomically(Path(self.data_folder_out) / name, str_to_bytes(dumps(payload)))

    @property
    def _claim_folder(self) -> Path:
        # Beside the queue folder, so that the claiming rename never crosses file systems.
        folder = Path(self.data_folder_in).parent / "claimed"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _get(self, queue):
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = self._claim_folder / name
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another consumer claimed it first
            try:
                raw = claimed.read_bytes()
                message = loads(bytes_to_str(raw))
            except (OSError, ValueError) as exc:
                bad = folder.parent / "bad"
                bad.mkdir(exist_ok=True)
                os.replace(claimed, bad / name)
                logger.error("broker: unreadable message %s moved to %s (%s)", name, bad, exc)
                continue
            claimed.unlink(missing_ok=True)
            return message
        raise Empty()

    # --- exchange tables (fanout: remote control broadcasts) --------------------------------
    def get_table(self, exchange):
        file = self._exchange_file(exchange)
        try:
            table = json.loads(file.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ChannelError(f"Cannot read {file}") from exc
        return [filesystem.exchange_queue_t(*q) for q in table]

    def _rewrite_table(self, exchange, change) -> None:
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        # Writers take a lock on a side file; readers need none, a replace is atomic.
        with open(file.with_name(file.name + ".lock"), "wb") as lock_file:
            filesystem.lock(lock_file, filesystem.LOCK_EX)
            try:
                queues = self.get_table(exchange)
                updated = change(list(queues))
                if updated != queues:
                    _write_atomically(file, str_to_bytes(dumps(updated)))
            finally:
                filesystem.unlock(lock_file)

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        value = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._rewrite_table(exchange, lambda qs: qs if value in qs else [value, *qs])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        # The virtual channel's own bookkeeping, then our table (not kombu's in-place rewrite).
        super(filesystem.Channel, self)._delete(
            queue, exchange, routing_key, pattern, *args, **kwargs
        )
        value = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        if self._exchange_file(exchange).exists():
            self._rewrite_table(exchange, lambda qs: [q for q in qs if q != value])


class Transport(filesystem.Transport):
    Channel = Channel
