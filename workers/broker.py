"""Keep a Redis outage from killing a Celery worker for good.

When the broker connection drops, kombu collects the consumer's connection while channels of it
are still in use. Two calls on such a channel then need a new Redis client, and kombu builds its
parameters from the transport that is already gone (`Channel._connparams`):
- handing the channel's unacknowledged messages back (`QoS.restore_unacked`, on close):
  `AttributeError: 'NoneType' object has no attribute 'hostname'`;
- acknowledging a task that was running during the outage and finished after the reconnect
  (`QoS.ack`): `AttributeError: 'NoneType' object has no attribute 'client'`.
Celery does not treat an AttributeError as a connection error, so the worker logged
"Unrecoverable error" and exited while Redis was back.

The guard turns that case into what it is, a connection error (`BrokerChannelClosed`, a
redis-py ConnectionError, which Celery handles: "Couldn't ack ..." and carry on), and lets the
hand-back on close log and continue. Nothing is lost either way: kombu's Redis transport keeps
every delivered message in its `unacked` index until it is acknowledged and restores it after
the visibility timeout (batch chunks sooner: the stale-chunk sweeper; a chunk found done is a
no-op). Process supervision (deploy/cluster, systemd `Restart=`, compose `restart:`) covers
anything else.
"""

from __future__ import annotations

import functools
import logging

logger = logging.getLogger(__name__)

try:
    from redis.exceptions import ConnectionError as _RedisConnectionError
except ImportError:  # no redis-py: the embedded file-system broker
    _RedisConnectionError = ConnectionError


class BrokerChannelClosed(_RedisConnectionError):
    """A kombu Redis channel was used after its connection had been closed."""


def install_restore_guard() -> None:
    """Patch kombu's Redis `Channel._connparams` and `QoS.restore_unacked` once (idempotent)."""
    try:
        from kombu.transport import redis as kombu_redis
    except ImportError:
        return
    connparams = kombu_redis.Channel._connparams
    if getattr(connparams, "tp_guarded", False):
        return

    @functools.wraps(connparams)
    def guarded_connparams(self, asynchronous=False):
        transport = self.connection
        if transport is None or getattr(transport, "client", None) is None:
            raise BrokerChannelClosed("the broker connection of this channel was already closed")
        return connparams(self, asynchronous=asynchronous)

    restore_unacked = kombu_redis.QoS.restore_unacked

    @functools.wraps(restore_unacked)
    def guarded_restore_unacked(self, client=None):
        try:
            return restore_unacked(self, client)
        except BrokerChannelClosed:
            logger.warning(
                "broker connection already closed: %d unacknowledged message(s) stay in Redis's "
                "unacked index and come back after the visibility timeout",
                len(self._delivered),
            )
            self._delivered.clear()
            return None

    guarded_connparams.tp_guarded = True
    kombu_redis.Channel._connparams = guarded_connparams
    kombu_redis.QoS.restore_unacked = guarded_restore_unacked
