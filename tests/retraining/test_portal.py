"""The portal's retraining pages as a signed-in member: list, comparison, actions, scoping."""

from __future__ import annotations

import json

from registry.selectors import serving_version
from retraining.models import Retrain, RetrainStatus


def test_comparison_page_shows_both_sets_the_guard_and_chart_data(
    client, alice, shifted_need, run_retrain
):
    retrain = run_retrain(shifted_need)
    client.force_login(alice)
    response = client.get(f"/retraining/{retrain.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Champion&#x27;s held-out test set" in html or "Champion's held-out test set" in html
    assert "Fresh set" in html and "McNemar" in html
    assert 'id="promote-form"' in html
    assert "<script>" not in html  # CSP: data as JSON, code in static files
    data = json.loads(html.split('id="comparison-data" type="application/json">')[1].split("<")[0])
    assert data["sets"]["fresh"]["n"] == 45
    assert len(data["sets"]["test"]["champion"]) == len(data["labels"]) == 3


def test_admin_promotes_and_rolls_back_from_the_page(client, alice, shifted_need, run_retrain):
    retrain = run_retrain(shifted_need)
    client.force_login(alice)
    response = client.post(f"/retraining/{retrain.pk}/promote/", follow=True)
    assert "now the production version" in response.content.decode()
    assert serving_version(shifted_need).pk == retrain.challenger_id
    client.post(f"/retraining/{retrain.pk}/rollback/", follow=True)
    assert serving_version(shifted_need).pk == retrain.champion_id


def test_a_refused_promotion_shows_the_reason_and_changes_nothing(
    client, alice, shifted_need, run_retrain
):
    from retraining.services import retrain_policy_update

    retrain_policy_update(need=shifted_need, promotion_margin=0.9)
    retrain = run_retrain(shifted_need)
    client.force_login(alice)
    response = client.post(f"/retraining/{retrain.pk}/promote/", follow=True)
    assert "promotion_refused" in response.content.decode()
    assert serving_version(shifted_need).pk == retrain.champion_id


def test_start_from_the_list_page(client, alice, shifted_need, django_capture_on_commit_callbacks):
    client.force_login(alice)
    assert "topics" in client.get("/retraining/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/retraining/start/", {"need": "topics", "reason": "by hand"})
    retrain = Retrain.objects.for_tenant(shifted_need.tenant).get()
    assert response.status_code == 302 and response.url == f"/retraining/{retrain.pk}/"
    assert retrain.status == RetrainStatus.READY


def test_other_tenant_gets_404_and_viewer_cannot_act(
    client, charlie, bob, shifted_need, run_retrain
):
    retrain = run_retrain(shifted_need)
    client.force_login(charlie)
    assert client.get(f"/retraining/{retrain.pk}/").status_code == 404
    assert client.post(f"/retraining/{retrain.pk}/promote/").status_code == 404
    assert "topics" not in client.get("/retraining/").content.decode()
    client.force_login(bob)
    assert client.get(f"/retraining/{retrain.pk}/").status_code == 200
    assert client.post(f"/retraining/{retrain.pk}/promote/").status_code == 403
    assert serving_version(shifted_need).pk == retrain.champion_id
