"""A final model fitted on all the data (issue 15.5): after the held-out evaluation the served
artifact is the same configuration refitted on train + test; the card says so."""

from __future__ import annotations

import numpy as np

from registry import model_card
from registry.ml import train
from registry.services.datasets import snapshot_split
from registry.services.training import training_run_create
from registry.services.versions import load_model_version
from tests.factories import NeedFactory


def _run(snapshot, capture, **kwargs):
    with capture(execute=True):
        run = training_run_create(
            label_set=snapshot.revision.label_set, snapshot=snapshot, **kwargs
        )
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


def test_new_runs_refit_on_all_the_snapshot_after_evaluating_on_the_held_out_split(
    topic_snapshot, django_capture_on_commit_callbacks
):
    refit = _run(topic_snapshot, django_capture_on_commit_callbacks)
    assert refit.refit_on_all is True
    version = refit.model_version
    texts, lists = snapshot_split(topic_snapshot, "train")
    test_texts, test_lists = snapshot_split(topic_snapshot, "test")
    assert version.metrics["fitted_on"] == {
        "split": "all",
        "n_samples": len(texts) + len(test_texts),
        "evaluated_before_refit": True,
    }
    assert version.metrics["n_train"] == len(texts) and version.metrics["n_test"] == len(test_texts)
    # The served artifact is the configuration fitted on every sample...
    served = load_model_version(version)
    everything = train(
        texts=texts + test_texts,
        label_lists=lists + test_lists,
        labels=served.labels,
        multilabel=False,
        algorithm="tfidf-logreg",
    )
    probe = test_texts + ["market profit bank", "goal team coach"]
    assert np.allclose(served.predict_scores(probe), everything.predict_scores(probe))
    # ...and the metrics are those of the train-split model, measured before the refit.
    held_out = _run(topic_snapshot, django_capture_on_commit_callbacks, refit_on_all=False)
    assert held_out.model_version.metrics["fitted_on"]["split"] == "train"
    assert held_out.model_version.metrics["macro_f1"] == version.metrics["macro_f1"]
    assert held_out.model_version.artifact_sha256 != version.artifact_sha256


def test_the_card_states_which_data_the_served_model_saw(
    topic_snapshot, django_capture_on_commit_callbacks
):
    refit = _run(topic_snapshot, django_capture_on_commit_callbacks).model_version
    text = model_card.card_markdown(refit, viewer_tenant=None)
    assert "refitted on all" in text and "evaluation below was made before that refit" in text
    kept = _run(
        topic_snapshot, django_capture_on_commit_callbacks, refit_on_all=False
    ).model_version
    assert "fitted on the" in model_card.served_data(kept.metrics)
    assert "never used to fit it" in model_card.served_data(kept.metrics)


def test_the_api_takes_the_refit_option_default_on(
    api, alice, tenant_a, topic_snapshot, django_capture_on_commit_callbacks
):
    api.force_authenticate(alice)
    with django_capture_on_commit_callbacks(execute=True):
        on = api.post("/api/v1/training-runs/", {"label_set": "news-topics"}, format="json")
        off = api.post(
            "/api/v1/training-runs/",
            {"label_set": "news-topics", "refit_on_all": False},
            format="json",
        )
    assert on.status_code == 201 and on.json()["refit_on_all"] is True
    assert off.status_code == 201 and off.json()["refit_on_all"] is False
    bad = api.post(
        "/api/v1/training-runs/",
        {"label_set": "news-topics", "refit_on_all": "maybe"},
        format="json",
    )
    assert bad.status_code == 400


def test_the_portal_training_form_can_switch_the_refit_off(
    client, alice, tenant_a, topic_snapshot, django_capture_on_commit_callbacks
):
    from registry.models import TrainingRun

    client.force_login(alice)
    assert "refit on all the data" in client.get("/models/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/models/train/", {"label_set": "news-topics", "refit_choice": "1"})
    assert TrainingRun.objects.for_tenant(tenant_a).get().refit_on_all is False


def test_a_run_for_a_need_that_promotes_another_model_moves_the_need_to_it(
    tenant_a, topic_snapshot, django_capture_on_commit_callbacks
):
    need = NeedFactory(tenant=tenant_a, slug="topics", label_set=topic_snapshot.revision.label_set)
    with django_capture_on_commit_callbacks(execute=True):
        first = training_run_create(need=need, promote_to="production")
    need.refresh_from_db()
    assert need.model == first.registered_model
    with django_capture_on_commit_callbacks(execute=True):
        svm = training_run_create(need=need, algorithm="complement-nb", promote_to="production")
    need.refresh_from_db()
    assert need.model == svm.registered_model and need.model.name == "news-topics/complement-nb"
    # A run that only makes a candidate leaves the need where it is.
    with django_capture_on_commit_callbacks(execute=True):
        training_run_create(need=need, algorithm="hashing-sgd", promote_to="candidate")
    need.refresh_from_db()
    assert need.model.name == "news-topics/complement-nb"
