"""Serving from the object-storage artifact backend: a host with an empty cache tags through the
API (the model downloaded from the bucket and verified), and an altered object is refused."""

from __future__ import annotations

from registry import artifacts
from registry.models import ArtifactIntegrityIncident
from serving.runtime import get_runtime

SPORT = "football match goal striker league coach stadium penalty"


def _tag(client):
    return client.post(
        "/api/v1/needs/news/tag", {"items": [{"id": "1", "text": SPORT}]}, format="json"
    )


def test_a_host_with_an_empty_cache_serves_the_model_from_the_bucket(
    s3_artifacts, api_a, need_a, model_version, settings, tmp_path
):
    settings.ARTIFACT_CACHE_DIR = tmp_path / "fresh-host"
    get_runtime().forget()

    response = _tag(api_a)
    assert response.status_code == 200, response.content
    assert response.json()["items"][0]["labels"] == ["Sport"]
    assert (settings.ARTIFACT_CACHE_DIR / model_version.artifact_sha256[:2]).is_dir()


def test_a_host_refuses_an_altered_object_and_does_not_serve_it(
    s3_artifacts, api_a, need_a, model_version, settings, tmp_path
):
    s3_artifacts.put_object(Key=artifacts.object_key(model_version.artifact_sha256), Body=b"x")
    settings.ARTIFACT_CACHE_DIR = tmp_path / "fresh-host"
    get_runtime().forget()

    response = _tag(api_a)
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "model_unavailable"
    incident = ArtifactIntegrityIncident.objects.get(sha256=model_version.artifact_sha256)
    assert incident.kind == "mismatch"
