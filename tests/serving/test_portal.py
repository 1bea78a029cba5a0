"""Portal pages for serving, the admin, and the OpenAPI description."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from serving.models import BatchJob, BatchStatus, PredictionLog

SPORT = "football match goal striker league coach stadium penalty"


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def test_try_it_page_lists_served_needs(alice_client, need_a, need_b):
    page = alice_client.get("/serving/try/").content.decode()
    assert 'value="news"' in page
    assert "bravo-news" not in page  # another tenant's need is not offered


def test_try_it_shows_tags_and_scores_without_logging(alice_client, need_a):
    response = alice_client.post(
        "/serving/try/", {"need": "news", "text": SPORT}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="badge badge-live tag-label" title="news.sport">Sport<' in html
    assert "news-topics/tfidf-logreg v1" in html
    from serving import predlog

    assert predlog.flush() == 0 and not PredictionLog.objects.dangerously_unscoped().exists()


def test_try_it_explains_errors(alice_client, need_a, need_b):
    assert (
        "empty or only whitespace"
        in alice_client.post("/serving/try/", {"need": "news", "text": "  "}).content.decode()
    )
    assert (
        "No need"
        in alice_client.post(
            "/serving/try/", {"need": "bravo-news", "text": SPORT}
        ).content.decode()
    )


def test_batch_page_uploads_and_shows_progress(
    django_capture_on_commit_callbacks, alice_client, need_a
):
    upload = SimpleUploadedFile("backlog.csv", f"id,text\n1,{SPORT}\n2,{SPORT}\n".encode())
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post("/serving/batches/", {"need": "news", "file": upload})
    assert response.status_code == 302
    job = BatchJob.objects.dangerously_unscoped().get()
    assert job.status == BatchStatus.SUCCEEDED and job.filename == "backlog.csv"
    page = alice_client.get("/serving/batches/").content.decode()
    assert f'id="batch-{job.pk}"' in page and "2/2 (100.0%)" in page
    assert f"/serving/batches/{job.pk}/results.csv" in page
    download = alice_client.get(f"/serving/batches/{job.pk}/results.jsonl")
    assert b'"labels": ["Sport"]' in b"".join(download.streaming_content)
    row = alice_client.get(f"/serving/batches/{job.pk}/row/").content.decode()
    assert "hx-trigger" not in row  # finished jobs stop polling


def test_batch_page_reports_a_bad_upload(alice_client, need_a):
    upload = SimpleUploadedFile("bad.csv", b"id,text\n1,caf\xe9\n")
    response = alice_client.post("/serving/batches/", {"need": "news", "file": upload}, follow=True)
    assert "Upload refused" in response.content.decode() and "UTF-8" in response.content.decode()
    assert not BatchJob.objects.dangerously_unscoped().exists()


def test_viewer_cannot_upload_or_cancel(client, bob, need_a):
    client.force_login(bob)
    upload = SimpleUploadedFile("b.csv", f"id,text\n1,{SPORT}\n".encode())
    client.post("/serving/batches/", {"need": "news", "file": upload})
    assert not BatchJob.objects.dangerously_unscoped().exists()
    assert 'id="batch-upload"' not in client.get("/serving/batches/").content.decode()


def test_other_tenants_batch_rows_are_404(
    django_capture_on_commit_callbacks, client, charlie, alice_client, need_a
):
    upload = SimpleUploadedFile("b.csv", f"id,text\n1,{SPORT}\n".encode())
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/serving/batches/", {"need": "news", "file": upload})
    job = BatchJob.objects.dangerously_unscoped().get()
    client.force_login(charlie)
    assert client.get(f"/serving/batches/{job.pk}/row/").status_code == 404
    assert client.get(f"/serving/batches/{job.pk}/results.csv").status_code == 404
    assert client.post(f"/serving/batches/{job.pk}/cancel/").status_code == 404


def test_dead_letters_page_is_empty_by_default(alice_client):
    assert "No dead letters" in alice_client.get("/serving/dead-letters/").content.decode()


def test_admin_pages_render(client, staff_user, need_a, django_capture_on_commit_callbacks, api_a):
    with django_capture_on_commit_callbacks(execute=True):
        api_a.post(
            "/api/v1/needs/news/items", {"items": [{"id": "1", "text": SPORT}]}, format="json"
        )
    client.force_login(staff_user)
    for model in ["predictionlog", "item", "webhookdelivery", "batchjob", "scheduledbatch"]:
        assert client.get(f"/admin/serving/{model}/").status_code == 200, model


def test_openapi_documents_every_serving_endpoint(client):
    schema = client.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    for path in [
        "/api/v1/needs/{need_slug}/tag",
        "/api/v1/needs/{need_slug}/items",
        "/api/v1/batch-jobs",
        "/api/v1/batch-jobs/{id}/",
        "/api/v1/batch-jobs/{id}/cancel",
        "/api/v1/batch-jobs/{id}/results",
        "/api/v1/dead-letters/",
        "/api/v1/dead-letters/{id}/replay",
        "/api/v1/predictions/",
    ]:
        assert any(p.rstrip("/") == path.rstrip("/") for p in paths), path
    tag = next(v for p, v in paths.items() if p.startswith("/api/v1/needs/{need_slug}/tag"))["post"]
    assert "TagResponse" in str(tag["responses"]["200"]) and "413" in tag["responses"]
    assert "ItemsIn" in str(tag["requestBody"])
