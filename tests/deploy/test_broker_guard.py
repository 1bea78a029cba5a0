"""A Redis outage must never kill a worker for good (issue 12.3). After the broker connection
drops, kombu may use a channel of the collected connection: to hand its unacknowledged messages
back (`AttributeError: 'NoneType' object has no attribute 'hostname'`) or to acknowledge a task
that finished after the reconnect (`... attribute 'client'`). Celery treats an AttributeError
as unrecoverable and the worker exited. Both were seen on deploy/cluster during a Redis kill; the
guard installed by the workers app keeps the worker alive and the messages in Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
from django.conf import settings
from kombu import Connection, Exchange, Queue

from workers.broker import BrokerChannelClosed, install_restore_guard


@pytest.fixture
def delivered(requires_redis):
    """A channel holding one delivered, unacknowledged message, whose connection is then
    collected the way a dropped broker connection collects it."""
    install_restore_guard()  # what WorkersConfig.ready() did already; idempotent
    name = f"guard-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    conn = Connection(settings.REDIS_URL)
    channel = conn.channel()
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    conn.Producer(channel=channel).publish(
        {"chunk": 1}, exchange=queue.exchange, routing_key=name, declare=[queue]
    )
    message = channel.basic_get(name, no_ack=False)
    assert message is not None and len(channel.qos._delivered) == 1
    channel._disconnect_pools()
    conn._do_close_transport()
    try:
        yield channel, message, client
    finally:
        channel.close()  # (again: a no-op) so no finalizer runs at interpreter exit
        client.hdel("unacked", *(client.hkeys("unacked") or [b"-"]))
        client.zrem("unacked_index", *(client.zrange("unacked_index", 0, -1) or [b"-"]))
        client.delete(name)
        client.close()


def test_closing_a_channel_after_its_connection_was_collected_keeps_the_message(delivered):
    channel, message, client = delivered

    channel.close()  # without the guard: AttributeError -> "Unrecoverable error", exit

    assert client.hexists("unacked", message.delivery_tag)  # restored after the timeout


def test_acking_on_a_collected_connection_is_a_connection_error_celery_handles(delivered):
    channel, message, client = delivered
    connection_errors = redis.exceptions.ConnectionError  # in kombu's connection_errors

    with pytest.raises(connection_errors) as raised:
        message.ack()  # Celery: ack_log_error catches connection errors ("Couldn't ack")
    transport, channel.connection = channel.connection, None  # the other shape seen
    with pytest.raises(connection_errors):
        message.ack()
    channel.connection = transport

    assert isinstance(raised.value, BrokerChannelClosed)
    assert client.hexists("unacked", message.delivery_tag)
