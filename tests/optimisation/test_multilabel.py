"""Optimisation runs on multi-label needs: one-vs-rest variants with tuned thresholds, macro-F1 as
the registry's training computes it, latency measured on the multi-label serving path."""

from __future__ import annotations

import random

import numpy as np
import pytest

from optimisation import services, variants
from optimisation.models import OptimisationStatus, TrialState
from optimisation.services import OptimisationError
from registry import artifacts, evaluation
from registry.datasets import SampleRow
from registry.models import ModelAlias
from registry.services.datasets import current_revision, samples_import, snapshot_create
from serving.runtime import serving_scorer
from tenants.models import NeedStatus
from tests.factories import NeedFactory, make_label_set

pytestmark = pytest.mark.django_db

TOPICS = {
    "topic.sport": ["goal", "match", "team", "coach", "league"],
    "topic.money": ["bank", "shares", "profit", "market", "tax"],
    "topic.weather": ["rain", "storm", "sunny", "forecast", "wind"],
}
FILLER = ["the", "a", "of", "and", "today", "report", "said", "new", "people", "city", "year"]


def topic_rows(n: int = 120, seed: int = 0) -> list[SampleRow]:
    """Each text carries one or two topics, each shown by two of its words among filler."""
    rng = random.Random(seed)
    keys = list(TOPICS)
    rows = []
    for number in range(1, n + 1):
        labels = rng.sample(keys, 2 if number % 3 == 0 else 1)
        words = [rng.choice(FILLER) for _ in range(10)]
        for label in labels:
            for word in rng.sample(TOPICS[label], 2):
                words.insert(rng.randrange(len(words) + 1), word)
        rows.append(SampleRow(row=number, text=" ".join(words), labels=labels))
    return rows


@pytest.fixture
def multilabel_need(tenant_a, fast_measurement):
    label_set = make_label_set(slug="topics", keys_=list(TOPICS), kind="multilabel")
    revision = current_revision(label_set)
    samples_import(revision=revision, tenant=tenant_a, rows=topic_rows())
    snapshot_create(revision=revision, tenant=tenant_a, seed=7)
    return NeedFactory(
        tenant=tenant_a,
        slug="topics",
        label_set=label_set,
        status=NeedStatus.APPROVED,
        latency_budget_ms=1000.0,
        size_budget_kb=100_000,
    )


def test_a_multi_label_run_completes_and_registers_a_multi_label_candidate(multilabel_need):
    run = services.optimisation_run_start(
        need=multilabel_need, time_limit_seconds=300, max_trials=6, seed=3, enqueue=False
    )
    services.optimisation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == OptimisationStatus.SUCCEEDED, run.error + run.log
    assert "multi-label" in run.log
    trials = list(run.trials.filter(state=TrialState.COMPLETE))
    assert len(trials) >= 4
    assert all(t.p99_ms and t.size_bytes and t.scorer_path for t in trials)
    # Multi-label models are compiled too (one-vs-rest linear forms) and measured on that path.
    assert {t.scorer_path for t in trials} <= {"tfidf-linear", "linear", "predict_scores"}
    assert any(t.scorer_path == "tfidf-linear" for t in trials)
    version = run.registered_version
    assert version is not None
    assert (
        ModelAlias.objects.get(registered_model=version.registered_model, name="candidate").version
        == version
    )
    model = artifacts.load(version.artifact_sha256)
    assert model.multilabel and model.labels == list(TOPICS)
    # Thresholds were tuned as registry training tunes them, and are on the version.
    assert set(model.thresholds) == set(TOPICS)
    assert version.params["threshold_tuning"]["method"] == "validation-slice"
    assert version.params["multilabel"] is True
    # The trial's macro-F1 is the registry's multi-label macro-F1 of the registered model.
    from registry.services.datasets import snapshot_split

    test_texts, test_lists = snapshot_split(run.snapshot, "test")
    metrics = evaluation.evaluate(model, test_texts, test_lists, labels=list(TOPICS))
    assert metrics["macro_f1"] == pytest.approx(run.chosen_trial.macro_f1)
    assert metrics["macro_f1"] >= 0.9
    # Served as production serves it: independent per-label scores, two topics found.
    scorer, path = serving_scorer(model)
    assert path == run.chosen_trial.scorer_path
    text = "the goal of the team and the bank shares today"
    scores = scorer([text])
    assert scores.shape == (1, 3)
    np.testing.assert_allclose(scores, model.predict_scores([text]), rtol=1e-3, atol=1e-4)
    assert set(model.predict_label_lists([text])[0]) == {"topic.sport", "topic.money"}


@pytest.mark.parametrize("classifier", ["logreg", "svm", "sgd", "cnb"])
def test_every_classifier_builds_multi_label_with_chi2_and_a_lead(classifier):
    rows = topic_rows(90, seed=1)
    variant = {
        "representation": "tfidf",
        "analyzer": "word",
        "ngram_max": 1,
        "min_df": 1,
        "max_features": 5000,
        "selection": "chi2",
        "k": 12,
        "classifier": classifier,
        "precision": "float32",
        "max_chars": 200,
    }
    variant.update(
        {"logreg": {"C": 10.0, "penalty": "l2"}, "svm": {"C": 1.0}}.get(
            classifier,
            {"alpha": 1e-4, "loss": "modified_huber"} if classifier == "sgd" else {"alpha": 0.1},
        )
    )
    model = variants.build(
        variant,
        texts=[r.text for r in rows],
        label_lists=[r.labels for r in rows],
        labels=list(TOPICS),
        script="latin",
        seed=0,
        multilabel=True,
    )
    assert model.multilabel and len(model.pipeline.steps[-2][1].vocabulary_) <= 12
    scorer, path = serving_scorer(model)
    assert path == "tfidf-linear"
    texts = [r.text for r in topic_rows(30, seed=2)]
    np.testing.assert_allclose(scorer(texts), model.predict_scores(texts), rtol=1e-3, atol=1e-4)


def test_refusals_keep_their_codes_for_multi_label_needs(multilabel_need):
    start = dict(time_limit_seconds=60, latency_budget_ms=100.0, size_budget_kb=1000)
    for change, code in (
        ({"latency_budget_ms": 0}, "bad_budget"),
        ({"size_budget_kb": -5}, "bad_budget"),
        ({"time_limit_seconds": 10**7}, "time_limit_too_long"),
    ):
        with pytest.raises(OptimisationError) as caught:
            services.optimisation_run_start(
                need=multilabel_need, enqueue=False, **{**start, **change}
            )
        assert caught.value.code == code
    services.optimisation_run_start(need=multilabel_need, enqueue=False, **start)
    with pytest.raises(OptimisationError) as caught:
        services.optimisation_run_start(need=multilabel_need, enqueue=False, **start)
    assert caught.value.code == "optimisation_running" and caught.value.status_code == 409


def test_a_multi_label_need_without_a_snapshot_is_still_refused_as_such(tenant_a):
    label_set = make_label_set(slug="empty", keys_=list(TOPICS), kind="multilabel")
    need = NeedFactory(tenant=tenant_a, slug="empty", label_set=label_set)
    with pytest.raises(OptimisationError) as caught:
        services.optimisation_run_start(
            need=need,
            time_limit_seconds=60,
            latency_budget_ms=100.0,
            size_budget_kb=1000,
            enqueue=False,
        )
    assert caught.value.code == "no_snapshot"
