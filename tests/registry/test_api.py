from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.models import AliasEvent, ModelAlias, TrainingRun, TrainingSample
from registry.services.aliases import alias_set
from tenants.models import Role
from tests.factories import MembershipFactory, NeedFactory


@pytest.fixture
def session_a(api, alice):
    api.force_authenticate(alice)
    return api


@pytest.fixture
def tenant_model(topic_snapshot, tenant_a, train_version):
    """Two versions of a model owned by tenant A."""
    v1 = train_version(topic_snapshot, algorithm="complement-nb", tenant=tenant_a)
    v2 = train_version(topic_snapshot, algorithm="complement-nb", tenant=tenant_a)
    return v1.registered_model, v1, v2


def test_tenant_sees_shared_and_own_models_only(api_a, api_b, tenant_model, trained_version):
    names_a = {(m["name"], m["owner"]) for m in api_a.get("/api/v1/models/").json()["results"]}
    assert names_a == {
        ("news-topics/tfidf-logreg", "platform"),
        ("news-topics/complement-nb", "alpha"),
    }
    names_b = {m["name"] for m in api_b.get("/api/v1/models/").json()["results"]}
    assert names_b == {"news-topics/tfidf-logreg"}


def test_other_tenant_gets_404_for_model_version_and_card(api_b, tenant_model):
    model, v1, _ = tenant_model
    assert api_b.get(f"/api/v1/models/{model.pk}/").status_code == 404
    assert api_b.get(f"/api/v1/versions/{v1.pk}/").status_code == 404
    assert api_b.get(f"/api/v1/versions/{v1.pk}/card/").status_code == 404
    response = api_b.get(f"/api/v1/versions/compare/?a={v1.pk}&b={v1.pk}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_versions_list_records_everything(api_a, trained_version):
    model = trained_version.registered_model
    rows = api_a.get(f"/api/v1/models/{model.pk}/versions/").json()
    assert len(rows) == 1
    row = rows[0]
    assert row["version"] == 1 and row["artifact_sha256"] == trained_version.artifact_sha256
    assert row["metrics"]["macro_f1"] == trained_version.metrics["macro_f1"]
    assert row["params"]["classifier"]["C"] == 10.0
    assert row["latency_p99_ms"] > 0


def test_model_card_markdown_download(api_a, trained_version):
    response = api_a.get(f"/api/v1/versions/{trained_version.pk}/card/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert "attachment" in response["Content-Disposition"]
    text = response.content.decode()
    for heading in (
        "## Purpose and needs",
        "## Algorithm and parameters",
        "## Training data",
        "## Evaluation",
        "## Size and latency",
        "## Known limits",
        "## Lineage",
    ):
        assert heading in text
    assert trained_version.artifact_sha256 in text
    assert "| news.sport |" in text
    assert "&amp;" not in text and "&#x27;" not in text


def test_admin_promotes_and_rolls_back_own_model(session_a, tenant_model):
    model, v1, v2 = tenant_model
    url = f"/api/v1/models/{model.pk}/"
    assert (
        session_a.post(url + "promote/", {"alias": "production", "version": 1}).status_code == 200
    )
    response = session_a.post(url + "promote/", {"version": 2, "reason": "better"})
    assert response.json()["version"] == 2
    response = session_a.post(url + "rollback/", {"alias": "production", "reason": "oops"})
    assert response.status_code == 200 and response.json()["version"] == 1
    events = session_a.get(url + "alias-events/").json()
    assert [(e["action"], e["to_version"], e["actor"]) for e in events] == [
        ("rollback", 1, "alice"),
        ("set", 2, "alice"),
        ("set", 1, "alice"),
    ]


def test_viewer_and_api_key_cannot_move_aliases(api, bob, api_a, tenant_model):
    model, v1, _ = tenant_model
    api.force_authenticate(bob)
    assert api.post(f"/api/v1/models/{model.pk}/promote/", {"version": 1}).status_code == 403
    response = api_a.post(f"/api/v1/models/{model.pk}/promote/", {"version": 1})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "person_required"
    assert not ModelAlias.objects.exists()


def test_tenant_admin_cannot_promote_a_shared_model_but_staff_can(
    session_a, api, staff_user, tenant_a, trained_version
):
    model = trained_version.registered_model
    response = session_a.post(f"/api/v1/models/{model.pk}/promote/", {"version": 1})
    assert response.status_code == 403
    MembershipFactory(user=staff_user, tenant=tenant_a, role=Role.VIEWER)
    api.force_authenticate(staff_user)
    assert api.post(f"/api/v1/models/{model.pk}/promote/", {"version": 1}).status_code == 200
    assert AliasEvent.objects.get().actor == staff_user


def test_rollback_without_history_is_a_clear_error(session_a, tenant_model):
    model, v1, _ = tenant_model
    alias_set(registered_model=model, alias="production", version=v1)
    response = session_a.post(f"/api/v1/models/{model.pk}/rollback/", {})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "nothing_to_roll_back"


def test_compare_endpoint_gives_per_label_deltas(api_a, tenant_model, trained_version):
    _, v1, _ = tenant_model
    response = api_a.get(f"/api/v1/versions/compare/?a={v1.pk}&b={trained_version.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["snapshot"] == trained_version.snapshot.content_hash
    assert set(body["per_label"]) == {"news.business", "news.sport", "news.tech"}
    assert "f1_delta" in body["per_label"]["news.tech"]


def test_create_training_run_for_a_need(
    session_a, tenant_a, topic_snapshot, django_capture_on_commit_callbacks
):
    need = NeedFactory(tenant=tenant_a, slug="topics", label_set=topic_snapshot.revision.label_set)
    with django_capture_on_commit_callbacks(execute=True):
        response = session_a.post(
            "/api/v1/training-runs/",
            {"need": "topics", "algorithm": "hashing-sgd", "promote_to": "candidate"},
            format="json",
        )
    assert response.status_code == 201, response.json()
    run = session_a.get(f"/api/v1/training-runs/{response.json()['id']}/").json()
    assert run["status"] == "succeeded" and run["progress"] == 1.0 and run["version"] == 1
    assert run["registered_model"] == "news-topics/hashing-sgd"
    need.refresh_from_db()
    assert need.model.name == "news-topics/hashing-sgd" and need.model.tenant == tenant_a
    assert ModelAlias.objects.get(registered_model=need.model).name == "candidate"


def test_training_run_validation_and_permissions(session_a, api, bob, topic_snapshot):
    bad = session_a.post("/api/v1/training-runs/", {"algorithm": "tfidf-logreg"}, format="json")
    assert bad.status_code == 400 and "need" in bad.json()["error"]["fields"]
    shared = session_a.post(
        "/api/v1/training-runs/", {"label_set": "news-topics", "shared": True}, format="json"
    )
    assert shared.status_code == 403
    api.force_authenticate(bob)
    assert api.post("/api/v1/training-runs/", {"label_set": "news-topics"}).status_code == 403
    assert not TrainingRun.objects.dangerously_unscoped().exists()


def test_other_tenant_cannot_read_a_run(api_b, tenant_model):
    run = tenant_model[1].training_run
    assert api_b.get(f"/api/v1/training-runs/{run.pk}/").status_code == 404


def test_dataset_upload_endpoint_reports_rows_and_imports_nothing(session_a, topics):
    bad = SimpleUploadedFile("d.csv", b"text,labels\nok,news.tech\n,news.sport\nx,nope\n")
    response = session_a.post("/api/v1/datasets/upload/", {"label_set": "news-topics", "file": bad})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_rows"
    assert [(r["row"], r["field"]) for r in error["fields"]["rows"]] == [(3, "text"), (4, "labels")]
    assert TrainingSample.objects.dangerously_unscoped().count() == 0
    good = SimpleUploadedFile("d.csv", b"text,labels\nok,news.tech\nfine,news.sport\n")
    response = session_a.post(
        "/api/v1/datasets/upload/", {"label_set": "news-topics", "file": good}
    )
    assert response.status_code == 201 and response.json()["created"] == 2
    assert set(
        TrainingSample.objects.dangerously_unscoped().values_list("tenant__slug", flat=True)
    ) == {"alpha"}


def test_upload_to_another_tenants_label_set_is_404(session_a, tenant_b):
    from tests.factories import make_label_set

    make_label_set(slug="private", keys_=["x.a", "x.b"], tenant=tenant_b)
    upload = SimpleUploadedFile("d.csv", b"text,labels\nok,x.a\n")
    response = session_a.post("/api/v1/datasets/upload/", {"label_set": "private", "file": upload})
    assert response.status_code == 404


def test_staff_without_any_membership_promote_and_list_shared_models_only(
    api, staff_user, tenant_model, trained_version
):
    """README: staff promote shared models through the API (was 403 "not a member")."""
    shared = trained_version.registered_model
    own_model, _, _ = tenant_model
    api.force_authenticate(staff_user)
    names = {m["name"] for m in api.get("/api/v1/models/").json()["results"]}
    assert names == {shared.name}  # a tenant's own model is not a platform row
    assert api.get(f"/api/v1/models/{shared.pk}/versions/").status_code == 200
    response = api.post(
        f"/api/v1/models/{shared.pk}/promote/", {"version": 1, "reason": "ops"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert AliasEvent.objects.get().actor == staff_user
    assert api.post(f"/api/v1/models/{own_model.pk}/promote/", {"version": 1}).status_code == 404


def test_non_staff_without_membership_still_gets_403_on_models(api, db, trained_version):
    from tests.factories import UserFactory

    api.force_authenticate(UserFactory(username="nobody"))
    response = api.post(f"/api/v1/models/{trained_version.registered_model.pk}/promote/", {})
    assert response.status_code == 403
