"""No prediction log line is lost, and none is written twice (outside testing: sync lines were
dropped while Redis was down, and a flusher killed between taking lines out of Redis and writing
them lost up to a batch).

- Redis down (or its write failing): the lines stay in the web process and a timer writes them to
  the database, without anyone calling flush.
- A flusher takes each batch out of the buffer into a key of its own and writes it in one
  transaction with a PredictionLogFlush row; a flusher that died leaves the key, and the next
  flush writes the batch (no row) or drops it (its row exists)."""

from __future__ import annotations

import time

import pytest

from serving import predlog, redis_pool
from serving.models import PredictionLog, PredictionLogFlush
from tests.serving.test_redis_outage import SPORT, private_redis, tag  # noqa: F401

pytestmark = pytest.mark.services


def _logged() -> dict[str, int]:
    counts: dict[str, int] = {}
    for ref in PredictionLog.objects.dangerously_unscoped().values_list("item_ref", flat=True):
        counts[ref] = counts.get(ref, 0) + 1
    return counts


def _wait_logged(refs: set[str], timeout: float = 10.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logged = _logged()
        if refs <= set(logged):
            return logged
        time.sleep(0.05)
    return _logged()


@pytest.mark.django_db(transaction=True)
def test_sync_lines_tagged_while_redis_is_down_reach_the_log_by_themselves(
    private_redis,  # noqa: F811
    settings,
    api_a,
    need_a,
):
    settings.PREDICTION_LOG_FLUSH_SECONDS = 0.2
    settings.SERVING_ASYNC_WRITES = True
    settings.WRITE_BEHIND_SECONDS = 0.05
    assert tag(api_a, [{"id": "up-1", "text": SPORT}]).status_code == 200
    redis_pool.writer.flush()

    private_redis.kill()
    for n in range(5):
        response = tag(api_a, [{"id": f"down-{n}", "text": SPORT}])
        assert response.status_code == 200, response.content

    # Nobody calls flush(): the process writes what Redis did not take.
    logged = _wait_logged({f"down-{n}" for n in range(5)})
    assert {f"down-{n}": 1 for n in range(5)}.items() <= logged.items()

    # Redis back: the line buffered before the outage was lost with Redis (it keeps nothing on
    # disk in this test; production's broker Redis has AOF), new lines go through Redis again.
    private_redis.start()
    redis_pool.reset_outages()
    assert tag(api_a, [{"id": "back-1", "text": SPORT}]).status_code == 200
    redis_pool.writer.flush()
    assert private_redis.client().llen(predlog.BUFFER_KEY) == 1
    predlog.flush()
    assert _logged()["back-1"] == 1


def _line(need, version_id: int, ref: str) -> bytes:
    return predlog.json.dumps(
        {
            "t": time.time(),
            "tn": need.tenant_id,
            "nd": need.pk,
            "mv": version_id,
            "ch": "sync",
            "ref": ref,
            "h": "0" * 64,
            "l": ["news.sport"],
            "s": [0.9],
            "tl": "news.sport",
            "ts": 0.9,
            "a": True,
        }
    ).encode()


def _buffer(client, refs: list[str], need) -> None:
    client.rpush(predlog.BUFFER_KEY, *[_line(need, need.version_id, ref) for ref in refs])


@pytest.fixture
def buffered_need(requires_redis, need_a, model_version):
    client = redis_pool.get_redis()
    client.delete(predlog.BUFFER_KEY, predlog.INFLIGHT_KEY)
    need_a.version_id = model_version.pk
    yield client, need_a
    for key in client.zrange(predlog.INFLIGHT_KEY, 0, -1):
        client.delete(key)
    client.delete(predlog.BUFFER_KEY, predlog.INFLIGHT_KEY)


def _take(client, count: int, *, age: float) -> str:
    """What a flusher does before it writes: the batch moves to a key of its own."""
    key = f"{predlog.INFLIGHT_KEY}:deadflusher{count}"
    take = client.register_script(predlog._TAKE)
    assert len(take(keys=[predlog.BUFFER_KEY, key, predlog.INFLIGHT_KEY], args=[count, 0])) > 0
    client.zadd(predlog.INFLIGHT_KEY, {key: time.time() - age})
    return key


def test_a_flusher_that_died_before_writing_leaves_its_batch_for_the_next(buffered_need):
    client, need = buffered_need
    _buffer(client, [f"d-{n}" for n in range(10)], need)
    key = _take(client, 4, age=predlog.INFLIGHT_STALE_SECONDS + 1)
    assert client.llen(predlog.BUFFER_KEY) == 6 and client.llen(key) == 4
    assert predlog.pending() == 10  # the batch is still counted as pending

    predlog.flush()

    assert _logged() == {f"d-{n}": 1 for n in range(10)}
    assert not client.exists(key) and client.zcard(predlog.INFLIGHT_KEY) == 0


def test_a_flusher_that_died_after_committing_is_not_written_twice(buffered_need):
    client, need = buffered_need
    _buffer(client, [f"c-{n}" for n in range(3)], need)
    key = _take(client, 3, age=predlog.INFLIGHT_STALE_SECONDS + 1)
    # It wrote its batch and committed, then died before deleting the key.
    predlog.write_now(client.lrange(key, 0, -1))
    PredictionLogFlush.objects.create(token=key.rsplit(":", 1)[1], lines=3)

    predlog.flush()

    assert _logged() == {f"c-{n}": 1 for n in range(3)}
    assert not client.exists(key)


def test_a_young_batch_belongs_to_a_live_flusher_and_is_left_alone(buffered_need):
    client, need = buffered_need
    _buffer(client, ["y-1", "y-2"], need)
    key = _take(client, 2, age=1)
    predlog.flush()
    assert _logged() == {}
    assert client.llen(key) == 2


def test_a_database_error_mid_flush_loses_no_line(buffered_need, monkeypatch):
    client, need = buffered_need
    _buffer(client, [f"e-{n}" for n in range(5)], need)
    real = predlog.write_now

    def broken(lines):
        raise predlog.transaction.DatabaseError("connection lost")

    monkeypatch.setattr(predlog, "write_now", broken)
    with pytest.raises(predlog.transaction.DatabaseError):
        predlog.flush()
    assert _logged() == {}
    assert predlog.pending() == 5

    monkeypatch.setattr(predlog, "write_now", real)
    monkeypatch.setattr(predlog, "INFLIGHT_STALE_SECONDS", 0)
    predlog.recover_inflight(client, older_than=0)
    predlog.flush()
    assert _logged() == {f"e-{n}": 1 for n in range(5)}


def test_held_lines_survive_a_database_refusal_and_are_written_later(
    need_a, model_version, monkeypatch
):
    line = _line(need_a, model_version.pk, "held-1")
    monkeypatch.setattr(predlog, "_schedule_local_flush", lambda delay=None: None)
    predlog.keep_locally([line])
    real = predlog.write_now
    monkeypatch.setattr(
        predlog, "write_now", lambda lines: (_ for _ in ()).throw(RuntimeError("db down"))
    )
    assert predlog.flush_local() == 0
    assert len(predlog._local) == 1  # kept, not dropped
    monkeypatch.setattr(predlog, "write_now", real)
    assert predlog.flush_local() == 1
    assert _logged() == {"held-1": 1}
