"""Issue 15.1: every onboarding step a tenant admin takes through the API, each endpoint checked
for tenancy (another tenant's object is a 404), roles (a viewer never writes; a key never does
what needs a person) and bad input (a clear 4xx).

alice = admin of A, bob = viewer of A, charlie = admin of B; api_a / api_b = the tenants' keys.
"""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from registry.models import DatasetSnapshot
from registry.services.datasets import current_revision, samples_import
from taxonomy import services as taxonomy_services
from taxonomy.models import Label, LabelProposal
from tenants.models import ApiKeyScope, Membership, Role, SupportAccess
from tests.factories import ApiKeyFactory
from tests.registry.conftest import synthetic_rows

User = get_user_model()


def session(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def receiver():
    from tests.serving.conftest import WebhookReceiver

    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def serving_key(tenant_a):
    from tests.conftest import api_client_for_key

    return api_client_for_key(ApiKeyFactory(tenant=tenant_a, scopes=["tag", "read"]))


@pytest.fixture
def own_set(tenant_a, news_topics):
    return taxonomy_services.label_set_create(
        tenant=tenant_a,
        slug="alpha-desk",
        name="Alpha desk",
        label_keys=["news.sport", "news.tech"],
    )


@pytest.fixture
def own_samples(own_set, tenant_a):
    rows = [r for r in synthetic_rows(per_label=10) if r.labels[0] != "news.business"]
    samples_import(revision=current_revision(own_set), tenant=tenant_a, rows=rows)
    return own_set


# --- Members ---------------------------------------------------------------------------------
def test_admin_invites_a_new_member_who_sets_a_password_once(alice, tenant_a, client):
    response = session(alice).post(
        "/api/v1/members/", {"username": "dora", "email": "dora@example.com", "role": "requester"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["role"] == "requester" and body["has_password"] is False
    assert response["Cache-Control"] == "no-store"
    link = body["set_password_url"]
    assert link.startswith("http://testserver/tenant/set-password/")
    dora = User.objects.get(username="dora")
    assert not dora.has_usable_password()
    assert Membership.objects.for_tenant(tenant_a).get(user=dora).role == Role.REQUESTER

    # Django's confirm view moves the token into the session, then takes the new password.
    page = client.get(link, follow=True)
    assert page.status_code == 200 and b"set-password-form" in page.content
    done = client.post(
        page.redirect_chain[-1][0],
        {"new_password1": "a-long-pass-phrase-9", "new_password2": "a-long-pass-phrase-9"},
    )
    assert done.status_code == 302
    dora.refresh_from_db()
    assert dora.check_password("a-long-pass-phrase-9")
    # One-time: the same link no longer works.
    again = client.get(link, follow=True)
    assert b"link-invalid" in again.content
    login = client.post("/login/", {"username": "dora", "password": "a-long-pass-phrase-9"})
    assert login.status_code == 302


def test_inviting_an_existing_user_adds_them_without_a_link(alice, charlie, tenant_a):
    response = session(alice).post("/api/v1/members/", {"username": "charlie", "role": "viewer"})
    assert response.status_code == 201
    assert response.json()["set_password_url"] == ""
    again = session(alice).post("/api/v1/members/", {"username": "charlie", "role": "admin"})
    assert again.status_code == 400
    assert "already a member" in str(again.json())


@pytest.mark.parametrize(
    "body, field",
    [
        ({"username": "", "role": "viewer"}, "username"),
        ({"username": "has space", "role": "viewer"}, "username"),
        ({"username": "ed", "role": "owner"}, "role"),
        ({"username": "ed", "email": "not-an-email"}, "email"),
    ],
)
def test_bad_invitations_are_400_with_the_field(alice, body, field):
    response = session(alice).post("/api/v1/members/", body, format="json")
    assert response.status_code == 400
    assert field in str(response.json())
    assert not User.objects.filter(username="ed").exists()


def test_roles_change_and_the_last_admin_stays(alice, bob, tenant_a):
    client = session(alice)
    assert client.patch("/api/v1/members/bob/", {"role": "reviewer"}).json()["role"] == "reviewer"
    refused = client.patch("/api/v1/members/alice/", {"role": "viewer"})
    assert refused.status_code == 400 and "at least one admin" in str(refused.json())
    assert client.delete("/api/v1/members/alice/").status_code == 400
    assert client.delete("/api/v1/members/bob/").status_code == 204
    assert not Membership.objects.for_tenant(tenant_a).filter(user=bob).exists()
    assert User.objects.filter(username="bob").exists()


def test_members_are_for_signed_in_admins_of_the_tenant_only(alice, bob, charlie, api_a):
    assert session(bob).get("/api/v1/members/").status_code == 403
    assert session(bob).post("/api/v1/members/", {"username": "x"}).status_code == 403
    # A key with every scope still never adds people.
    full = ApiKeyFactory(tenant=alice.memberships.get().tenant, scopes=list(ApiKeyScope.values))
    from tests.conftest import api_client_for_key

    assert api_client_for_key(full).post("/api/v1/members/", {"username": "x"}).status_code == 403
    # Another tenant's admin does not see A's members: a 404, as if missing.
    assert session(charlie).get("/api/v1/members/bob/").status_code == 404
    assert session(charlie).delete("/api/v1/members/bob/").status_code == 404
    assert [m["username"] for m in session(charlie).get("/api/v1/members/").json()] == ["charlie"]


# --- Webhook -----------------------------------------------------------------------------------
def test_webhook_url_secret_rotation_and_test_delivery(alice, tenant_a, receiver):
    client = session(alice)
    assert client.get("/api/v1/webhook/").json() == {"url": "", "has_secret": False}
    assert client.post("/api/v1/webhook/test/").status_code == 409  # no URL yet
    body = client.patch("/api/v1/webhook/", {"url": receiver.url}, format="json").json()
    assert body == {"url": receiver.url, "has_secret": True}
    first = client.post("/api/v1/webhook/rotate-secret/").json()["secret"]
    second = client.post("/api/v1/webhook/rotate-secret/").json()["secret"]
    assert first != second and second.startswith("whsec_")
    assert second not in client.get("/api/v1/webhook/").content.decode()

    result = client.post("/api/v1/webhook/test/").json()
    assert result["delivered"] is True and result["status_code"] == 204
    from serving.webhooks import verify

    request = receiver.requests[-1]
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert verify(
        secret=second,
        timestamp=headers["x-tp-timestamp"],
        body=request["body"],
        signature=headers["x-tp-signature"],
    )


def test_a_failing_webhook_test_says_why(alice, tenant_a):
    client = session(alice)
    client.patch("/api/v1/webhook/", {"url": "http://127.0.0.1:9/hook"}, format="json")
    result = client.post("/api/v1/webhook/test/").json()
    assert result["delivered"] is False and result["error"]


def test_webhook_settings_need_a_signed_in_admin(alice, bob, api_a, tenant_a, charlie):
    assert (
        session(alice).patch("/api/v1/webhook/", {"url": "ftp:/x"}, format="json").status_code
        == 400
    )
    assert session(bob).get("/api/v1/webhook/").status_code == 403
    assert session(bob).post("/api/v1/webhook/rotate-secret/").status_code == 403
    assert (
        api_a.patch("/api/v1/webhook/", {"url": "http://x.test/"}, format="json").status_code == 403
    )
    session(charlie).patch("/api/v1/webhook/", {"url": "http://bravo.test/"}, format="json")
    tenant_a.refresh_from_db()
    assert tenant_a.webhook_url == ""  # B's admin changed B's webhook, never A's


# --- Label sets --------------------------------------------------------------------------------
def test_admin_creates_and_revises_an_own_label_set(alice, news_topics, tenant_a):
    client = session(alice)
    created = client.post(
        "/api/v1/label-sets/",
        {"slug": "desk", "name": "Desk", "labels": ["news.sport", "news.tech"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["owner"] == "alpha"
    assert created.json()["current_revision"]["labels"] == ["news.sport", "news.tech"]
    revised = client.patch(
        "/api/v1/label-sets/desk/",
        {"labels": ["news.sport", "news.tech", "news.politics"], "note": "politics desk"},
        format="json",
    )
    assert revised.status_code == 200
    assert revised.json()["current_revision"]["number"] == 2
    revisions = client.get("/api/v1/label-sets/desk/revisions/").json()
    assert [r["number"] for r in revisions] == [2, 1]


@pytest.mark.parametrize(
    "body, status",
    [
        ({"slug": "news-topics", "labels": ["news.sport", "news.tech"]}, 400),  # shared slug
        ({"slug": "x", "labels": ["news.sport", "no.such.label"]}, 400),
        ({"slug": "x", "labels": ["news.sport"]}, 400),  # multi-class needs two
        ({"slug": "bad slug", "labels": ["news.sport", "news.tech"]}, 400),
        ({"slug": "x", "labels": "news.sport"}, 400),
        ({"slug": "x", "kind": "fuzzy", "labels": ["news.sport", "news.tech"]}, 400),
    ],
)
def test_bad_label_sets_are_400(alice, news_topics, body, status):
    assert session(alice).post("/api/v1/label-sets/", body, format="json").status_code == status


def test_label_set_writes_are_scoped_and_role_checked(
    alice, bob, charlie, own_set, api_a, serving_key
):
    assert session(bob).post("/api/v1/label-sets/", {}, format="json").status_code == 403
    assert session(bob).patch("/api/v1/label-sets/alpha-desk/", {"name": "x"}).status_code == 403
    assert (
        session(charlie).patch("/api/v1/label-sets/alpha-desk/", {"name": "x"}).status_code == 404
    )
    # The shared set is platform staff's.
    shared = session(alice).patch("/api/v1/label-sets/news-topics/", {"name": "x"})
    assert shared.status_code == 403
    # A serving key (tag/read) cannot change label sets; a key with `needs` can.
    assert serving_key.patch("/api/v1/label-sets/alpha-desk/", {"name": "x"}).status_code == 403
    assert api_a.patch("/api/v1/label-sets/alpha-desk/", {"name": "x"}).status_code == 200


# --- Label proposals ---------------------------------------------------------------------------
def test_a_proposal_is_approved_by_staff_and_then_usable(alice, tenant_a, tree, staff_user):
    client = session(alice)
    created = client.post(
        "/api/v1/label-proposals/",
        {"key": "news.business.earnings", "parent": "news.business", "name_en": "Earnings",
         "aliases": ["earn"], "reason": "quarterly results desk"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    proposal = created.json()
    assert proposal["status"] == "pending" and proposal["proposed_by"] == "alice"
    assert client.post(f"/api/v1/label-proposals/{proposal['id']}/approve/").status_code == 403
    duplicate = client.post(
        "/api/v1/label-proposals/",
        {"key": "news.business.earnings", "name_en": "Again"},
        format="json",
    )
    assert duplicate.status_code == 400

    staff = session(staff_user)
    staff.credentials(HTTP_X_TENANT="alpha")
    approved = staff.post(f"/api/v1/label-proposals/{proposal['id']}/approve/", {"note": "ok"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    label = Label.objects.get(key="news.business.earnings")
    assert label.parent.key == "news.business" and label.aliases == ["earn"]
    assert label.history.get().actor == staff_user
    assert client.get(f"/api/v1/label-proposals/{proposal['id']}/").json()["label"] == label.key
    again = staff.post(f"/api/v1/label-proposals/{proposal['id']}/approve/")
    assert again.status_code == 400
    # The approved label is usable in the tenant's own set.
    made = client.post(
        "/api/v1/label-sets/",
        {"slug": "results", "labels": ["news.business.earnings", "news.business"]},
        format="json",
    )
    assert made.status_code == 201


def test_staff_reject_with_a_reason(alice, tree, staff_user):
    proposal = taxonomy_services.label_proposal_create(
        tenant=alice.memberships.get().tenant, key="news.gossip", name_en="Gossip"
    )
    staff = session(staff_user)
    staff.credentials(HTTP_X_TENANT="alpha")
    assert staff.post(f"/api/v1/label-proposals/{proposal.pk}/reject/").status_code == 400
    rejected = staff.post(
        f"/api/v1/label-proposals/{proposal.pk}/reject/", {"note": "use news.entertainment"}
    )
    assert rejected.json()["status"] == "rejected"
    assert not Label.objects.filter(key="news.gossip").exists()


@pytest.mark.parametrize(
    "body",
    [
        {"key": "Bad Key", "name_en": "x"},
        {"key": "news.sport", "name_en": "taken"},
        {"key": "news.new", "name_en": ""},
        {"key": "news.new", "name_en": "x", "parent": "no.such"},
        {"key": "news.new", "name_en": "x", "aliases": "not-a-list"},
    ],
)
def test_bad_proposals_are_400(alice, tree, body):
    assert session(alice).post("/api/v1/label-proposals/", body, format="json").status_code == 400
    assert not LabelProposal.objects.for_tenant(alice.memberships.get().tenant).exists()


def test_proposals_are_scoped_and_role_checked(alice, bob, charlie, tree, serving_key):
    proposal = taxonomy_services.label_proposal_create(
        tenant=alice.memberships.get().tenant, key="news.gossip", name_en="Gossip"
    )
    assert session(charlie).get(f"/api/v1/label-proposals/{proposal.pk}/").status_code == 404
    assert session(charlie).get("/api/v1/label-proposals/").json()["results"] == []
    assert session(bob).get(f"/api/v1/label-proposals/{proposal.pk}/").status_code == 200
    body = {"key": "news.weather", "name_en": "Weather"}
    assert session(bob).post("/api/v1/label-proposals/", body).status_code == 403
    assert serving_key.post("/api/v1/label-proposals/", body).status_code == 403  # no `needs`
    # An admin of another tenant is not staff: no approving anyone's proposal.
    assert session(charlie).post(f"/api/v1/label-proposals/{proposal.pk}/approve/").status_code in (
        403,
        404,
    )


# --- Snapshots and training runs ---------------------------------------------------------------
def test_snapshot_shows_its_split_and_distribution_then_trains(
    alice, own_samples, django_capture_on_commit_callbacks
):
    client = session(alice)
    made = client.post(
        "/api/v1/snapshots/", {"label_set": "alpha-desk", "seed": 7, "test_fraction": 0.3}
    )
    assert made.status_code == 201, made.content
    snap = made.json()
    assert snap["owner"] == "alpha" and snap["seed"] == 7
    assert snap["train"] + snap["test"] == 20 and snap["test"] == 6
    assert snap["labels"] == [
        {"label": "news.sport", "train": 7, "test": 3, "total": 10},
        {"label": "news.tech", "train": 7, "test": 3, "total": 10},
    ]
    # The same data and parameters give the same snapshot.
    again = client.post(
        "/api/v1/snapshots/", {"label_set": "alpha-desk", "seed": 7, "test_fraction": 0.3}
    )
    assert again.json()["content_hash"] == snap["content_hash"]
    detail = client.get(f"/api/v1/snapshots/{snap['content_hash']}/")
    assert detail.json()["labels"] == snap["labels"]
    assert [s["content_hash"] for s in client.get("/api/v1/snapshots/").json()["results"]] == [
        snap["content_hash"]
    ]

    with django_capture_on_commit_callbacks(execute=True):
        run = client.post(
            "/api/v1/training-runs/",
            {"label_set": "alpha-desk", "snapshot": snap["content_hash"]},
            format="json",
        )
    assert run.status_code == 201, run.content
    assert run.json()["snapshot"] == snap["content_hash"]
    assert client.get(f"/api/v1/training-runs/{run.json()['id']}/").json()["status"] == "succeeded"


@pytest.mark.parametrize(
    "body, status",
    [
        ({}, 400),
        ({"label_set": "alpha-desk", "need": "x"}, 400),
        ({"label_set": "alpha-desk", "test_fraction": 0.9}, 400),
        ({"label_set": "alpha-desk", "seed": -1}, 400),
        ({"label_set": "no-such-set"}, 404),
        ({"label_set": "alpha-desk", "shared": True}, 403),
    ],
)
def test_bad_snapshot_requests(alice, own_samples, body, status):
    assert session(alice).post("/api/v1/snapshots/", body, format="json").status_code == status


def test_a_snapshot_with_one_label_only_is_refused(alice, own_set):
    rows = [r for r in synthetic_rows(per_label=5) if r.labels[0] == "news.sport"]
    samples_import(
        revision=current_revision(own_set), tenant=alice.memberships.get().tenant, rows=rows
    )
    response = session(alice).post("/api/v1/snapshots/", {"label_set": "alpha-desk"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_enough_data"


def test_snapshots_are_scoped_and_role_checked(
    alice, bob, charlie, own_samples, serving_key, tenant_b
):
    snap = session(alice).post("/api/v1/snapshots/", {"label_set": "alpha-desk"}).json()
    url = f"/api/v1/snapshots/{snap['content_hash']}/"
    assert session(charlie).get(url).status_code == 404
    assert (
        session(charlie).post("/api/v1/snapshots/", {"label_set": "alpha-desk"}).status_code == 404
    )
    assert session(bob).get(url).status_code == 200
    assert session(bob).post("/api/v1/snapshots/", {"label_set": "alpha-desk"}).status_code == 403
    assert serving_key.post("/api/v1/snapshots/", {"label_set": "alpha-desk"}).status_code == 403
    # B cannot train on A's snapshot either.
    other = session(charlie).post(
        "/api/v1/training-runs/",
        {"label_set": "news-topics", "snapshot": snap["content_hash"]},
        format="json",
    )
    assert other.status_code == 404
    assert not DatasetSnapshot.objects.for_tenant(tenant_b).filter(tenant=tenant_b).exists()


def test_staff_act_for_a_tenant_they_name(
    staff_user, tenant_a, own_samples, django_capture_on_commit_callbacks
):
    staff = session(staff_user)
    # Naming no tenant: the shared runs (as when promoting shared models), never a 403.
    assert staff.get("/api/v1/training-runs/").status_code == 200
    refused = staff.post("/api/v1/training-runs/", {"label_set": "alpha-desk"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "tenant_required"

    staff.credentials(HTTP_X_TENANT="alpha")
    with django_capture_on_commit_callbacks(execute=True):
        run = staff.post("/api/v1/training-runs/", {"label_set": "alpha-desk"}, format="json")
    assert run.status_code == 201, run.content
    assert staff.get("/api/v1/training-runs/").json()["results"][0]["id"] == run.json()["id"]
    invited = staff.post("/api/v1/members/", {"username": "first-admin", "role": "admin"})
    assert invited.status_code == 201 and invited.json()["set_password_url"]
    assert SupportAccess.objects.for_tenant(tenant_a).filter(method="POST").count() == 2
    staff.credentials(HTTP_X_TENANT="no-such-tenant")
    assert staff.get("/api/v1/training-runs/").status_code == 403


def test_a_non_staff_user_cannot_name_a_tenant_they_are_not_in(charlie, tenant_a):
    client = session(charlie)
    client.credentials(HTTP_X_TENANT="alpha")
    assert client.get("/api/v1/members/").status_code == 403
    assert client.get("/api/v1/training-runs/").status_code == 403


def test_a_viewer_never_starts_training(bob, own_samples):
    response = session(bob).post(
        "/api/v1/training-runs/", {"label_set": "alpha-desk"}, format="json"
    )
    assert response.status_code == 403


def test_a_lost_invitation_link_is_replaced_until_a_password_is_set(alice, bob, charlie, client):
    admin = session(alice)
    first = admin.post("/api/v1/members/", {"username": "dora"}).json()["set_password_url"]
    response = admin.post("/api/v1/members/dora/set-password-link/")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    second = response.json()["set_password_url"]
    assert second.startswith("http://testserver/tenant/set-password/")
    form = client.get(second, follow=True)
    client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "dora-long-pass-42", "new_password2": "dora-long-pass-42"},
    )
    # Both links are spent once the password is set, and no new one is given.
    for link in (first, second):
        assert b"link-invalid" in client.get(link, follow=True).content
    assert admin.post("/api/v1/members/dora/set-password-link/").status_code == 400
    assert admin.post("/api/v1/members/bob/set-password-link/").status_code == 400
    assert session(charlie).post("/api/v1/members/dora/set-password-link/").status_code == 404
    assert session(bob).post("/api/v1/members/dora/set-password-link/").status_code == 403
