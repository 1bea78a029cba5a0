"""Issue 15.1 in the portal: members, label sets, label proposals, snapshots and the webhook.

alice = admin of A, bob = viewer of A, charlie = admin of B. Each page: the admin can do the
step, a viewer cannot write, another tenant's objects are a 404, bad input is a 400 with the
reason on the page.
"""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from registry.models import DatasetSnapshot
from registry.services.datasets import current_revision, samples_import
from taxonomy import services as taxonomy_services
from taxonomy.models import LabelProposal, LabelSet
from tenants.models import Membership
from tests.registry.conftest import synthetic_rows

User = get_user_model()


def session(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def own_set(tenant_a, news_topics):
    return taxonomy_services.label_set_create(
        tenant=tenant_a,
        slug="alpha-desk",
        name="Alpha desk",
        label_keys=["news.sport", "news.tech"],
    )


def test_admin_invites_from_the_members_page(alice, bob, tenant_a):
    client = session(alice)
    page = client.post("/tenant/members/", {"username": "dora", "role": "reviewer"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert 'id="set-password-link"' in html and "/tenant/set-password/" in html
    assert Membership.objects.for_tenant(tenant_a).get(user__username="dora").role == "reviewer"
    # The link is on the answer to the invitation only.
    assert "/tenant/set-password/" not in client.get("/tenant/members/").content.decode()
    duplicate = client.post("/tenant/members/", {"username": "dora", "role": "viewer"})
    assert duplicate.status_code == 400 and "already a member" in duplicate.content.decode()

    client.post("/tenant/members/bob/role/", {"role": "requester"})
    assert Membership.objects.for_tenant(tenant_a).get(user=bob).role == "requester"
    client.post("/tenant/members/bob/remove/")
    assert not Membership.objects.for_tenant(tenant_a).filter(user=bob).exists()


def test_members_page_is_for_the_tenants_admins(alice, bob, charlie, tenant_a):
    assert session(bob).get("/tenant/members/").status_code == 403
    assert session(bob).post("/tenant/members/", {"username": "x"}).status_code == 403
    assert session(charlie).post("/tenant/members/alice/remove/").status_code == 404
    assert (
        session(charlie).post("/tenant/members/alice/role/", {"role": "viewer"}).status_code == 404
    )
    assert not User.objects.filter(username="x").exists()


def test_label_set_created_and_revised_in_the_portal(alice, tenant_a, news_topics):
    client = session(alice)
    assert client.get("/taxonomy/label-sets/new/").status_code == 200
    # Names, Chinese names and aliases resolve to keys.
    created = client.post(
        "/taxonomy/label-sets/new/",
        {"slug": "desk", "name": "Desk", "kind": "multiclass", "labels": "Sport, 科技"},
    )
    assert created.status_code == 302
    label_set = LabelSet.objects.owned_by(tenant_a).get(slug="desk")
    assert label_set.current_revision.label_keys() == ["news.sport", "news.tech"]
    assert 'href="/taxonomy/label-sets/desk/edit/"' in client.get("/taxonomy/").content.decode()

    revised = client.post(
        "/taxonomy/label-sets/desk/edit/",
        {"name": "Desk", "kind": "multiclass", "labels": "news.sport, news.tech, Politics"},
    )
    assert revised.status_code == 302
    assert label_set.current_revision.number == 2
    assert label_set.current_revision.label_keys()[-1] == "news.politics"

    unknown = client.post(
        "/taxonomy/label-sets/new/",
        {"slug": "d2", "name": "D2", "kind": "multiclass", "labels": "Sport, Weather"},
    )
    assert unknown.status_code == 400 and "Weather" in unknown.content.decode()
    taken = client.post(
        "/taxonomy/label-sets/new/",
        {"slug": "news-topics", "name": "x", "kind": "multiclass", "labels": "Sport, Tech"},
    )
    assert taken.status_code == 400 and "already exists" in taken.content.decode()


def test_label_set_pages_are_for_admins_and_own_sets(alice, bob, charlie, own_set):
    assert session(bob).get("/taxonomy/label-sets/new/").status_code == 403
    assert session(charlie).get("/taxonomy/label-sets/alpha-desk/edit/").status_code == 404
    assert session(alice).get("/taxonomy/label-sets/news-topics/edit/").status_code == 404  # shared


def test_proposals_page_proposes_and_shows_the_status(
    alice, bob, charlie, tenant_a, tree, staff_user
):
    client = session(alice)
    response = client.post(
        "/taxonomy/proposals/",
        {"key": "news.business.markets", "parent": "news.business", "name_en": "Markets",
         "aliases": "stocks, 股市", "reason": "markets desk"},
    )  # fmt: skip
    assert response.status_code == 302
    proposal = LabelProposal.objects.for_tenant(tenant_a).get()
    assert proposal.aliases == ["stocks", "股市"] and proposal.parent.key == "news.business"
    assert "Pending" in client.get("/taxonomy/proposals/").content.decode()
    taxonomy_services.label_proposal_approve(proposal=proposal, actor=staff_user)
    page = client.get("/taxonomy/proposals/").content.decode()
    assert "Approved" in page and 'href="/taxonomy/labels/news.business.markets/"' in page

    bad = client.post("/taxonomy/proposals/", {"key": "news.sport", "name_en": "Sport"})
    assert bad.status_code == 400 and "already taken" in bad.content.decode()
    assert (
        session(bob).post("/taxonomy/proposals/", {"key": "a.b", "name_en": "x"}).status_code == 403
    )
    other = session(charlie).get("/taxonomy/proposals/").content.decode()
    assert 'data-key="news.business.markets"' not in other


def test_proposals_are_listed_in_the_admin_with_their_status(alice, tree, staff_user):
    taxonomy_services.label_proposal_create(
        tenant=alice.memberships.get().tenant, key="news.weather", name_en="Weather"
    )
    client = session(staff_user)
    page = client.get("/admin/taxonomy/labelproposal/").content.decode()
    assert "news.weather" in page and "Pending" in page


def test_snapshot_made_in_the_portal_shows_split_and_distribution(
    alice, bob, charlie, own_set, tenant_a
):
    rows = [r for r in synthetic_rows(per_label=10) if r.labels[0] != "news.business"]
    samples_import(revision=current_revision(own_set), tenant=tenant_a, rows=rows)
    client = session(alice)
    made = client.post(
        "/models/snapshots/", {"label_set": "alpha-desk", "seed": "3", "test_fraction": "0.2"}
    )
    assert made.status_code == 302
    snapshot = DatasetSnapshot.objects.owned_by(tenant_a).get()
    assert made["Location"] == f"/models/snapshots/{snapshot.content_hash}/"
    html = client.get(made["Location"]).content.decode()
    assert '<tr data-label="news.sport"><td>news.sport</td><td>8</td><td>2</td><td>10</td>' in html
    assert 'name="snapshot" value="' + snapshot.content_hash in html

    assert session(bob).get(made["Location"]).status_code == 200
    assert session(bob).post("/models/snapshots/", {"label_set": "alpha-desk"}).status_code == 403
    assert session(charlie).get(made["Location"]).status_code == 404
    bad = client.post("/models/snapshots/", {"label_set": "alpha-desk", "test_fraction": "0.9"})
    assert bad.status_code == 400


def test_webhook_page_saves_rotates_and_tests(alice, bob, tenant_a):
    client = session(alice)
    assert (
        client.post("/serving/webhook/", {"action": "save", "url": "not a url"}).status_code == 400
    )
    assert (
        client.post(
            "/serving/webhook/", {"action": "save", "url": "http://127.0.0.1:9/h"}
        ).status_code
        == 302
    )
    tenant_a.refresh_from_db()
    assert tenant_a.webhook_url == "http://127.0.0.1:9/h" and tenant_a.webhook_secret
    rotated = client.post("/serving/webhook/", {"action": "rotate"})
    tenant_a.refresh_from_db()
    assert tenant_a.webhook_secret in rotated.content.decode()
    assert tenant_a.webhook_secret not in client.get("/serving/webhook/").content.decode()
    tested = client.post("/serving/webhook/", {"action": "test"}).content.decode()
    assert 'id="test-result"' in tested and "Test not delivered" in tested
    assert session(bob).get("/serving/webhook/").status_code == 403


def test_members_page_gives_a_new_link_for_an_unused_invitation(alice, bob, charlie, tenant_a):
    client = session(alice)
    client.post("/tenant/members/", {"username": "dora", "role": "viewer"})
    page = client.post("/tenant/members/", {"action": "link", "username": "dora"})
    assert page.status_code == 200 and 'id="set-password-link"' in page.content.decode()
    refused = client.post("/tenant/members/", {"action": "link", "username": "bob"}, follow=True)
    assert "has set a password already" in refused.content.decode()
    other = session(charlie).post("/tenant/members/", {"action": "link", "username": "dora"})
    assert other.status_code == 404
