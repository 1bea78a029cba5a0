"""The search, the measurement and the choice, run end to end through the service."""

from __future__ import annotations

import pytest

from optimisation import services, variants
from optimisation.measurement import measure
from optimisation.models import OptimisationRun, OptimisationStatus, TrialState
from registry.models import ModelAlias, ModelVersion
from registry.services.datasets import snapshot_split

pytestmark = pytest.mark.django_db


def _run(need, **kwargs):
    options = {"time_limit_seconds": 300, "max_trials": 8, "seed": 3, "enqueue": False}
    options.update(kwargs)
    run = services.optimisation_run_start(need=need, **options)
    services.optimisation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def _unigram_words(params: dict) -> bool:
    return params["analyzer"] == "word" and params["ngram_max"] == 1


def test_search_picks_a_variant_that_sees_word_order_when_only_order_carries_the_label(need):
    run = _run(need)
    assert run.status == OptimisationStatus.SUCCEEDED, run.error + run.log
    trials = list(run.trials.filter(state=TrialState.COMPLETE))
    assert len(trials) >= 5
    chosen = run.chosen_trial
    # The known answer: word unigrams cannot tell "alpha beta" from "beta alpha"; the choice must
    # be a variant that sees order, and it separates the labels.
    assert not _unigram_words(chosen.params)
    assert chosen.macro_f1 >= 0.95
    for trial in trials:
        if _unigram_words(trial.params):
            assert trial.macro_f1 < 0.8, trial.params
    # Every finished trial was measured on the serving path after the search.
    assert all(t.p99_ms and t.p50_ms and t.docs_per_s and t.size_bytes for t in trials)
    assert run.measurement["repetitions"] == 20
    assert run.measurement["warmup_calls"] == 3
    # The choice is the most accurate trial within both budgets (all fit here), ties faster.
    best = max(trials, key=lambda t: (t.macro_f1, -t.p99_ms, -t.size_bytes))
    assert chosen.macro_f1 == best.macro_f1
    assert run.trials.get(number=0).is_default


def test_chosen_variant_is_registered_as_candidate_with_its_measurements_on_the_card(need, alice):
    run = _run(need, actor=alice)
    version = run.registered_version
    assert version is not None
    assert (
        ModelAlias.objects.get(registered_model=version.registered_model, name="candidate").version
        == version
    )
    trial = run.chosen_trial
    assert version.artifact_size == trial.size_bytes  # the optimised size is the stored size
    assert version.latency_p99_ms == trial.p99_ms
    card = version.params["optimisation"]
    assert card["budgets"] == {"p99_ms": 1000.0, "size_kb": 100_000}
    assert card["measured"]["scorer_path"] == trial.scorer_path
    assert card["conditions"]["repetitions"] == 20
    assert version.metrics["macro_f1"] == pytest.approx(trial.macro_f1)
    assert version.snapshot_id == run.snapshot_id
    assert version.metrics["n_train"] == 64


def test_budgets_exclude_bigger_variants_and_the_most_accurate_fitting_one_wins(need):
    loose = _run(need, seed=5)
    sizes = sorted(t.size_bytes for t in loose.trials.filter(state=TrialState.COMPLETE))
    # A size budget between the smallest and the largest variant: some fit, some do not.
    cut_kb = (sizes[len(sizes) // 2]) // 1024 + 1
    loose.status = OptimisationStatus.SUCCEEDED
    tight = _run(need, seed=5, size_budget_kb=cut_kb)
    assert tight.status in (OptimisationStatus.SUCCEEDED, OptimisationStatus.NOTHING_FITS)
    trials = list(tight.trials.filter(state=TrialState.COMPLETE))
    fitting = [t for t in trials if t.size_bytes <= cut_kb * 1024 and t.p99_ms <= 1000.0]
    assert {t.number for t in trials if t.fits} == {t.number for t in fitting}
    assert fitting and any(not t.fits for t in trials)
    chosen = tight.chosen_trial
    assert chosen.size_bytes <= cut_kb * 1024
    assert chosen.macro_f1 == max(t.macro_f1 for t in fitting)


def test_nothing_fits_explains_the_closest_miss_on_each_budget_and_registers_nothing(need):
    versions = ModelVersion.objects.for_tenant(need.tenant).count()
    run = _run(need, latency_budget_ms=0.001, max_trials=4)
    assert run.status == OptimisationStatus.NOTHING_FITS
    assert run.registered_version is None and run.chosen_trial is None
    misses = run.result["nothing_fits"]
    measured = list(run.trials.filter(state=TrialState.COMPLETE))
    fastest = min(measured, key=lambda t: t.p99_ms)
    smallest = min(measured, key=lambda t: t.size_bytes)
    assert misses["latency"]["trial"] == fastest.number
    assert misses["latency"]["p99_ms"] == fastest.p99_ms
    assert misses["size"]["trial"] == smallest.number
    assert "0.001 ms" in misses["reason"]
    assert ModelVersion.objects.for_tenant(need.tenant).count() == versions
    assert not any(t.fits for t in measured)


def test_same_seed_and_trial_budget_reproduce_the_same_variants(need):
    first = _run(need, max_trials=5, seed=11)
    second = _run(need, max_trials=5, seed=11)
    params = lambda run: [(t.number, t.params, t.macro_f1) for t in run.trials.order_by("number")]  # noqa: E731
    assert params(first) == params(second)
    third = _run(need, max_trials=5, seed=12)
    assert params(third) != params(first)


def test_cancelling_a_running_run_stops_it_and_registers_nothing(need, monkeypatch, settings):
    run = services.optimisation_run_start(
        need=need, time_limit_seconds=300, max_trials=20, enqueue=False
    )
    real_build = variants.build
    built = []

    def build_then_cancel(*args, **kwargs):
        model = real_build(*args, **kwargs)
        built.append(1)
        if len(built) == 2:  # someone presses Cancel while the second trial trains
            services.optimisation_run_cancel(
                run=OptimisationRun.objects.for_tenant(need.tenant).get(pk=run.pk)
            )
        return model

    monkeypatch.setattr(variants, "build", build_then_cancel)
    services.optimisation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == OptimisationStatus.CANCELLED
    assert len(built) == 2  # it stopped between trials, not after all twenty
    assert run.registered_version is None
    assert not ModelVersion.objects.for_tenant(need.tenant).exists()
    assert not ModelAlias.objects.filter(name="candidate").exists()
    assert not services._workdir(run.pk).exists()
    # The need is free again.
    services.optimisation_run_start(need=need, time_limit_seconds=60, enqueue=False)


def test_cancelling_a_queued_run_cancels_it_at_once(need):
    run = services.optimisation_run_start(need=need, time_limit_seconds=60, enqueue=False)
    services.optimisation_run_cancel(run=run)
    run.refresh_from_db()
    assert run.status == OptimisationStatus.CANCELLED
    assert services.optimisation_run_execute(run_id=run.pk) is None  # a late message does nothing


def test_a_dead_workers_run_is_failed_by_the_sweeper_or_restarted_by_redelivery(need, settings):
    from datetime import timedelta

    from django.utils import timezone

    run = services.optimisation_run_start(need=need, time_limit_seconds=60, enqueue=False)
    assert services.optimisation_run_claim(run_id=run.pk)
    assert not services.optimisation_run_claim(run_id=run.pk)  # fresh heartbeat: not taken over
    old = timezone.now() - timedelta(seconds=settings.OPTIMISATION_STALE_SECONDS + 5)
    OptimisationRun.objects.for_tenant(need.tenant).filter(pk=run.pk).update(heartbeat_at=old)
    assert services.optimisation_runs_sweep() == 1
    run.refresh_from_db()
    assert run.status == OptimisationStatus.FAILED and "stopped reporting" in run.error
    assert not ModelVersion.objects.for_tenant(need.tenant).exists()
    # A redelivered message for a stale RUNNING run starts it over and finishes it.
    again = services.optimisation_run_start(
        need=need, time_limit_seconds=60, max_trials=3, enqueue=False
    )
    services.optimisation_run_claim(run_id=again.pk)
    OptimisationRun.objects.for_tenant(need.tenant).filter(pk=again.pk).update(heartbeat_at=old)
    services.optimisation_run_execute(run_id=again.pk)
    again.refresh_from_db()
    assert again.status == OptimisationStatus.SUCCEEDED, again.log


def test_a_variant_that_cannot_be_compiled_serves_through_the_generic_path(need):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    from serving.runtime import serving_scorer
    from tests.registry.conftest import synthetic_rows

    snapshot = services._champion_snapshot(need)
    texts, label_lists = snapshot_split(snapshot, "train")
    test_texts, _ = snapshot_split(snapshot, "test")
    svm_variant = {
        "representation": "tfidf",
        "analyzer": "word",
        "ngram_max": 2,
        "min_df": 1,
        "max_features": 5000,
        "selection": "none",
        "classifier": "svm",
        "C": 1.0,
        "precision": "float32",
        "max_chars": 60,
    }
    svm = variants.build(
        svm_variant,
        texts=texts,
        label_lists=label_lists,
        labels=["order.forward", "order.backward"],
        script="latin",
        seed=0,
    )
    # A calibrated linear SVM reading the first 60 characters is compiled (the same scores as
    # scikit-learn) and measured on that compiled path.
    latency = measure(svm, test_texts, warmup=2, repetitions=10, batch_docs=50)
    scorer, path = serving_scorer(svm)
    assert latency.scorer_path == path == "tfidf-linear"
    assert abs(scorer(test_texts) - svm.predict_scores(test_texts)).max() < 1e-4
    # The same model with isotonic calibration has no linear form: production serves it through
    # predict_scores, and that is the path its latency is measured on.
    isotonic = variants.build(
        svm_variant,
        texts=texts,
        label_lists=label_lists,
        labels=["order.forward", "order.backward"],
        script="latin",
        seed=0,
    )
    features = isotonic.pipeline.steps[-2][1]
    estimator = CalibratedClassifierCV(LinearSVC(C=1.0), cv=3, method="isotonic")
    isotonic.pipeline.steps[-1] = ("classifier", estimator)
    isotonic.pipeline.fit(texts, [0 if row[0] == "order.forward" else 1 for row in label_lists])
    assert isotonic.pipeline.steps[-2][1] is features
    latency = measure(isotonic, test_texts, warmup=2, repetitions=10, batch_docs=50)
    scorer, path = serving_scorer(isotonic)
    assert latency.scorer_path == path == "predict_scores"
    assert (scorer(test_texts[:5]) == isotonic.predict_scores(test_texts[:5])).all()
    assert isotonic.predict_label_lists(test_texts[:1])[0][0] in (
        "order.forward",
        "order.backward",
    )
    # A multinomial TF-IDF logistic regression (three labels) is compiled, and measured so.
    rows = synthetic_rows(per_label=20)
    logreg = variants.build(
        variants.default_variant("latin"),
        texts=[r.text for r in rows],
        label_lists=[r.labels for r in rows],
        labels=sorted({r.labels[0] for r in rows}),
        script="latin",
        seed=0,
    )
    compiled = measure(logreg, [r.text for r in rows], warmup=2, repetitions=10, batch_docs=50)
    assert compiled.scorer_path == serving_scorer(logreg)[1] == "tfidf-linear"


def test_promoting_the_candidate_through_the_alias_flow_makes_the_need_serve_it(
    need, alice, client
):
    from tenants.models import Need

    run = _run(need, actor=alice, max_trials=3)
    version = run.registered_version
    need = Need.objects.for_tenant(need.tenant).get(pk=need.pk)
    assert need.model_id == version.registered_model_id
    client.force_login(alice)
    response = client.post(
        f"/api/v1/models/{version.registered_model_id}/promote/",
        {"alias": "production", "version": version.version},
    )
    assert response.status_code == 200, response.content
    from tests.conftest import api_client_for_key
    from tests.factories import ApiKeyFactory

    tagger = api_client_for_key(ApiKeyFactory(tenant=need.tenant, name="tagger"))
    tagged = tagger.post(
        f"/api/v1/needs/{need.slug}/tag",
        {"items": [{"id": "1", "text": "people city beta alpha said"}]},
        format="json",
    )
    assert tagged.status_code == 200, tagged.content
    assert tagged.json()["items"][0]["model"] == {
        "name": version.registered_model.name,
        "version": version.version,
    }


@pytest.mark.parametrize("classifier", ["logreg-l1", "svm", "sgd", "cnb"])
@pytest.mark.parametrize("representation", ["tfidf-chi2", "tfidf-weights", "hashing"])
def test_every_classifier_and_representation_builds_for_three_labels(classifier, representation):
    from tests.registry.conftest import synthetic_rows

    rows = synthetic_rows(per_label=15)
    variant = {"analyzer": "word", "ngram_max": 2, "precision": "float32"}
    if representation == "hashing":
        variant.update(representation="hashing", hash_bits=16, selection="none")
    else:
        variant.update(representation="tfidf", min_df=1, max_features=5000)
        variant.update(
            {"selection": "chi2", "k": 20}
            if representation == "tfidf-chi2"
            else {"selection": "weights", "keep_fraction": 0.3}
        )
    kind = classifier.split("-")[0]
    variant["classifier"] = kind
    variant.update(
        {"logreg": {"C": 1.0, "penalty": "l1"}, "svm": {"C": 1.0}}.get(
            kind, {"alpha": 0.01, "loss": "log_loss"} if kind == "sgd" else {"alpha": 0.1}
        )
    )
    labels = sorted({r.labels[0] for r in rows})
    model = variants.build(
        variant,
        texts=[r.text for r in rows],
        label_lists=[r.labels for r in rows],
        labels=labels,
        script="latin",
        seed=0,
    )
    scores = model.predict_scores([rows[0].text, rows[-1].text])
    assert scores.shape == (2, 3)
    if representation != "hashing":
        vocabulary = model.pipeline.steps[0][1].vocabulary_
        assert len(vocabulary) <= 20 if representation == "tfidf-chi2" else len(vocabulary) < 200
    assert len(variants.artifact_bytes(model)) > 0


def test_trials_far_below_the_best_on_a_subsample_are_pruned_before_the_full_fit(need, monkeypatch):
    # The corpus is small; lower the size from which pruning applies so that it does here.
    monkeypatch.setattr(services, "PRUNE_MIN_TEXTS", 10)
    monkeypatch.setattr(services, "PRUNE_SUBSAMPLE", 0.5)
    run = _run(need, max_trials=6, seed=3)
    assert run.status == OptimisationStatus.SUCCEEDED, run.error + run.log
    pruned = list(run.trials.filter(state=TrialState.PRUNED))
    # The starting variants (trials 1-3) read single words, which cannot see word order: far
    # below the default model (trial 0, never pruned), so they stop after the subsample fit.
    assert {1, 2, 3} <= {t.number for t in pruned}
    assert all(_unigram_words(t.params) for t in pruned if t.number <= 3)
    assert all(t.error.startswith("pruned: macro-F1") for t in pruned)
    # Nothing of a pruned trial is measured, stored or chosen.
    assert all(t.macro_f1 is None and t.p99_ms is None and t.size_bytes is None for t in pruned)
    assert run.trials.get(number=0).state == TrialState.COMPLETE
    assert run.chosen_trial.state == TrialState.COMPLETE
