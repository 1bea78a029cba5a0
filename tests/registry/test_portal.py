from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.models import AliasEvent, ModelAlias, TrainingRun, TrainingSample
from tests.conftest import login


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def own_versions(topic_snapshot, tenant_a, train_version):
    v1 = train_version(topic_snapshot, algorithm="complement-nb", tenant=tenant_a)
    v2 = train_version(topic_snapshot, algorithm="complement-nb", tenant=tenant_a)
    return v1, v2


def test_model_list_shows_shared_and_own_models(alice_client, trained_version, own_versions):
    page = alice_client.get("/models/").content.decode()
    assert "news-topics/tfidf-logreg" in page and "news-topics/complement-nb" in page
    assert 'id="train"' in page  # alice is an admin


def test_other_tenant_gets_404_on_model_card_and_run(client, charlie, own_versions):
    v1, _ = own_versions
    client.force_login(charlie)
    model = v1.registered_model
    assert client.get(f"/models/{model.pk}/").status_code == 404
    assert client.get(f"/models/{model.pk}/versions/1/").status_code == 404
    assert client.get(f"/models/{model.pk}/versions/1/card.md").status_code == 404
    assert client.get(f"/models/{model.pk}/versions/1/confusion.svg").status_code == 404
    assert client.get(f"/models/runs/{v1.training_run_id}/").status_code == 404
    assert client.get(f"/models/compare/?a={v1.pk}&b={v1.pk}").status_code == 404


def test_model_card_page_has_every_section_and_a_picture(alice_client, trained_version):
    model = trained_version.registered_model
    page = alice_client.get(f"/models/{model.pk}/versions/1/").content.decode()
    for section in ("purpose", "algorithm", "data", "evaluation", "size", "limits", "lineage"):
        assert f'id="{section}"' in page
    assert f"/models/{model.pk}/versions/1/confusion.svg" in page
    svg = alice_client.get(f"/models/{model.pk}/versions/1/confusion.svg")
    assert svg["Content-Type"] == "image/svg+xml"
    body = svg.content.decode()
    assert body.startswith("<svg") and body.count("<rect") == 9
    md = alice_client.get(f"/models/{model.pk}/versions/1/card.md")
    assert md["Content-Type"].startswith("text/markdown")
    assert "## Known limits" in md.content.decode()


def test_admin_promotes_and_rolls_back_from_the_portal(alice_client, own_versions):
    v1, v2 = own_versions
    url = f"/models/{v1.registered_model_id}/"
    alice_client.post(url, {"action": "promote", "alias": "production", "version": 1})
    alice_client.post(url, {"action": "promote", "alias": "production", "version": 2})
    response = alice_client.post(url, {"action": "rollback", "alias": "production", "reason": "x"})
    assert response.status_code == 302
    assert ModelAlias.objects.get(name="production").version == v1
    page = alice_client.get(url).content.decode()
    assert "Rollback" in page and 'id="promote"' in page


def test_viewer_cannot_promote_from_the_portal(client, bob, own_versions):
    v1, _ = own_versions
    client.force_login(bob)
    page = client.get(f"/models/{v1.registered_model_id}/").content.decode()
    assert 'id="promote"' not in page
    client.post(f"/models/{v1.registered_model_id}/", {"action": "promote", "version": 1})
    assert not AliasEvent.objects.exists()


def test_compare_page_shows_deltas_and_two_pictures(alice_client, own_versions, trained_version):
    v1, _ = own_versions
    page = alice_client.get(f"/models/compare/?a={v1.pk}&b={trained_version.pk}").content.decode()
    assert 'id="per-label"' in page and "news.sport" in page
    assert page.count("<svg") == 2


def test_run_page_polls_until_finished(alice_client, topic_snapshot, tenant_a):
    from registry.services.training import training_run_create

    run = training_run_create(
        label_set=topic_snapshot.revision.label_set, tenant=tenant_a, enqueue=False
    )
    page = alice_client.get(f"/models/runs/{run.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in page and "waiting for a training worker" in page
    from registry.services.training import training_run_execute

    training_run_execute(run_id=run.pk)
    fragment = alice_client.get(f"/models/runs/{run.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in fragment and "Succeeded" in fragment
    assert "<html" not in fragment


def test_train_form_queues_a_run(alice_client, topic_snapshot, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            "/models/train/", {"label_set": "news-topics", "algorithm": "complement-nb"}
        )
    run = TrainingRun.objects.dangerously_unscoped().get()
    assert response.url == f"/models/runs/{run.pk}/"
    assert run.tenant.slug == "alpha" and run.created_by.username == "alice"


def test_upload_form_lists_bad_rows_and_imports_nothing(alice_client, topics):
    bad = SimpleUploadedFile("d.csv", b"text,labels\nok,news.tech\nbad,news.nope\n")
    response = alice_client.post(
        "/models/datasets/upload/", {"label_set": "news-topics", "file": bad}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="upload-errors"' in page and "news.nope" in page and "<td>3</td>" in page
    assert TrainingSample.objects.dangerously_unscoped().count() == 0
    good = SimpleUploadedFile("d.csv", b"text,labels\nok,news.tech\n")
    response = alice_client.post(
        "/models/datasets/upload/", {"label_set": "news-topics", "file": good}
    )
    assert 'id="upload-report"' in response.content.decode()
    assert TrainingSample.objects.dangerously_unscoped().count() == 1


@pytest.mark.browser
def test_registry_pages_in_a_browser(
    page, live_server, alice, trained_version, own_versions, screenshot
):
    from registry.services.aliases import alias_set

    alias_set(
        registered_model=trained_version.registered_model,
        alias="production",
        version=trained_version,
    )
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/models/")
    assert page.locator("#models").inner_text().count("news-topics/") == 2
    screenshot(page, "registry-models")
    model = own_versions[0].registered_model
    page.goto(f"{live_server.url}/models/{model.pk}/")
    screenshot(page, "registry-model-detail")
    page.click("text=Compare A and B")
    page.wait_for_selector("#per-label")
    screenshot(page, "registry-compare")
    page.goto(f"{live_server.url}/models/{trained_version.registered_model_id}/versions/1/")
    image = page.locator("#confusion")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(page, "registry-model-card")
    page.goto(f"{live_server.url}/models/datasets/upload/")
    page.set_input_files(
        "input[name=file]",
        files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": b"text,labels\n,news.tech\n"}],
    )
    page.click("text=Upload and import")
    page.wait_for_selector("#upload-errors")
    screenshot(page, "registry-upload-errors")


def test_portal_and_api_uploads_share_one_flow(settings, alice_client, api, alice, topics):
    # Both call registry.services.datasets.dataset_file_upload: the same limit, the same answer.
    settings.UPLOAD_MAX_BYTES = 30
    content = b"text,labels\nA long enough training text,news.tech\n"
    api.force_authenticate(alice)
    answer = api.post(
        "/api/v1/datasets/upload/",
        {"label_set": "news-topics", "file": SimpleUploadedFile("d.csv", content)},
    )
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "file_too_large"
    portal = alice_client.post(
        "/models/datasets/upload/",
        {"label_set": "news-topics", "file": SimpleUploadedFile("d.csv", content)},
    )
    assert portal.status_code == 400
    assert answer.json()["error"]["message"] in portal.content.decode()
    assert TrainingSample.objects.dangerously_unscoped().count() == 0
