"""Serving follows the need lifecycle, need management has its own key scope, and retiring is
reversible by platform staff with an audit trail."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from serving import runtime as runtime_module
from serving.runtime import get_runtime
from tenants.authentication import clear_key_cache
from tenants.models import NeedStatus, NeedStatusChange
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory
from tests.serving.factories import make_model, make_served_need

TEXT = "The striker scored twice in the cup final and the coach praised the team."


@pytest.fixture(autouse=True)
def _fresh_runtime(settings):
    settings.ALIAS_POLL_SECONDS = 0
    settings.SERVING_ASYNC_WRITES = False
    get_runtime().forget()
    clear_key_cache()
    yield
    get_runtime().forget()


@pytest.fixture
def need(tenant_a):
    return make_served_need(tenant=tenant_a, slug="news", version=make_model())


def _tag(client, slug="news"):
    return client.post(
        f"/api/v1/needs/{slug}/tag", {"items": [{"id": "a", "text": TEXT}]}, format="json"
    )


def _stream(client, slug="news"):
    return client.post(
        f"/api/v1/needs/{slug}/items", {"items": [{"id": "s1", "text": TEXT}]}, format="json"
    )


def _batch(client, slug="news"):
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["id", "text"], ["b1", TEXT]])
    file = SimpleUploadedFile("b.csv", buffer.getvalue().encode(), content_type="text/csv")
    return client.post("/api/v1/batch-jobs", {"need": slug, "file": file}, format="multipart")


MODES = {"sync": _tag, "stream": _stream, "batch": _batch}
SERVED = {"sync": 200, "stream": 202, "batch": 201}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    ("status", "code"),
    [(NeedStatus.REQUESTED, "need_not_approved"), (NeedStatus.RETIRED, "need_retired")],
)
def test_unapproved_and_retired_needs_are_not_served_in_any_mode(
    django_capture_on_commit_callbacks, api_a, need, mode, status, code
):
    need.status = status
    need.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = MODES[mode](api_a)
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("status", [NeedStatus.APPROVED, NeedStatus.LIVE])
def test_approved_and_live_needs_are_served_in_every_mode(
    django_capture_on_commit_callbacks, api_a, need, mode, status
):
    need.status = status
    need.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = MODES[mode](api_a)
    assert response.status_code == SERVED[mode], response.content


def test_retirement_reaches_a_serving_process_within_the_poll_interval(
    settings, monkeypatch, api_a, need, tenant_a
):
    settings.ALIAS_POLL_SECONDS = 30
    clock = [1000.0]
    monkeypatch.setattr(runtime_module.time, "monotonic", lambda: clock[0])
    assert _tag(api_a).status_code == 200  # bound now, re-read after 30 s
    manager = api_client_for_key(ApiKeyFactory(tenant=tenant_a, scopes=["needs"]))
    assert manager.post("/api/v1/needs/news/retire/", {}, format="json").status_code == 200
    clock[0] += 29
    assert _tag(api_a).status_code == 200  # still inside the poll interval
    clock[0] += 2
    response = _tag(api_a)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "need_retired"


def test_a_batch_chunk_of_a_need_retired_after_upload_fails_the_job_plainly(
    django_capture_on_commit_callbacks, api_a, need
):
    from serving.models import BatchJob, BatchStatus
    from serving.services import batch_chunk_run

    response = _batch(api_a)  # on-commit callbacks not run: the chunk is still queued
    assert response.status_code == 201
    need.status = NeedStatus.RETIRED
    need.save()
    job = BatchJob.objects.dangerously_unscoped().get(pk=response.json()["id"])
    with pytest.raises(runtime_module.NeedInactive):
        batch_chunk_run(chunk_id=job.chunks.get().pk)
    job.refresh_from_db()
    assert job.status == BatchStatus.FAILED
    assert "retired" in job.error


def test_pending_stream_items_of_a_retired_need_wait_untried_until_it_is_reinstated(
    api_a, need, staff_user
):
    from serving.models import Item, ItemStatus
    from serving.services import stream_pending_requeue
    from tenants import services

    assert _stream(api_a).status_code == 202  # queued on commit: not run in this test
    services.need_retire(need=need, actor=None)
    assert stream_pending_requeue(older_than_seconds=0) == 0
    assert Item.objects.dangerously_unscoped().get().status == ItemStatus.PENDING
    services.need_reinstate(need=need, actor=staff_user, reason="mistake")
    assert stream_pending_requeue(older_than_seconds=0) == 1  # eager: tagged now
    assert Item.objects.dangerously_unscoped().get().status == ItemStatus.TAGGED


# --- need management scope ------------------------------------------------------------------
@pytest.fixture
def tag_only(tenant_a):
    return api_client_for_key(ApiKeyFactory(tenant=tenant_a, scopes=["tag", "read"]))


@pytest.fixture
def needs_key(tenant_a):
    return ApiKeyFactory(tenant=tenant_a, scopes=["needs", "read"])


def test_a_tag_only_key_cannot_create_change_subscribe_or_retire_needs(tag_only, need):
    attempts = [
        tag_only.post("/api/v1/needs/", {"name": "X", "label_set": "news-topics"}, format="json"),
        tag_only.patch("/api/v1/needs/news/", {"name": "Renamed"}, format="json"),
        tag_only.post("/api/v1/needs/news/subscribe/", {"model": "whatever"}, format="json"),
        tag_only.post("/api/v1/needs/news/retire/", {}, format="json"),
        tag_only.post("/api/v1/needs/news/go-live/", {}, format="json"),
    ]
    assert [r.status_code for r in attempts] == [403] * 5
    assert all("'needs' scope" in r.json()["error"]["message"] for r in attempts)
    need.refresh_from_db()
    assert need.status == NeedStatus.LIVE and need.name != "Renamed"
    assert _tag(tag_only).status_code == 200  # it still tags


def test_a_needs_key_retires_with_an_audit_row_naming_the_key(needs_key, need):
    client = api_client_for_key(needs_key)
    response = client.post("/api/v1/needs/news/retire/", {"reason": "replaced"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "retired"
    change = NeedStatusChange.objects.dangerously_unscoped().get(need=need)
    assert (change.from_status, change.to_status) == ("live", "retired")
    assert change.api_key_prefix == needs_key.prefix and change.actor is None
    assert change.reason == "replaced"
    history = client.get("/api/v1/needs/news/history/").json()
    assert history[0]["to_status"] == "retired" and history[0]["api_key_prefix"]


def test_staff_reinstate_a_retired_need_to_its_previous_status_with_a_reason(
    api, needs_key, need, staff_user, alice, tenant_a
):
    api_client_for_key(needs_key).post("/api/v1/needs/news/retire/", {}, format="json")
    url = f"/api/v1/tenants/{tenant_a.slug}/needs/news/reinstate/"
    api.force_authenticate(alice)  # a tenant admin, not staff
    assert api.post(url, {"reason": "oops"}, format="json").status_code == 403
    api.force_authenticate(staff_user)
    missing = api.post(url, {}, format="json")
    assert missing.status_code == 400 and "reason" in str(missing.json())
    response = api.post(url, {"reason": "retired by a fuzzer"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "live"
    last = NeedStatusChange.objects.dangerously_unscoped().filter(need=need).first()
    assert (last.from_status, last.to_status, last.actor, last.reason) == (
        "retired",
        "live",
        staff_user,
        "retired by a fuzzer",
    )


def test_reinstated_need_serves_again(api, needs_key, need, staff_user, tenant_a, api_a):
    api_client_for_key(needs_key).post("/api/v1/needs/news/retire/", {}, format="json")
    assert _tag(api_a).status_code == 409
    api.force_authenticate(staff_user)
    api.post(
        f"/api/v1/tenants/{tenant_a.slug}/needs/news/reinstate/", {"reason": "x"}, format="json"
    )
    assert _tag(api_a).status_code == 200


def test_admin_reinstate_action_asks_for_a_reason_then_reinstates(client, staff_user, need):
    need.status = NeedStatus.RETIRED
    need.save()
    client.force_login(staff_user)
    url = "/admin/tenants/need/"
    ask = client.post(url, {"action": "reinstate_needs", "_selected_action": [need.pk]})
    assert ask.status_code == 200 and b"Reason (required)" in ask.content
    done = client.post(
        url,
        {
            "action": "reinstate_needs",
            "_selected_action": [need.pk],
            "reason": "support ticket 42",
            "apply": "Reinstate",
        },
    )
    assert done.status_code == 302
    need.refresh_from_db()
    # No audit row says what it was before: judged by its approval (never approved here).
    assert need.status == NeedStatus.REQUESTED
    assert (
        NeedStatusChange.objects.dangerously_unscoped().get(need=need).reason == "support ticket 42"
    )
