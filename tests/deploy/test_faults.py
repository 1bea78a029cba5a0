"""Fault injection on the real topology (issue 12, "Must hold", batch part): the batch worker's
main process SIGKILLed, a pool process SIGKILLed, and the cluster's Redis killed and restarted,
each in the middle of a batch job. Every case must end, without anyone touching it, with exactly
one result and exactly one prediction-log line per item.

The cluster runs with leases of 8 s, a stale-chunk sweep every 2 s and a supervisor restarting
dead processes after 1 s (tests/deploy/conftest.py), which bounds each case to seconds."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from deploy.cluster import _process_start_time, child_pids
from tests.deploy.test_end_to_end import VOCABULARY, Client, _text, training_csv, wait_until

pytestmark = pytest.mark.cluster

STAFF, PASSWORD = "faults-ops", "faults-ops-password"
TENANT, NEED = "fault-news", "fault-topics"


@dataclass
class Batch:
    cluster: object
    service: Client

    def sql(self, query: str, args=()) -> list[tuple]:
        conn = psycopg2.connect(self.cluster.database_url, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall()
        finally:
            conn.close()

    def submit(self, prefix: str, count: int) -> tuple[int, list[str]]:
        rng = random.Random(prefix)
        rows = [(f"{prefix}-{i}", _text(list(VOCABULARY)[i % 5], rng)) for i in range(count)]
        body = "\n".join(json.dumps({"id": i, "text": t}) for i, t in rows).encode()
        job = self.service.post(
            "/api/v1/batch-jobs",
            data={"need": NEED},
            files={"file": ("docs.jsonl", body, "application/x-ndjson")},
            expect=201,
        ).json()
        return job["id"], [i for i, _ in rows]

    def job(self, job_id: int) -> dict:
        # Straight from the database: during a Redis outage the API's answers are another
        # issue's subject (degraded mode); this test is about the batch work itself.
        status, done, total = self.sql(
            "SELECT status, done_items, total_items FROM serving_batchjob WHERE id = %s", [job_id]
        )[0]
        return {"status": status, "done_items": done, "total_items": total}

    def wait_mid_job(self, job_id: int) -> None:
        wait_until(
            lambda: 0 < self.job(job_id)["done_items"] < self.job(job_id)["total_items"] // 2,
            timeout=60,
            interval=0.05,
            what="the batch job to be under way",
        )

    def wait_finished(self, job_id: int, timeout: float = 120) -> dict:
        return wait_until(
            lambda: (j := self.job(job_id))["status"] in ("succeeded", "failed", "cancelled") and j,
            timeout=timeout,
            interval=0.25,
            what=f"batch job {job_id} to finish by itself",
        )

    def assert_exactly_once(self, job_id: int, ids: list[str]) -> None:
        finished = self.job(job_id)
        assert finished["status"] == "succeeded", finished
        assert finished["done_items"] == finished["total_items"] == len(ids)
        lines = self.service.get(
            f"/api/v1/batch-jobs/{job_id}/results/?format=jsonl", expect=200
        ).text.splitlines()
        results = [json.loads(line)["id"] for line in lines if line.strip()]
        assert sorted(results) == sorted(ids)  # every item, exactly once
        logged = dict(
            self.sql(
                "SELECT item_ref, count(*) FROM serving_predictionlog "
                "WHERE channel = 'batch' AND item_ref LIKE %s GROUP BY item_ref",
                [ids[0].rsplit("-", 1)[0] + "-%"],
            )
        )
        assert sorted(logged) == sorted(ids), f"{len(ids) - len(logged)} log lines lost"
        assert set(logged.values()) == {1}, "a log line was written twice"


def setup_batch_platform(cluster) -> Batch:
    """Staff user, taxonomy, tenant, API key, need, a trained and promoted model, live need
    (all through the API but the first two); bench/recovery_bench.py uses it too."""
    cluster.manage(
        "shell",
        "-c",
        "import sys; from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_superuser('{STAFF}', 'f@example.com', '{PASSWORD}');"
        "from taxonomy.demo import load_taxonomy; load_taxonomy(sys.stdout)",
    )
    staff = Client(cluster.url)
    staff.get("/login/", expect=200)
    staff.post(
        "/login/",
        data={
            "username": STAFF,
            "password": PASSWORD,
            "csrfmiddlewaretoken": staff.cookies["csrftoken"],
        },
        allow_redirects=False,
        expect=302,
    )
    staff.headers["X-CSRFToken"] = staff.cookies["csrftoken"]
    staff.headers["X-Tenant"] = TENANT
    staff.post(
        "/api/v1/tenants/",
        json={"slug": TENANT, "name": "Fault news", "quota_requests_per_minute": 0},
        expect=201,
    )
    staff.post(
        f"/api/v1/tenants/{TENANT}/memberships/",
        json={"username": STAFF, "role": "admin"},
        expect=201,
    )
    key = staff.post(
        f"/api/v1/tenants/{TENANT}/keys/",
        json={"name": "faults", "scopes": ["needs", "tag", "batch", "read"]},
        expect=201,
    ).json()["key"]
    service = Client(cluster.url)
    service.headers["Authorization"] = f"Api-Key {key}"
    service.post(
        "/api/v1/needs/",
        json={"slug": NEED, "name": "Fault topics", "label_set": "news-topics"},
        expect=201,
    )
    staff.post(f"/api/v1/tenants/{TENANT}/needs/{NEED}/approve/", expect=200)
    service.post(
        "/api/v1/datasets/upload/",
        data={"label_set": "news-topics"},
        files={"file": ("train.csv", training_csv(seed=5), "text/csv")},
        expect=201,
    )
    run = service.post(
        "/api/v1/training-runs/",
        json={"need": NEED, "algorithm": "tfidf-logreg", "promote_to": "production"},
        expect=201,
    ).json()
    done = wait_until(
        lambda: (
            (r := service.get(f"/api/v1/training-runs/{run['id']}/", expect=200).json())["status"]
            in ("succeeded", "failed")
            and r
        ),
        timeout=120,
        what="the training run",
    )
    assert done["status"] == "succeeded", done["error"]
    service.post(f"/api/v1/needs/{NEED}/go-live/", expect=200)
    return Batch(cluster=cluster, service=service)


@pytest.fixture(scope="module")
def batch(cluster) -> Batch:
    return setup_batch_platform(cluster)


def test_batch_worker_main_process_sigkilled_mid_job_heals_by_itself(cluster, batch):
    job_id, ids = batch.submit("main", 200)
    batch.wait_mid_job(job_id)
    main = cluster.pid("worker-batch")
    pool = child_pids(main)
    restarts = cluster.restarts("worker-batch")

    # The main process, and its pool processes with it (as an OOM kill of the whole worker or a
    # lost machine would): the chunks in progress keep claims nobody will finish, and their
    # messages sit in Redis's unacked index until the visibility timeout (7,200 s).
    os.kill(main, signal.SIGKILL)
    for pid in pool:
        if _process_start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)

    batch.wait_finished(job_id)
    batch.assert_exactly_once(job_id, ids)
    # The supervisor brought the worker back; `status` says so.
    status = cluster.status()["worker-batch"]
    assert status["alive"] and status["pid"] != main
    assert status["restarts"] == restarts + 1
    # The orphaned chunks came back through the sweeper once their leases ran out.
    assert "re-queueing" in cluster.log_path("worker-online").read_text()


def test_batch_pool_process_sigkilled_mid_chunk_is_taken_over_without_waiting_the_lease(
    cluster, batch
):
    job_id, ids = batch.submit("pool", 100)
    batch.wait_mid_job(job_id)
    running = wait_until(
        lambda: batch.sql(
            "SELECT id, lease_until FROM serving_batchchunk "
            "WHERE job_id = %s AND status = 'running'",
            [job_id],
        ),
        timeout=30,
        interval=0.05,
        what="a chunk in progress",
    )
    victims = cluster.worker_children("batch")
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    batch.wait_finished(job_id)
    batch.assert_exactly_once(job_id, ids)
    # The interrupted chunks were claimed again before the dead claims' leases ran out: the
    # redelivered message (same task id) took them over at once.
    retaken = dict(
        batch.sql(
            "SELECT id, claimed_at FROM serving_batchchunk WHERE id = ANY(%s) AND attempts > 1",
            [[chunk_id for chunk_id, _ in running]],
        )
    )
    assert retaken, "no interrupted chunk was claimed a second time"
    leases = dict(running)
    assert all(claimed < leases[chunk] for chunk, claimed in retaken.items())


def test_redis_killed_and_restarted_mid_job_loses_nothing_and_no_worker(
    cluster, cluster_redis, batch
):
    job_id, ids = batch.submit("redis", 200)
    batch.wait_mid_job(job_id)
    workers = {name: cluster.pid(name) for name in cluster.process_names()}
    logs = {q: cluster.log_path(f"worker-{q}").stat().st_size for q in ("batch", "online")}

    cluster_redis.kill()
    time.sleep(3)  # an outage, not a blip: every client notices
    cluster_redis.start()

    batch.wait_finished(job_id)
    batch.assert_exactly_once(job_id, ids)
    cluster.wait_ready(timeout=60)
    # No worker died for good; none needed the supervisor either.
    for name, pid in workers.items():
        if name.startswith("worker-"):
            assert cluster.pid(name) == pid, (
                f"{name} was restarted:\n{cluster.tail('supervisor')}\n{cluster.tail(name, 80)}"
            )
    for queue, offset in logs.items():
        with cluster.log_path(f"worker-{queue}").open() as log:
            log.seek(offset)
            assert "Unrecoverable error" not in log.read()


# --- Training-queue work killed mid-run ------------------------------------------------------
# A training run, a retrain and an optimisation run each hold a claim (a compare-and-set on their
# row) while a worker executes them. When the worker's pool process dies, Celery hands the message
# back (acks_late + reject_on_worker_lost) and it is delivered again at once: that delivery must
# take the work over, not find the dead worker's claim and drop the message, which left the run
# "running" for good.


def _slow_fits(cluster, seconds: float | None) -> None:
    """While set, every fit on the training worker takes `seconds` longer (slow_training.py)."""
    path = Path(cluster.extra_env["TEST_TRAINING_DELAY_FILE"])
    if seconds is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(f"{seconds}\n")


def _kill_training_pool(cluster) -> None:
    victims = cluster.worker_children("training")
    assert victims, "the training worker has no pool process"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)


def _wait_sql(batch: Batch, query: str, args, *, timeout: float, what: str):
    return wait_until(lambda: batch.sql(query, args), timeout=timeout, interval=0.1, what=what)


def test_training_pool_process_sigkilled_mid_fit_trains_again_by_itself(cluster, batch):
    _slow_fits(cluster, 6)
    try:
        run = batch.service.post(
            "/api/v1/training-runs/", json={"need": NEED, "algorithm": "tfidf-logreg"}, expect=201
        ).json()
        # The fit has started (the log says so) and is in its slow part.
        _wait_sql(
            batch,
            "SELECT 1 FROM registry_trainingrun WHERE id = %s AND status = 'running' "
            "AND log LIKE %s",
            [run["id"], "% train / %"],
            timeout=60,
            what="the run to be fitting",
        )
        time.sleep(1.0)
        _kill_training_pool(cluster)
    finally:
        _slow_fits(cluster, None)

    done = wait_until(
        lambda: (
            (r := batch.service.get(f"/api/v1/training-runs/{run['id']}/", expect=200).json())[
                "status"
            ]
            in ("succeeded", "failed")
            and r
        ),
        timeout=120,
        what="the interrupted training run to finish by itself",
    )
    assert done["status"] == "succeeded", done["error"] or done["log"]
    versions = batch.sql(
        "SELECT count(*) FROM registry_modelversion WHERE training_run_id = %s", [run["id"]]
    )
    assert versions == [(1,)], "the run must register exactly one version"


def test_retrain_pool_process_sigkilled_mid_training_completes_by_itself(cluster, batch):
    _slow_fits(cluster, 6)
    try:
        retrain = batch.service.post(
            "/api/v1/retraining/retrains/",
            json={"need": NEED, "reason": "fault test"},
            expect=201,
        ).json()
        _wait_sql(
            batch,
            "SELECT 1 FROM retraining_retrain r JOIN registry_trainingrun t "
            "ON t.id = r.training_run_id WHERE r.id = %s AND t.log LIKE %s",
            [retrain["id"], "% train / %"],
            timeout=60,
            what="the retrain's training to be fitting",
        )
        time.sleep(1.0)
        _kill_training_pool(cluster)
    finally:
        _slow_fits(cluster, None)

    done = wait_until(
        lambda: (
            (
                r := batch.service.get(
                    f"/api/v1/retraining/retrains/{retrain['id']}/", expect=200
                ).json()
            )["status"]
            not in ("queued", "running")
            and r
        ),
        timeout=150,
        what="the interrupted retrain to finish by itself",
    )
    assert done["status"] == "ready", done
    challengers = batch.sql(
        "SELECT count(*) FROM registry_modelversion v JOIN retraining_retrain r "
        "ON v.training_run_id = r.training_run_id WHERE r.id = %s",
        [retrain["id"]],
    )
    assert challengers == [(1,)], "a retrain makes exactly one challenger"


def test_optimisation_pool_process_sigkilled_mid_search_starts_over_by_itself(cluster, batch):
    run = batch.service.post(
        f"/api/v1/needs/{NEED}/optimisation-runs",
        json={
            "time_limit_seconds": 30,
            "max_trials": 6,
            "seed": 3,
            "latency_budget_ms": 1000,
            "size_budget_kb": 100000,
        },
        expect=201,
    ).json()
    _wait_sql(
        batch,
        "SELECT 1 FROM optimisation_optimisationtrial WHERE run_id = %s LIMIT 1",
        [run["id"]],
        timeout=90,
        what="the search to have a trial",
    )
    _kill_training_pool(cluster)
    done = wait_until(
        lambda: (
            (r := batch.service.get(f"/api/v1/optimisation-runs/{run['id']}", expect=200).json())[
                "status"
            ]
            not in ("queued", "running")
            and r
        ),
        timeout=240,
        what="the interrupted optimisation run to finish by itself",
    )
    # Started over on the redelivery: a variant is chosen or the run says nothing fits.
    assert done["status"] in ("succeeded", "nothing_fits"), done


def test_stream_items_posted_across_a_redis_restart_are_all_tagged_as_the_sync_api_tags_them(
    cluster, cluster_redis, batch
):
    """A service keeps posting stream items while the cluster's Redis dies and comes back: every
    POST is answered 202 (committed items), every item ends up tagged without anyone touching it,
    with exactly one stream log line, and with the labels the sync API gives the same texts."""
    rng = random.Random("stream-redis")
    topics = list(VOCABULARY)
    sent: dict[str, str] = {}
    answers: list[int] = []
    stop = threading.Event()

    def post_items() -> None:
        n = 0
        while not stop.is_set():
            items = []
            for _ in range(3):
                item_id = f"sr-{n}"
                sent[item_id] = _text(topics[n % 5], rng)
                items.append({"id": item_id, "text": sent[item_id]})
                n += 1
            response = batch.service.post(f"/api/v1/needs/{NEED}/items", json={"items": items})
            answers.append(response.status_code)
            time.sleep(0.1)

    poster = threading.Thread(target=post_items, daemon=True)
    poster.start()
    try:
        time.sleep(2.0)
        cluster_redis.kill()
        time.sleep(3.0)
        cluster_redis.start()
        time.sleep(2.0)
    finally:
        stop.set()
        poster.join(timeout=30)

    assert answers and set(answers) == {202}, answers
    ids = sorted(sent)

    def all_tagged():
        rows = batch.sql(
            "SELECT external_id, status, result FROM serving_item WHERE external_id = ANY(%s)",
            [ids],
        )
        return rows if len(rows) == len(ids) and {r[1] for r in rows} == {"tagged"} else None

    wait_until(all_tagged, timeout=120, interval=0.5, what="every stream item tagged")
    streamed, synced = {}, {}
    for start in range(0, len(ids), 50):
        chunk = ids[start : start + 50]
        page = batch.service.get(
            f"/api/v1/needs/{NEED}/items", params={"ids": ",".join(chunk)}, expect=200
        ).json()
        streamed.update({item["id"]: item["labels"] for item in page["results"]})
        body = batch.service.post(
            f"/api/v1/needs/{NEED}/tag",
            json={"items": [{"id": i, "text": sent[i]} for i in chunk]},
            expect=200,
        ).json()
        synced.update({item["id"]: item["labels"] for item in body["items"]})
    assert streamed == synced
    logged = dict(
        batch.sql(
            "SELECT item_ref, count(*) FROM serving_predictionlog "
            "WHERE channel = 'stream' AND item_ref = ANY(%s) GROUP BY item_ref",
            [ids],
        )
    )
    assert logged == {i: 1 for i in ids}, "a stream log line was lost or written twice"
