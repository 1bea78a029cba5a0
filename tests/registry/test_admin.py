from __future__ import annotations

import os

import pytest

from registry import artifacts
from registry.models import AliasEvent, ArtifactIntegrityIncident, ModelAlias, ModelVersion
from registry.services.versions import load_model_version


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_admin_promotes_and_rolls_back_with_audit(
    admin_client, trained_version, train_version, staff_user
):
    v2 = train_version(trained_version.snapshot)
    changelist = "/admin/registry/modelversion/"
    for version in (trained_version, v2):
        response = admin_client.post(
            changelist, {"action": "promote_production", "_selected_action": [version.pk]}
        )
        assert response.status_code == 302
    assert ModelAlias.objects.get(name="production").version == v2
    admin_client.post(
        "/admin/registry/registeredmodel/",
        {
            "action": "rollback_production",
            "_selected_action": [trained_version.registered_model_id],
        },
    )
    assert ModelAlias.objects.get(name="production").version == trained_version
    assert list(AliasEvent.objects.order_by("id").values_list("action", "actor")) == [
        ("set", staff_user.pk),
        ("set", staff_user.pk),
        ("rollback", staff_user.pk),
    ]


def test_admin_cannot_delete_versions_or_history(admin_client, trained_version):
    response = admin_client.post(
        "/admin/registry/modelversion/",
        {"action": "delete_selected", "_selected_action": [trained_version.pk]},
    )
    assert ModelVersion.objects.dangerously_unscoped().filter(pk=trained_version.pk).exists()
    assert (
        admin_client.get(f"/admin/registry/modelversion/{trained_version.pk}/delete/").status_code
        == 403
    )
    assert response.status_code in (200, 302)


def test_admin_pages_render_with_card_link_and_incidents(admin_client, trained_version):
    path = artifacts.path_for(trained_version.artifact_sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"evil")
    with pytest.raises(artifacts.ArtifactIntegrityError):
        load_model_version(trained_version)
    page = admin_client.get(
        f"/admin/registry/modelversion/{trained_version.pk}/change/"
    ).content.decode()
    assert f"/models/{trained_version.registered_model_id}/versions/1/" in page
    incidents = admin_client.get("/admin/registry/artifactintegrityincident/").content.decode()
    assert trained_version.artifact_sha256 in incidents
    for name in (
        "trainingsample",
        "datasetsnapshot",
        "registeredmodel",
        "modelalias",
        "aliasevent",
        "trainingrun",
    ):
        assert admin_client.get(f"/admin/registry/{name}/").status_code == 200
    incident = ArtifactIntegrityIncident.objects.get()
    admin_client.post(
        "/admin/registry/artifactintegrityincident/",
        {"action": "mark_resolved", "_selected_action": [incident.pk]},
    )
    incident.refresh_from_db()
    assert incident.resolved_at is not None
