"""Issue 15.1, end to end: a brand-new business unit goes from nothing to a live need through
the REST API alone. Platform staff only create the tenant (with its first admin's invitation)
and make the approvals the platform requires: the new taxonomy label and the need. Everything
else is the unit's own admin, signed in with the password they set from their invitation link,
and then the unit's own API key. Real PostgreSQL and Redis (REQUIRE_SERVICES=1)."""

import csv
import io

import pytest
from rest_framework.test import APIClient

from tests.registry.conftest import synthetic_rows

WORDS = {
    "news.business.markets": "shares index bond yield trader rally stocks market",
    "news.sport": "match goal team player season coach league victory",
    "news.tech": "software computer internet phone chip digital network device",
}


def _login(username: str, password: str) -> APIClient:
    client = APIClient()
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content
    return client


def _ok(response, status=200):
    assert response.status_code == status, response.content
    return response.json()


@pytest.mark.usefixtures("requires_postgres", "requires_redis")
def test_a_new_unit_goes_from_nothing_to_a_live_need(
    tree, staff_user, django_capture_on_commit_callbacks
):
    staff = APIClient()
    staff.force_authenticate(staff_user)
    # Staff: the tenant, and its first admin's invitation (acting for the tenant they name).
    _ok(
        staff.post("/api/v1/tenants/", {"slug": "markets", "name": "Markets desk"}, format="json"),
        201,
    )
    staff.credentials(HTTP_X_TENANT="markets")
    link = _ok(staff.post("/api/v1/members/", {"username": "mia", "role": "admin"}), 201)[
        "set_password_url"
    ]

    # The admin sets a password with the one-time link, then signs in.
    anonymous = APIClient()
    form = anonymous.get(link, follow=True)
    anonymous.post(
        form.redirect_chain[-1][0],
        {"new_password1": "markets-desk-2026!", "new_password2": "markets-desk-2026!"},
    )
    mia = _login("mia", "markets-desk-2026!")

    # A colleague joins.
    colleague = _ok(mia.post("/api/v1/members/", {"username": "max", "role": "requester"}), 201)
    assert colleague["set_password_url"]

    # A label the taxonomy lacks is proposed; staff approve it (a required approval).
    proposal = _ok(
        mia.post(
            "/api/v1/label-proposals/",
            {"key": "news.business.markets", "parent": "news.business", "name_en": "Markets"},
            format="json",
        ),
        201,
    )
    assert _ok(staff.post(f"/api/v1/label-proposals/{proposal['id']}/approve/"))["status"] == (
        "approved"
    )
    assert _ok(mia.get(f"/api/v1/label-proposals/{proposal['id']}/"))["status"] == "approved"

    # The unit's own label set, then a revision adding a label.
    _ok(
        mia.post(
            "/api/v1/label-sets/",
            {"slug": "desk", "name": "Desk", "labels": ["news.business.markets", "news.sport"]},
            format="json",
        ),
        201,
    )
    revised = _ok(
        mia.patch(
            "/api/v1/label-sets/desk/",
            {"labels": list(WORDS)},
            format="json",
        )
    )
    assert revised["current_revision"]["number"] == 2

    # Training data in the set's labels.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "labels"])
    for row in synthetic_rows(per_label=30, words=WORDS):
        writer.writerow([row.text, row.labels[0]])
    upload = io.BytesIO(buffer.getvalue().encode())
    upload.name = "desk.csv"
    report = _ok(
        mia.post(
            "/api/v1/datasets/upload/", {"label_set": "desk", "file": upload}, format="multipart"
        ),
        201,
    )
    assert report["created"] == 90

    # A snapshot, checked before training.
    snapshot = _ok(mia.post("/api/v1/snapshots/", {"label_set": "desk", "seed": 1}), 201)
    assert {row["label"]: row["total"] for row in snapshot["labels"]} == dict.fromkeys(WORDS, 30)
    assert snapshot["test"] == 18

    # The need, approved by staff (a required approval).
    _ok(
        mia.post("/api/v1/needs/", {"name": "Desk topics", "label_set": "desk"}, format="json"), 201
    )
    _ok(staff.post("/api/v1/tenants/markets/needs/desk-topics/approve/"))

    # Training on that snapshot, for the need, promoted to production.
    with django_capture_on_commit_callbacks(execute=True):
        run = _ok(
            mia.post(
                "/api/v1/training-runs/",
                {"need": "desk-topics", "snapshot": snapshot["content_hash"],
                 "promote_to": "production"},
                format="json",
            ),
            201,
        )  # fmt: skip
    run = _ok(mia.get(f"/api/v1/training-runs/{run['id']}/"))
    assert run["status"] == "succeeded", run["error"]
    assert run["snapshot"] == snapshot["content_hash"]

    need = _ok(mia.post("/api/v1/needs/desk-topics/go-live/"))
    assert need["status"] == "live" and need["model"] == "desk/tfidf-logreg"

    # A serving key, and the first tagged text.
    key = _ok(
        mia.post("/api/v1/keys/", {"name": "desk-service", "scopes": ["tag"]}, format="json"), 201
    )
    service = APIClient()
    service.credentials(HTTP_AUTHORIZATION=f"Api-Key {key['key']}")
    tagged = _ok(
        service.post(
            "/api/v1/needs/desk-topics/tag",
            {
                "items": [
                    {"id": "t1", "text": "the team scored a late goal to win the league match"}
                ]
            },
            format="json",
        )
    )
    assert tagged["items"][0]["labels"] == ["news.sport"]
