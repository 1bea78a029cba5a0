"""Issue 6's "done when": the real platform through nginx, on PostgreSQL + Redis, with a
Celery worker per queue. A staff member creates a tenant and a need; the tenant trains, promotes
and tags synchronously, runs a batch job and reads the prediction log. Under a bounded load:
killing a gunicorn instance, SIGKILLing batch worker processes mid-job, and promoting a new model
version are all survived without errors beyond the requests in flight."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import time
from dataclasses import dataclass

import pytest
import requests

from tests.deploy.loadgen import Call, Load, describe

pytestmark = pytest.mark.cluster

STAFF_USERNAME, STAFF_PASSWORD = "ops", "ops-e2e-password"
TENANT, NEED = "e2e-news", "e2e-topics"
# A few distinctive words per BBC topic of the shared `news-topics` label set.
VOCABULARY = {
    "news.business": "shares profit market bank economy investors revenue merger stock",
    "news.entertainment": "film actor music album festival singer cinema award comedy",
    "news.politics": "election minister parliament vote government party policy campaign",
    "news.sport": "match goal championship coach football tennis team season cup",
    "news.tech": "software computer internet broadband mobile gadget chip online digital",
}


def _text(topic: str, rng: random.Random, words: int = 9) -> str:
    return " ".join(rng.choice(VOCABULARY[topic].split()) for _ in range(words))


def training_csv(seed: int, per_topic: int = 30) -> bytes:
    rng = random.Random(seed)
    lines = ["text,label"]
    for topic in VOCABULARY:
        lines += [f"{_text(topic, rng)},{topic}" for _ in range(per_topic)]
    return ("\n".join(lines) + "\n").encode()


class Client(requests.Session):
    """requests through nginx; JSON errors are raised with their body for readable failures."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, expect: int | None = None, **kwargs):
        kwargs.setdefault("timeout", 30)
        response = super().request(method, f"{self.base_url}{url}", *args, **kwargs)
        # The cluster runs DEBUG=0, so its cookies are Secure, but it is plain HTTP on 127.0.0.1
        # (TLS ends in front of nginx in production): let this client send them back anyway.
        for cookie in self.cookies:
            cookie.secure = False
        if expect is not None and response.status_code != expect:
            raise AssertionError(
                f"{method} {url} -> {response.status_code} (wanted {expect}): {response.text[:800]}"
            )
        return response


def staff_session(base_url: str) -> Client:
    client = Client(base_url)
    client.get("/login/", expect=200)
    client.post(
        "/login/",
        data={
            "username": STAFF_USERNAME,
            "password": STAFF_PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        allow_redirects=False,
        expect=302,
    )
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    client.headers["X-Tenant"] = TENANT
    return client


def wait_until(predicate, *, timeout: float, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Platform:
    staff: Client
    service: Client  # the tenant's API key
    model_id: int
    first_run: dict


def train(service: Client, *, promote_to: str) -> dict:
    run = service.post(
        "/api/v1/training-runs/",
        json={"need": NEED, "algorithm": "tfidf-logreg", "promote_to": promote_to},
        expect=201,
    ).json()

    def finished():
        current = service.get(f"/api/v1/training-runs/{run['id']}/", expect=200).json()
        return current if current["status"] in ("succeeded", "failed") else None

    done = wait_until(finished, timeout=90, what=f"training run {run['id']}")
    assert done["status"] == "succeeded", done["error"] or done["log"]
    return done


@pytest.fixture(scope="module")
def platform(cluster) -> Platform:
    # The only steps that are not HTTP: the first staff account, and the company taxonomy
    # (labels and the shared label sets) that staff maintain in the admin.
    cluster.manage(
        "shell",
        "-c",
        "import sys; from django.contrib.auth import get_user_model;"
        f"get_user_model().objects.create_superuser('{STAFF_USERNAME}', 'ops@example.com',"
        f" '{STAFF_PASSWORD}');"
        "from taxonomy.demo import load_taxonomy; load_taxonomy(sys.stdout)",
    )
    staff = staff_session(cluster.url)

    staff.post(
        "/api/v1/tenants/",
        json={"slug": TENANT, "name": "E2E News", "quota_requests_per_minute": 0},
        expect=201,
    )
    staff.post(
        f"/api/v1/tenants/{TENANT}/memberships/",
        json={"username": STAFF_USERNAME, "role": "admin"},
        expect=201,
    )
    key = staff.post(
        f"/api/v1/tenants/{TENANT}/keys/",
        json={"name": "e2e-service", "scopes": ["needs", "tag", "batch", "read"]},
        expect=201,
    ).json()["key"]
    service = Client(cluster.url)
    service.headers["Authorization"] = f"Api-Key {key}"

    need = service.post(
        "/api/v1/needs/",
        json={"slug": NEED, "name": "E2E topics", "label_set": "news-topics"},
        expect=201,
    ).json()
    assert need["status"] == "requested"
    staff.post(f"/api/v1/tenants/{TENANT}/needs/{NEED}/approve/", expect=200)

    upload = service.post(
        "/api/v1/datasets/upload/",
        data={"label_set": "news-topics"},
        files={"file": ("train.csv", training_csv(seed=1), "text/csv")},
        expect=201,
    ).json()
    assert upload

    first_run = train(service, promote_to="production")
    need = service.post(f"/api/v1/needs/{NEED}/go-live/", expect=200).json()
    assert need["status"] == "live"
    model = next(
        m
        for m in service.get("/api/v1/models/", expect=200).json()["results"]
        if m["name"] == need["model"]
    )
    return Platform(staff=staff, service=service, model_id=model["id"], first_run=first_run)


def tag_call(key_header: str):
    rng = random.Random(7)

    def make(n: int) -> Call:
        topic = list(VOCABULARY)[n % len(VOCABULARY)]
        body = {"items": [{"id": f"load-{n}", "text": _text(topic, rng)}]}
        return Call(
            "POST",
            f"/api/v1/needs/{NEED}/tag",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": key_header},
        )

    return make


def test_trained_and_promoted_model_tags_synchronously_through_nginx(cluster, platform):
    assert platform.first_run["version"] == 1
    body = platform.service.post(
        f"/api/v1/needs/{NEED}/tag",
        json={
            "items": [
                {"id": "a", "text": "the striker scored a late goal to win the cup match"},
                {"id": "b", "text": "the minister lost the vote in parliament before the election"},
            ]
        },
        expect=200,
    ).json()

    assert body["model"]["version"] == 1
    assert [item["id"] for item in body["items"]] == ["a", "b"]
    assert body["items"][0]["labels"][0] == "news.sport"
    assert body["items"][1]["labels"][0] == "news.politics"


def test_batch_job_ends_with_one_result_per_item_after_its_workers_are_sigkilled(cluster, platform):
    rng = random.Random(3)
    rows = [(f"doc-{i}", _text(list(VOCABULARY)[i % 5], rng)) for i in range(120)]
    jsonl = "\n".join(json.dumps({"id": i, "text": t}) for i, t in rows).encode()
    job = platform.service.post(
        "/api/v1/batch-jobs",
        data={"need": NEED},
        files={"file": ("docs.jsonl", jsonl, "application/x-ndjson")},
        expect=201,
    ).json()

    def mid_job():
        current = platform.service.get(f"/api/v1/batch-jobs/{job['id']}/", expect=200).json()
        return current if 0 < current["done_items"] < current["total_items"] else None

    wait_until(mid_job, timeout=60, interval=0.1, what="the batch job to be half-way")
    # SIGKILL the pool processes executing chunks (what the OOM killer does): Celery's parent
    # sees them die, rejects their messages back to Redis (acks_late + reject_on_worker_lost).
    victims = cluster.worker_children("batch")
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    def finished():
        current = platform.service.get(f"/api/v1/batch-jobs/{job['id']}/", expect=200).json()
        return current if current["status"] in ("succeeded", "failed", "cancelled") else None

    done = wait_until(finished, timeout=90, what="the batch job to finish")
    results = platform.service.get(
        f"/api/v1/batch-jobs/{job['id']}/results/?format=jsonl", expect=200
    ).text.splitlines()
    ids = [json.loads(line)["id"] for line in results if line.strip()]

    assert done["status"] == "succeeded"
    assert done["done_items"] == done["total_items"] == len(rows)
    assert sorted(ids) == sorted(i for i, _ in rows)  # every item, exactly once
    worker_log = cluster.log_path("worker-batch").read_text()
    assert "WorkerLostError" in worker_log or "exited with 'signal 9" in worker_log


def test_prediction_log_lists_sync_and_batch_predictions(cluster, platform):
    platform.service.post(
        f"/api/v1/needs/{NEED}/tag",
        json={"items": [{"id": "logged-1", "text": "new broadband chip for mobile computers"}]},
        expect=200,
    )

    def logged():
        page = platform.service.get(
            f"/api/v1/predictions/?need={NEED}&limit=500", expect=200
        ).json()
        refs = {row["item_ref"]: row for row in page["results"]}
        return refs if "logged-1" in refs else None

    rows = wait_until(logged, timeout=30, what="the sync prediction in the log")
    channels = {row["channel"] for row in rows.values()}

    assert rows["logged-1"]["top_label"] == "news.tech"
    assert rows["logged-1"]["model_version"]["version"] >= 1
    assert {"sync", "batch"} <= channels


def test_killing_a_gunicorn_instance_under_keep_alive_tag_load_fails_no_tag_request(
    cluster, platform
):
    key_header = platform.service.headers["Authorization"]
    with Load(
        cluster.host, cluster.nginx_port, tag_call(key_header), concurrency=4, keepalive=True
    ) as load:
        load.wait_for(30)
        cluster.kill_web(1)
        dead_at = time.monotonic()
        load.wait_for(60)
    try:
        outcomes = load.outcomes
        after = [o for o in outcomes if o.started >= dead_at]
        failed = [o for o in outcomes if o.status != 200]

        assert len(after) >= 60
        # nginx resends a sync tag request that the dead instance had in hand (or that it wrote
        # into a keep-alive connection to it) to the live one, so even those in flight succeed.
        assert not failed, describe(failed)
    finally:
        cluster.start_web(1)


def stream_call(key_header: str):
    """Stream POSTs (not resent by nginx, unlike /tag) with unique ids: any dropped
    connection shows as a failure, and every accepted item can be counted afterwards."""
    rng = random.Random(11)

    def make(n: int) -> Call:
        topic = list(VOCABULARY)[n % len(VOCABULARY)]
        body = {"items": [{"id": f"ka-{time.time_ns()}-{n}", "text": _text(topic, rng)}]}
        return Call(
            "POST",
            f"/api/v1/needs/{NEED}/items",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": key_header},
        )

    return make


@pytest.mark.parametrize("operation", ["reload-web", "restart-web"])
def test_rolling_web_operations_drop_no_keep_alive_client_request(cluster, platform, operation):
    """Issue 12.6: keep-alive clients (requests.Session) through nginx see 0 errors while every
    gunicorn instance is HUPed (reload-web) or replaced with newly loaded code (restart-web)."""
    before = {i: cluster.status()[f"web-{i}"] for i in (1, 2)}
    key_header = platform.service.headers["Authorization"]
    # A client connection left idle across the whole operation: nginx reloads would close it
    # (what made busy keep-alive clients fail now and then); it must still carry a request.
    idle = http.client.HTTPConnection(cluster.host, cluster.nginx_port, timeout=30)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read() is not None
    idle_port = idle.sock.getsockname()[1]

    with (
        Load(
            cluster.host, cluster.nginx_port, tag_call(key_header), concurrency=3, keepalive=True
        ) as tag_load,
        Load(
            cluster.host,
            cluster.nginx_port,
            stream_call(key_header),
            concurrency=2,
            keepalive=True,
            pause=0.05,
        ) as stream_load,
    ):
        tag_load.wait_for(30)
        started = time.monotonic()
        cluster.reload_web(restart=operation == "restart-web")
        done = time.monotonic()
        tag_load.wait_for(30)

    idle.request("GET", "/healthz")
    assert idle.getresponse().status == 200
    assert idle.sock.getsockname()[1] == idle_port  # the same connection, not a new one
    idle.close()
    outcomes = tag_load.outcomes + stream_load.outcomes
    during = [o for o in outcomes if started <= o.started <= done]
    failed = [o for o in outcomes if o.status not in (200, 202)]
    assert not failed, describe(failed)
    assert len(during) >= 20  # it really happened under load
    for index in (1, 2):
        after = cluster.status()[f"web-{index}"]
        assert after["workers"], f"web-{index} has no workers"
        assert not set(after["workers"]) & set(before[index]["workers"]), (
            f"web-{index} kept old workers"
        )
        if operation == "restart-web":
            assert after["pid"] != before[index]["pid"], f"web-{index} kept its master"

    # Every accepted stream item is tagged by the online worker (none stranded); this also
    # leaves the online queue empty for the tests after this one.
    accepted = {json.loads(o.call.body)["items"][0]["id"] for o in stream_load.outcomes}

    def all_tagged():
        page = platform.service.get(
            f"/api/v1/needs/{NEED}/items?status=pending&limit=1", expect=200
        ).json()
        return page["count"] == 0

    wait_until(all_tagged, timeout=180, interval=1.0, what="the stream items to be tagged")
    tagged = platform.service.get(
        f"/api/v1/needs/{NEED}/items?status=tagged&limit=1", expect=200
    ).json()
    assert tagged["count"] >= len(accepted)


def test_promoting_a_new_version_under_load_switches_within_seconds_without_errors(
    cluster, platform
):
    second = train(platform.service, promote_to="")
    assert second["version"] == 2
    key_header = platform.service.headers["Authorization"]

    with Load(
        cluster.host, cluster.nginx_port, tag_call(key_header), concurrency=4, keepalive=True
    ) as load:
        load.wait_for(30)
        platform.staff.post(
            f"/api/v1/models/{platform.model_id}/promote/",
            json={"alias": "production", "version": 2, "reason": "e2e under load"},
            expect=200,
        )
        promoted_at = time.monotonic()
        wait_until(
            lambda: (
                time.monotonic() - promoted_at > 3
                and sum(
                    1
                    for o in load.outcomes
                    if o.status == 200 and json.loads(o.body)["model"]["version"] == 2
                )
                >= 30
            ),
            timeout=60,
            interval=0.1,
            what="30 answers from version 2",
        )

    outcomes = load.outcomes
    versions = [(o.started, json.loads(o.body)["model"]["version"]) for o in outcomes]
    last_v1_start = max(started for started, version in versions if version == 1)

    assert not [o for o in outcomes if o.status != 200], describe(outcomes)
    assert {version for _, version in versions} == {1, 2}
    # Every process re-reads the alias at least every ALIAS_POLL_SECONDS (0.5 s here).
    assert last_v1_start - promoted_at < 3.0
