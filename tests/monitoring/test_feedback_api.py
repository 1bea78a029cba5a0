"""POST /api/v1/feedback: bulk events, duplicates counted once, all-or-nothing validation."""

from __future__ import annotations

import pytest

from monitoring import aggregation
from monitoring.models import FeedbackAggregate, FeedbackEvent, Period
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory, set_need_labels
from tests.monitoring.conftest import DAY

pytestmark = pytest.mark.django_db
URL = "/api/v1/feedback"


def _event(i, **overrides):
    event = {
        "event_id": f"ev-{i}",
        "item_id": f"article-{i}",
        "label": "t.a",
        "need": "topics",
        "type": "impression",
        "at": f"{DAY.isoformat()}T10:00:00Z",
    }
    return {**event, **overrides}


def test_events_are_stored_and_duplicates_counted_once(api_a, topics):
    events = [_event(1), _event(2, type="click"), _event(2, type="click")]
    response = api_a.post(URL, {"events": events}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"received": 3, "accepted": 2, "duplicates": 1}

    again = api_a.post(URL, {"events": [_event(2, type="click"), _event(3)]}, format="json")
    assert again.json() == {"received": 2, "accepted": 1, "duplicates": 1}
    assert FeedbackEvent.objects.dangerously_unscoped().count() == 3

    aggregation.aggregate_feedback_day(day=DAY)
    row = FeedbackAggregate.objects.dangerously_unscoped().get(period=Period.DAY, label="t.a")
    assert (row.impressions, row.clicks, row.ctr) == (2, 1, 0.5)


def test_tenant_label_names_are_mapped_to_global_keys(api_a, topics):
    need, _ = topics
    set_need_labels(need, label_mapping={"Business": "t.b"})
    response = api_a.post(URL, {"events": [_event(1, label="Business")]}, format="json")
    assert response.status_code == 200
    assert FeedbackEvent.objects.dangerously_unscoped().get().label == "t.b"


def test_one_invalid_event_rejects_the_batch_with_errors_per_item(api_a, topics):
    events = [
        _event(1),
        _event(2, label="sport.football"),
        _event(3, type="like"),
        _event(4, need="nope"),
        {"event_id": "x"},
    ]
    response = api_a.post(URL, {"events": events}, format="json")
    assert response.status_code == 400
    errors = response.json()["error"]["fields"]["events"]
    # Errors are keyed by the index of each failing event; valid events have no entry.
    assert set(errors) == {"1", "2", "3", "4"}
    assert "label" in errors["1"]
    assert "type" in errors["2"]
    assert "need" in errors["3"]
    assert {"item_id", "label", "need", "type"} <= set(errors["4"])
    assert FeedbackEvent.objects.dangerously_unscoped().count() == 0


def test_empty_or_missing_events_is_a_400(api_a, topics):
    assert api_a.post(URL, {"events": []}, format="json").status_code == 400
    assert api_a.post(URL, {}, format="json").status_code == 400


def test_too_many_events_is_a_400(api_a, topics, settings):
    settings.FEEDBACK_MAX_EVENTS = 2
    response = api_a.post(URL, {"events": [_event(i) for i in range(3)]}, format="json")
    assert response.status_code == 400
    assert FeedbackEvent.objects.dangerously_unscoped().count() == 0


def test_other_tenants_need_is_unknown(api_b, topics):
    response = api_b.post(URL, {"events": [_event(1)]}, format="json")
    assert response.status_code == 400
    assert "need" in response.json()["error"]["fields"]["events"]["0"]
    assert FeedbackEvent.objects.dangerously_unscoped().count() == 0


def test_same_event_id_in_two_tenants_is_two_events(api_a, topics, tenant_b):
    from tests.monitoring.factories import make_monitored_need

    make_monitored_need(tenant=tenant_b, slug="topics", baseline={"t.a": 1, "t.b": 1})
    key_b = ApiKeyFactory(tenant=tenant_b, name="b-feedback", scopes=["feedback"])
    api_a.post(URL, {"events": [_event(1)]}, format="json")
    response = api_client_for_key(key_b).post(URL, {"events": [_event(1)]}, format="json")
    assert response.json()["accepted"] == 1
    assert FeedbackEvent.objects.dangerously_unscoped().count() == 2


def test_key_without_feedback_scope_is_refused(tenant_a, topics):
    key = ApiKeyFactory(tenant=tenant_a, name="tag-only", scopes=["tag", "read"])
    response = api_client_for_key(key).post(URL, {"events": [_event(1)]}, format="json")
    assert response.status_code == 403
    assert FeedbackEvent.objects.dangerously_unscoped().count() == 0


def test_session_requester_may_post_but_viewer_may_not(api, alice, bob, topics):
    api.force_login(bob)
    assert api.post(URL, {"events": [_event(1)]}, format="json").status_code == 403
    api.force_login(alice)
    assert api.post(URL, {"events": [_event(1)]}, format="json").status_code == 200


def test_anonymous_is_refused(api, topics):
    assert api.post(URL, {"events": [_event(1)]}, format="json").status_code in (401, 403)
