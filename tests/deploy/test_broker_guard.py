"""A Redis outage must never kill a worker for good (issue 12.3): kombu's hand-back of
unacknowledged messages on a connection that was already collected raised
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which Celery treats as
unrecoverable. The guard installed by the workers app keeps the worker alive and the message in
Redis's unacked index (restored after the visibility timeout)."""

from __future__ import annotations

import uuid

import redis
from django.conf import settings
from kombu import Connection, Exchange, Queue

from workers.broker import install_restore_guard


def test_closing_a_channel_after_its_connection_was_collected_keeps_the_message(
    requires_redis,
):
    install_restore_guard()  # what WorkersConfig.ready() did already; idempotent
    name = f"guard-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    conn = Connection(settings.REDIS_URL)
    try:
        channel = conn.channel()
        queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
        conn.Producer(channel=channel).publish(
            {"chunk": 1}, exchange=queue.exchange, routing_key=name, declare=[queue]
        )
        message = channel.basic_get(name, no_ack=False)
        assert message is not None and len(channel.qos._delivered) == 1
        tag = message.delivery_tag
        # The order a dropped broker connection produced: pools reset, the transport's client
        # released, then the channel closes and hands its unacked message back.
        channel._disconnect_pools()
        conn._do_close_transport()

        channel.close()  # without the guard: AttributeError -> "Unrecoverable error", exit

        assert client.hexists("unacked", tag)  # not lost: restored after the visibility timeout
    finally:
        client.hdel("unacked", *(client.hkeys("unacked") or [b"-"]))
        client.zrem("unacked_index", *(client.zrange("unacked_index", 0, -1) or [b"-"]))
        client.delete(name)
        client.close()
