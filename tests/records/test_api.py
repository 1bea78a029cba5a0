"""The records API as a business unit uses it: a person writes, keys read, other tenants 404."""

from __future__ import annotations

import pytest

from records.models import Section, SectionRevision
from tests.conftest import api_client_for_key
from tests.factories import ApiKeyFactory, LabelFactory
from tests.monitoring.factories import make_monitored_need

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_api(api, alice):
    api.force_authenticate(alice)
    return api


def put_goal(client, need, body, base):
    return client.put(
        f"/api/v1/records/{need.slug}/sections/goal/",
        {"body": body, "base_revision": base},
        format="json",
    )


def test_owner_reads_the_record_with_its_timeline(alice_api, live_need):
    response = alice_api.get(f"/api/v1/records/{live_need.slug}/")
    assert response.status_code == 200
    body = response.json()
    assert body["need"] == "desk-topics" and body["sections"]["goal"] is None
    assert {"promotion", "alert", "training_run"} <= {e["kind"] for e in body["timeline"]}
    listing = alice_api.get("/api/v1/records/").json()
    assert [row["need"] for row in listing] == ["desk-topics"]


def test_other_tenants_record_is_404(api, charlie, live_need, key_b):
    api.force_authenticate(charlie)
    assert api.get(f"/api/v1/records/{live_need.slug}/").status_code == 404
    assert put_goal(api, live_need, "mine now", 0).status_code == 404
    assert api.get(f"/api/v1/records/{live_need.slug}/export").status_code == 404
    assert api_client_for_key(key_b).get(f"/api/v1/records/{live_need.slug}/").status_code == 404
    assert api.get("/api/v1/records/").json() == []


def test_edit_keeps_revisions_and_a_stale_edit_is_409(alice_api, api, bob, live_need, tenant_a):
    first = put_goal(alice_api, live_need, "Route articles.\n\nSuccess: F1 > 0.8", 0)
    assert first.status_code == 200 and first.json()["revision"] == 1
    second = put_goal(alice_api, live_need, "Route articles.\n\nSuccess: F1 > 0.85", 1)
    assert second.status_code == 200 and second.json()["revision"] == 2
    # Someone who opened revision 1 and saves now is refused, nothing overwritten.
    stale = put_goal(alice_api, live_need, "Something else entirely", 1)
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "stale_revision"
    section = Section.objects.for_tenant(tenant_a).get(kind="goal")
    assert section.body.endswith("0.85") and section.revision == 2
    revisions = alice_api.get(
        f"/api/v1/records/{live_need.slug}/items/{section.pk}/revisions/"
    ).json()
    assert [r["number"] for r in revisions] == [2, 1]
    assert revisions[0]["author"] == "alice"
    assert "-Success: F1 > 0.8" in revisions[0]["diff"]
    assert "+Success: F1 > 0.85" in revisions[0]["diff"]
    # A new section cannot claim an old revision.
    assert (
        alice_api.put(
            f"/api/v1/records/{live_need.slug}/sections/tried/",
            {"body": "x", "base_revision": 3},
            format="json",
        ).status_code
        == 400
    )


def test_viewer_and_api_keys_never_write(api, bob, live_need, key_a):
    api.force_authenticate(bob)
    assert api.get(f"/api/v1/records/{live_need.slug}/").status_code == 200
    assert put_goal(api, live_need, "viewer text", 0).status_code == 403
    key_client = api_client_for_key(key_a)
    assert key_client.get(f"/api/v1/records/{live_need.slug}/").status_code == 200
    assert put_goal(key_client, live_need, "key text", 0).status_code == 403
    assert (
        key_client.post(
            f"/api/v1/records/{live_need.slug}/items/",
            {"kind": "lesson", "title": "t"},
            format="json",
        ).status_code
        == 403
    )
    read_only = ApiKeyFactory(tenant=live_need.tenant, scopes=["tag"])
    assert api_client_for_key(read_only).get("/api/v1/records/").status_code == 403
    assert not SectionRevision.objects.for_tenant(live_need.tenant).exists()


def test_problem_links_are_checked_inside_the_tenant(alice_api, live_need, tenant_b):
    _, foreign_version = make_monitored_need(
        tenant=tenant_b, slug="b-need", baseline={"news.sport": 3}
    )
    url = f"/api/v1/records/{live_need.slug}/items/"
    foreign = alice_api.post(
        url,
        {"kind": "problem", "title": "Sport confused", "model_version": foreign_version.pk},
        format="json",
    )
    assert foreign.status_code == 400
    assert foreign.json()["error"]["code"] == "invalid_link"
    unknown = alice_api.post(
        url, {"kind": "problem", "title": "x", "labels": ["no.such.label"]}, format="json"
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_label"
    own_version = live_need.model.versions.get(version=2)
    LabelFactory(key="news.sport")
    created = alice_api.post(
        url,
        {
            "kind": "problem",
            "title": "Sport confused with business",
            "body": "Seen in **v2**",
            "model_version": own_version.pk,
            "label": "news.sport",
            "labels": ["news.sport"],
            "tags": ["Confusion", "confusion"],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    problem = created.json()
    assert problem["status"] == "open" and problem["model_version"] == own_version.pk
    assert problem["tags"] == ["confusion"] and problem["label"] == "news.sport"
    solved = alice_api.patch(
        f"{url}{problem['id']}/", {"status": "solved", "base_revision": 1}, format="json"
    )
    assert solved.status_code == 200
    assert solved.json()["revision"] == 2 and solved.json()["resolved_at"]
    again = alice_api.patch(
        f"{url}{problem['id']}/", {"status": "wont_fix", "base_revision": 1}, format="json"
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    "payload",
    [
        {"kind": "goal", "title": "x"},
        {"kind": "lesson", "title": ""},
        {"kind": "lesson", "title": "x" * 201},
        {"kind": "lesson", "title": "x", "status": "open"},
        {"kind": "problem", "title": "x", "shareable": True},
        {"kind": "problem", "title": "x", "status": "maybe"},
        {"kind": "lesson", "title": "x", "tags": ["t" * 51]},
    ],
)
def test_bad_items_get_a_clear_400(alice_api, live_need, payload):
    response = alice_api.post(f"/api/v1/records/{live_need.slug}/items/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"]


def test_unknown_section_kind_is_404(alice_api, live_need):
    assert put_goal(alice_api, live_need, "x", 0).status_code == 200
    response = alice_api.put(
        f"/api/v1/records/{live_need.slug}/sections/lesson/",
        {"body": "x", "base_revision": 0},
        format="json",
    )
    assert response.status_code == 404


def test_export_has_sections_timeline_and_model_cards(alice_api, live_need):
    put_goal(alice_api, live_need, "Route **every** article", 0)
    response = alice_api.get(f"/api/v1/records/{live_need.slug}/export")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert "# Project record: Desk Topics" in text
    assert "Route **every** article" in text
    assert "## Timeline" in text and "production: v1 → v2" in text
    # Both versions that served production get their model card, the serving one first.
    v2 = text.index("# Model card: alpha-desk-topics/tfidf-logreg v2")
    v1 = text.index("# Model card: alpha-desk-topics/tfidf-logreg v1")
    assert v2 < v1


def test_retrospective_draft_reports_what_changed_since_the_last(alice_api, live_need, alice):
    from tests.records.conftest import add_version

    url = f"/api/v1/records/{live_need.slug}/retrospective-draft?milestone=launch"
    first = alice_api.get(url).json()
    assert "v2" in first["body"] and "1 raised, 1 still open" in first["body"]
    created = alice_api.post(
        f"/api/v1/records/{live_need.slug}/items/",
        {"kind": "retrospective", "title": first["title"], "body": first["body"]},
        format="json",
    )
    assert created.status_code == 201
    add_version(live_need, 3, f1=0.91, acc=0.9, promote_by=alice, reason="retrained on cases")
    second = alice_api.get(url.replace("launch", "retrain")).json()
    assert second["title"].startswith("After a retrain")
    f1 = next(m for m in second["metrics"] if m["metric"] == "macro_f1")
    assert f1["before"] == 0.86 and f1["now"] == 0.91
    assert f1["change"] == pytest.approx(0.05)
    assert "| macro_f1 | 0.860 | 0.910 | +0.050 |" in second["body"]
    assert "0 raised" in second["body"]  # the alert came before the last retrospective
    assert alice_api.get(url.replace("launch", "party")).status_code == 400


def test_search_finds_own_records_only(
    alice_api, api, charlie, live_need, tenant_b, requires_postgres
):
    put_goal(alice_api, live_need, "We tokenized the headlines before training.", 0)
    hits = alice_api.get("/api/v1/record-search/?q=tokenizing").json()
    assert [(h["need"], h["kind"]) for h in hits] == [("desk-topics", "goal")]
    api.force_authenticate(charlie)
    assert api.get("/api/v1/record-search/?q=tokenizing").json() == []
    assert alice_api.get("/api/v1/record-search/?q=").status_code == 400


def test_retrospective_draft_is_written_in_the_readers_language_on_the_tenants_clock(
    alice_api, live_need
):
    live_need.tenant.time_zone = "Asia/Shanghai"
    live_need.tenant.save(update_fields=["time_zone"])
    url = f"/api/v1/records/{live_need.slug}/retrospective-draft?milestone=launch"

    english = alice_api.get(url).json()
    chinese = alice_api.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()

    assert "1 raised, 1 still open" in english["body"] and "(Asia/Shanghai)" in english["body"]
    body = chinese["body"]
    assert "新增 1 条，仍有 1 条未解决" in body and "复盘" in chinese["title"]
    for english_text in ("raised", "still open", "What changed", "What went well", "Cases:"):
        assert english_text not in body
    # The same facts, in both: the metrics table's numbers and the version.
    assert english["metrics"] == chinese["metrics"]
    assert "v2" in body
