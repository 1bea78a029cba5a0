"""Can this need be served? For stream and batch POSTs a database check through
`registry.selectors.serving_versions`, never a model load in the web process."""

from __future__ import annotations

import pytest
from django.utils import timezone

from core.errors import DomainError
from registry.models import ArtifactIntegrityIncident, ModelAlias
from registry.selectors import serving_version, serving_versions
from serving.runtime import get_runtime
from tests.serving.factories import add_version, set_alias, train_classifier
from tests.serving.test_batch import csv_file, upload

SPORT = "football match goal striker league coach stadium penalty"


def ingest(client, slug="news"):
    return client.post(
        f"/api/v1/needs/{slug}/items", {"items": [{"id": "1", "text": SPORT}]}, format="json"
    )


def test_stream_and_batch_posts_accept_without_loading_the_model(api_a, need_a):
    assert ingest(api_a).status_code == 202
    assert upload(api_a, csv_file([("1", SPORT)])).status_code == 201
    # The worker that tags loads the model (on commit, not run here); the web process did not.
    assert get_runtime().loaded_version_ids() == []
    assert get_runtime().loads == {}


def test_stream_and_batch_posts_refuse_a_need_whose_model_lost_its_alias(api_a, need_a):
    ModelAlias.objects.filter(registered_model_id=need_a.model_id).delete()
    for response in (ingest(api_a), upload(api_a, csv_file([("1", SPORT)]))):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "need_not_served"
        assert "no version at alias 'production'" in response.json()["error"]["message"]


def test_stream_post_refuses_a_retired_need_with_the_lifecycle_code(api_a, need_a):
    need_a.status = "retired"
    need_a.save(update_fields=["status"])
    response = ingest(api_a)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "need_retired"


def test_stream_and_batch_posts_answer_503_for_a_version_with_an_open_integrity_incident(
    api_a, need_a, model_version
):
    ArtifactIntegrityIncident.objects.create(
        sha256=model_version.artifact_sha256,
        kind="mismatch",
        message="sha256 mismatch",
        model_version=model_version,
    )
    for response in (ingest(api_a), upload(api_a, csv_file([("1", SPORT)]))):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
        assert response["Retry-After"] == "30"
    ArtifactIntegrityIncident.objects.update(resolved_at=timezone.now())
    assert ingest(api_a).status_code == 202


def test_serving_versions_follows_the_needs_own_alias(need_a, model_version):
    candidate = add_version(model_version.registered_model, train_classifier())
    set_alias(candidate, "candidate")
    assert serving_version(need_a) == model_version
    need_a.model_alias = "candidate"
    assert serving_version(need_a) == candidate
    assert list(serving_versions(need_a).values_list("pk", flat=True)) == [candidate.pk]
    need_a.model = None
    assert serving_version(need_a) is None and not serving_versions(need_a).exists()


def test_a_quota_refusal_in_a_scheduled_run_is_a_domain_error_not_an_http_exception(
    tenant_a, need_a
):
    """Beat runs scheduled batches: the service's 429 is a DomainError with a code, no DRF type."""
    from rest_framework.exceptions import APIException

    from serving import services
    from serving.models import Item

    tenant_a.quota_max_batch_items = 1
    tenant_a.save(update_fields=["quota_max_batch_items"])
    for n in range(2):
        Item.objects.create(
            tenant=tenant_a, need=need_a, external_id=str(n), text=SPORT, text_hash=str(n) * 64
        )
    scheduled = services.scheduled_batch_create(
        tenant=tenant_a, need=need_a, name="nightly", crontab="0 2 * * *"
    )
    with pytest.raises(DomainError) as exc:
        services.scheduled_batch_run(scheduled_id=scheduled.pk)
    assert exc.value.code == "too_many_items" and exc.value.status_code == 413
    assert not isinstance(exc.value, APIException)
