from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from registry import datasets
from registry.demo import train_demo_models
from registry.models import ModelAlias, TrainingRun, TrainingSample
from registry.services.datasets import snapshot_create
from registry.services.training import training_run_create, training_run_execute
from tests.factories import NeedFactory, TenantFactory, make_label_set
from tests.registry.conftest import synthetic_rows

TOPICS = ["news.business", "news.entertainment", "news.politics", "news.sport", "news.tech"]
SENTIMENT = ["sentiment.positive", "sentiment.neutral", "sentiment.negative"]


def test_demo_step_skips_clearly_without_label_sets(db):
    out = io.StringIO()
    train_demo_models(out)
    assert "shared label set 'news-topics' is missing" in out.getvalue()
    assert not TrainingRun.objects.dangerously_unscoped().exists()


def test_demo_step_trains_promotes_attaches_and_is_idempotent(
    db, monkeypatch, django_capture_on_commit_callbacks
):
    topics = make_label_set(slug="news-topics", keys_=TOPICS)
    make_label_set(slug="news-sentiment", keys_=SENTIMENT)
    sentiment_words = {
        "sentiment.positive": "great happy win love excellent",
        "sentiment.neutral": "report table weather schedule notice",
        "sentiment.negative": "bad crash angry loss terrible",
    }
    # Small stand-ins for the real data sets keep this test fast; the slow test uses BBC itself.
    monkeypatch.setitem(datasets.BUNDLED["bbc"], "rows", lambda: synthetic_rows(per_label=12))
    monkeypatch.setitem(
        datasets.BUNDLED["zh-inews"],
        "rows",
        lambda: synthetic_rows(per_label=12, words=sentiment_words),
    )
    need = NeedFactory(tenant=TenantFactory(slug="tenant-a"), slug="news-topics", label_set=topics)
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        train_demo_models(out)
    production = {
        a.registered_model.name: a.version
        for a in ModelAlias.objects.select_related("registered_model")
    }
    assert set(production) == {"news-topics/tfidf-logreg", "news-sentiment/tfidf-logreg"}
    assert all(v.registered_model.tenant_id is None for v in production.values())
    need.refresh_from_db()
    assert need.model.name == "news-topics/tfidf-logreg"
    assert "tenant-b/zh-sentiment not found" in out.getvalue()

    samples, runs = (
        TrainingSample.objects.dangerously_unscoped().count(),
        TrainingRun.objects.dangerously_unscoped().count(),
    )
    again = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        train_demo_models(again)
    assert "already in production (v1)" in again.getvalue()
    assert (
        TrainingSample.objects.dangerously_unscoped().count(),
        TrainingRun.objects.dangerously_unscoped().count(),
    ) == (samples, runs)


@pytest.mark.slow
def test_bbc_tfidf_logreg_reaches_macro_f1_095(db):
    """The real BBC News data through the whole pipeline: import, snapshot, train, evaluate."""
    label_set = make_label_set(slug="news-topics", keys_=TOPICS)
    call_command("import_dataset", "bbc", stdout=io.StringIO())
    assert TrainingSample.objects.dangerously_unscoped().count() > 2000
    snapshot = snapshot_create(revision=label_set.current_revision)
    run = training_run_create(label_set=label_set, snapshot=snapshot, enqueue=False)
    run = training_run_execute(run_id=run.pk)
    assert run.status == "succeeded", run.error
    metrics = run.model_version.metrics
    assert metrics["n_test"] > 400
    assert metrics["macro_f1"] >= 0.95, metrics
