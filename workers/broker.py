"""Keep a Redis outage from killing a Celery worker for good.

When the broker connection drops, kombu closes the consumer's channels and hands their delivered
but unacknowledged messages back (`QoS.restore_unacked`). If the connection was already collected
by then, the channel has neither a connection pool nor a transport client to build one from, and
kombu fails with `AttributeError: 'NoneType' object has no attribute 'hostname'` (in
`Channel._connparams`). That error is not one Celery treats as recoverable, so the worker logged
"Unrecoverable error" and exited, while Redis came back seconds later.

Nothing is lost by not handing those messages back at that moment: kombu's Redis transport keeps
every delivered message in its `unacked` index until it is acknowledged, and restores it after the
visibility timeout (batch chunks sooner: the stale-chunk sweeper re-sends them). So the guard logs
and carries on, and the worker reconnects like after any other connection error. Process
supervision (deploy/cluster, systemd `Restart=`, compose `restart:`) covers anything else.
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)


def _connection_gone(qos) -> bool:
    channel = getattr(qos, "channel", None)
    transport = getattr(channel, "connection", None)
    return getattr(channel, "_pool", None) is None and getattr(transport, "client", None) is None


def install_restore_guard() -> None:
    """Patch kombu's Redis `QoS.restore_unacked` once per process (idempotent)."""
    try:
        from kombu.transport import redis as kombu_redis
    except ImportError:  # no redis-py: the embedded file-system broker
        return
    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "tp_guarded", False):
        return

    @functools.wraps(original)
    def restore_unacked(self, client=None):
        try:
            return original(self, client)
        except AttributeError:
            if client is not None or not _connection_gone(self):
                raise
            logger.warning(
                "broker connection already closed: %d unacknowledged message(s) stay in Redis's "
                "unacked index and come back after the visibility timeout",
                len(self._delivered),
            )
            self._delivered.clear()
            return None

    restore_unacked.tp_guarded = True
    kombu_redis.QoS.restore_unacked = restore_unacked
