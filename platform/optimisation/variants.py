"""Model variants: the search space, building a variant into a TextClassifier, and its size.

A variant is a plain dict (JSON, stored on the trial and on the registered version):

- `representation`: "tfidf" (a fitted vocabulary) or "hashing" (2^16..2^20 hashed features);
- `analyzer`, `ngram_max` (n-grams from 1), `min_df`, `max_features` (TF-IDF), `hash_bits`;
- `selection`: "none", "chi2" (SelectKBest(chi2, k)) or "weights" (keep the features with the
  largest weights of a first fit: pruning of near-zero weights). Both refit a TF-IDF vectoriser on
  the kept vocabulary, so the served model is an ordinary (smaller) TF-IDF pipeline that the
  compiled scorer still handles;
- `classifier`: "logreg" (`C`, `penalty` l2 or l1 for sparsity), "svm" (linear SVM, calibrated),
  "sgd" (`alpha`, `loss`) or "cnb" (ComplementNB, `alpha`);
- `precision`: "float64" or "float32" (coefficients and idf stored in single precision).

Everything here is pure (no database): the optimisation service and tests share it.
"""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.feature_selection import SelectKBest, chi2
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from registry import artifacts, evaluation
from registry.ml import LeadingText, TextClassifier, cut_texts, default_params
from registry.services.training import VALIDATION_FRACTION

CLASSIFIERS = ("logreg", "svm", "sgd", "cnb")
#: How much of each text a variant reads: its first N characters, 0 = all of it.
MAX_CHARS = (0, 600, 1200, 2500, 5000)
#: The registry's algorithm names (ModelVersion.algorithm) closest to each variant.
_ALGORITHM = {"logreg": "tfidf-logreg", "svm": "tfidf-svm", "sgd": "hashing-sgd"}


def default_variant(script: str) -> dict[str, Any]:
    """The platform's default model (registry.ml.default_params("tfidf-logreg")) as a variant,
    so every run measures it beside the searched ones."""
    params = default_params("tfidf-logreg", script)
    vec, clf = params["vectorizer"], params["classifier"]
    return {
        "representation": "tfidf",
        "analyzer": vec["analyzer"],
        "ngram_max": int(vec["ngram_range"][1]),
        "min_df": int(vec["min_df"]),
        "max_features": int(vec["max_features"]),
        "selection": "none",
        "classifier": "logreg",
        "C": float(clf["C"]),
        "penalty": "l2",
        "precision": "float64",
        "max_chars": 0,
    }


def starting_variants(script: str) -> list[dict[str, Any]]:
    """Cheap variants that are usually close to the default model's accuracy, tried right after it
    (Optuna's enqueue_trial) so that every run measures them and the sampler starts from them: a
    capped vocabulary of single words (Latin script) or of characters and character pairs
    (Chinese), logistic regression, single precision, the whole text or only its first 2,500 (and
    for Latin script 1,200) characters. The same for every need of a script (priors, not answers for one data set); all
    are served by the compiled TF-IDF scorer."""
    common = {
        "representation": "tfidf",
        "min_df": 2,
        "selection": "none",
        "precision": "float32",
        "classifier": "logreg",
        "C": 10.0,
        "penalty": "l2",
    }
    if script == "cjk":
        # Character-pair fits are slow (a minute or two on Chinese news): two starting points.
        vocabulary = {"analyzer": "char", "ngram_max": 2, "max_features": 50_000}
        leads = (2500, 0)
    else:
        vocabulary = {"analyzer": "word", "ngram_max": 1, "max_features": 20_000}
        leads = (2500, 1200, 0)
    return [{**common, **vocabulary, "max_chars": lead} for lead in leads]


def suggest(trial, script: str) -> dict[str, Any]:
    """Sample one variant from an Optuna trial (define-by-run, so conditional parameters only
    exist where they mean something)."""
    variant: dict[str, Any] = {}
    representation = trial.suggest_categorical("representation", ["tfidf", "hashing"])
    variant["representation"] = representation
    # Chinese has no spaces: character n-grams only. Latin text may use either.
    analyzer = (
        "char" if script == "cjk" else trial.suggest_categorical("analyzer", ["word", "char"])
    )
    variant["analyzer"] = analyzer
    if analyzer == "word":
        variant["ngram_max"] = trial.suggest_int("ngram_max_word", 1, 2)
    else:
        variant["ngram_max"] = trial.suggest_int("ngram_max_char", 1 if script == "cjk" else 2, 3)
    if representation == "tfidf":
        variant["min_df"] = trial.suggest_int("min_df", 1, 5)
        variant["max_features"] = trial.suggest_int("max_features", 2_000, 200_000, log=True)
        variant["selection"] = trial.suggest_categorical("selection", ["none", "chi2", "weights"])
        if variant["selection"] == "chi2":
            variant["k"] = trial.suggest_int("k", 500, 50_000, log=True)
        elif variant["selection"] == "weights":
            variant["keep_fraction"] = trial.suggest_float("keep_fraction", 0.05, 0.9)
    else:
        variant["hash_bits"] = trial.suggest_int("hash_bits", 16, 20)
        variant["selection"] = "none"
    classifier = trial.suggest_categorical("classifier", list(CLASSIFIERS))
    variant["classifier"] = classifier
    if classifier == "logreg":
        variant["C"] = trial.suggest_float("C", 0.1, 100.0, log=True)
        variant["penalty"] = trial.suggest_categorical("penalty", ["l2", "l1"])
    elif classifier == "svm":
        variant["C"] = trial.suggest_float("svm_C", 0.05, 10.0, log=True)
    elif classifier == "sgd":
        variant["alpha"] = trial.suggest_float("sgd_alpha", 1e-6, 1e-3, log=True)
        variant["loss"] = trial.suggest_categorical("loss", ["modified_huber", "log_loss"])
    else:
        variant["alpha"] = trial.suggest_float("nb_alpha", 0.01, 1.0, log=True)
    variant["precision"] = trial.suggest_categorical("precision", ["float64", "float32"])
    variant["max_chars"] = trial.suggest_categorical("max_chars", list(MAX_CHARS))
    return variant


def as_optuna_params(variant: dict[str, Any], script: str) -> dict[str, Any]:
    """The Optuna parameter names of a variant (to enqueue the default model as a trial)."""
    out: dict[str, Any] = {"representation": variant["representation"]}
    if script != "cjk":
        out["analyzer"] = variant["analyzer"]
    key = "ngram_max_word" if variant["analyzer"] == "word" else "ngram_max_char"
    out[key] = variant["ngram_max"]
    if variant["representation"] == "tfidf":
        out.update(
            min_df=variant["min_df"],
            max_features=variant["max_features"],
            selection=variant["selection"],
        )
        if variant["selection"] == "chi2":
            out["k"] = variant["k"]
        elif variant["selection"] == "weights":
            out["keep_fraction"] = variant["keep_fraction"]
    else:
        out["hash_bits"] = variant["hash_bits"]
    out["classifier"] = variant["classifier"]
    if variant["classifier"] == "logreg":
        out.update(C=variant["C"], penalty=variant["penalty"])
    elif variant["classifier"] == "svm":
        out["svm_C"] = variant["C"]
    elif variant["classifier"] == "sgd":
        out.update(sgd_alpha=variant["alpha"], loss=variant["loss"])
    else:
        out["nb_alpha"] = variant["alpha"]
    out["precision"] = variant["precision"]
    out["max_chars"] = int(variant.get("max_chars") or 0)
    return out


def algorithm_of(variant: dict[str, Any]) -> str:
    """The registry algorithm name recorded on a version (its `params` hold the full variant)."""
    if variant["classifier"] == "cnb":
        return "complement-nb"
    if variant["representation"] == "hashing" and variant["classifier"] == "sgd":
        return "hashing-sgd"
    return _ALGORITHM[variant["classifier"]]


def _tfidf(variant: dict[str, Any], *, vocabulary: dict[str, int] | None = None):
    dtype = np.float32 if variant["precision"] == "float32" else np.float64
    kwargs: dict[str, Any] = {
        "analyzer": variant["analyzer"],
        "ngram_range": (1, int(variant["ngram_max"])),
        "sublinear_tf": True,
        "lowercase": True,
        "dtype": dtype,
    }
    if vocabulary is None:
        kwargs.update(min_df=int(variant["min_df"]), max_features=int(variant["max_features"]))
    else:
        kwargs["vocabulary"] = vocabulary
    return TfidfVectorizer(**kwargs)


def _hashing(variant: dict[str, Any]):
    return Pipeline(
        [
            (
                "hash",
                HashingVectorizer(
                    analyzer=variant["analyzer"],
                    ngram_range=(1, int(variant["ngram_max"])),
                    n_features=2 ** int(variant["hash_bits"]),
                    alternate_sign=False,
                    lowercase=True,
                    # Raw counts: sublinear tf of L2-normalised values would go negative.
                    norm=None,
                ),
            ),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
        ]
    )


def _estimator(variant: dict[str, Any], seed: int):
    kind = variant["classifier"]
    if kind == "logreg":
        if variant.get("penalty") == "l1":
            # L1 (sparse weights), multinomial: saga is the solver that does both.
            return LogisticRegression(
                C=variant["C"],
                l1_ratio=1.0,
                solver="saga",
                class_weight="balanced",
                max_iter=300,
                tol=1e-3,
                random_state=seed,
            )
        return LogisticRegression(C=variant["C"], class_weight="balanced", max_iter=1000)
    if kind == "svm":
        return CalibratedClassifierCV(
            LinearSVC(C=variant["C"], class_weight="balanced", random_state=seed), cv=3
        )
    if kind == "sgd":
        return SGDClassifier(
            loss=variant["loss"],
            alpha=variant["alpha"],
            max_iter=50,
            tol=1e-4,
            class_weight="balanced",
            random_state=seed,
        )
    if kind == "cnb":
        return ComplementNB(alpha=variant["alpha"])
    raise ValueError(f"Unknown classifier {kind!r}")


def _feature_weights(estimator) -> np.ndarray:
    """Per-feature importance of a fitted estimator: the largest |weight| over labels."""
    if isinstance(estimator, OneVsRestClassifier):
        return np.max([_feature_weights(e) for e in estimator.estimators_], axis=0)
    if isinstance(estimator, CalibratedClassifierCV):
        coef = np.mean([np.abs(c.estimator.coef_) for c in estimator.calibrated_classifiers_], 0)
    elif isinstance(estimator, ComplementNB):
        coef = np.abs(estimator.feature_log_prob_ - estimator.feature_log_prob_.mean(axis=0))
    else:
        coef = np.abs(estimator.coef_)
    return np.asarray(coef).max(axis=0)


def _kept_vocabulary(vectorizer: TfidfVectorizer, keep: np.ndarray) -> dict[str, int]:
    terms = vectorizer.get_feature_names_out()
    return {str(term): i for i, term in enumerate(terms[np.sort(keep)])}


def _to_float32(estimator) -> None:
    """Store the fitted weights in single precision (half the bytes)."""
    targets = (
        [c.estimator for c in estimator.calibrated_classifiers_]
        if isinstance(estimator, CalibratedClassifierCV)
        else [estimator]
    )
    for target in targets:
        for name in ("coef_", "intercept_", "feature_log_prob_", "feature_count_"):
            value = getattr(target, name, None)
            if isinstance(value, np.ndarray) and value.dtype == np.float64:
                setattr(target, name, value.astype(np.float32))


def build(
    variant: dict[str, Any],
    *,
    texts: list[str],
    label_lists: list[list[str]],
    labels: list[str],
    script: str,
    seed: int,
    multilabel: bool = False,
) -> TextClassifier:
    """Fit a variant on the training texts.

    Multi-label variants are fitted as the registry's training fits multi-label models
    (`registry.services.training._fit`): one-vs-rest over the variant's classifier, each label's
    threshold tuned for F1 on a seeded validation slice of the training texts (the same fraction
    and grid), then refitted on all of them with those thresholds."""
    if not multilabel:
        return _fit(variant, texts, label_lists, labels, script, seed, multilabel=False)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = int(len(order) * VALIDATION_FRACTION)
    tuning: dict[str, Any] = {
        "method": "validation-slice",
        "fraction": VALIDATION_FRACTION,
        "seed": seed,
    }
    probe = None
    if cut >= 5 and len(order) - cut >= 5:
        fit_idx, val_idx = order[cut:], order[:cut]
        probe = _fit(
            variant,
            [texts[i] for i in fit_idx],
            [label_lists[i] for i in fit_idx],
            labels,
            script,
            seed,
            multilabel=True,
        )
        thresholds = evaluation.tune_thresholds(
            probe, [texts[i] for i in val_idx], [label_lists[i] for i in val_idx]
        )
    else:
        tuning = {"method": "training-data", "reason": "too few samples for a validation slice"}
    model = _fit(variant, texts, label_lists, labels, script, seed, multilabel=True)
    if probe is None:
        thresholds = evaluation.tune_thresholds(model, texts, label_lists)
    model.thresholds = thresholds
    model.params["thresholds"] = thresholds
    model.params["threshold_tuning"] = tuning
    return model


def _fit(
    variant: dict[str, Any],
    texts: list[str],
    label_lists: list[list[str]],
    labels: list[str],
    script: str,
    seed: int,
    *,
    multilabel: bool,
) -> TextClassifier:
    index = {label: i for i, label in enumerate(labels)}
    if multilabel:
        y = MultiLabelBinarizer(classes=list(range(len(labels)))).fit_transform(
            [[index[label] for label in row if label in index] for row in label_lists]
        )
    else:
        y = np.array([index[row[0]] for row in label_lists])

    def estimator():
        base = _estimator(variant, seed)
        return OneVsRestClassifier(base) if multilabel else base

    max_chars = int(variant.get("max_chars") or 0)
    if variant["representation"] == "hashing":
        features = _hashing(variant)
    else:
        features = _tfidf(variant)
        selection = variant.get("selection", "none")
        if selection != "none":
            matrix = features.fit_transform(cut_texts(texts, max_chars))
            n_features = matrix.shape[1]
            if selection == "chi2":
                k = max(1, min(int(variant["k"]), n_features))
                keep = SelectKBest(chi2, k=k).fit(matrix, y).get_support(indices=True)
            else:
                weights = _feature_weights(estimator().fit(matrix, y))
                k = max(1, int(round(n_features * float(variant["keep_fraction"]))))
                keep = np.argsort(-weights, kind="stable")[:k]
            # The selection is folded into the vocabulary: the served model is an ordinary,
            # smaller TF-IDF pipeline (fewer terms to store and look up), not a selector step.
            features = _tfidf(variant, vocabulary=_kept_vocabulary(features, keep))
    fitted = estimator()
    steps: list[tuple[str, Any]] = [("features", features), ("classifier", fitted)]
    if max_chars:
        steps.insert(0, ("lead", LeadingText(max_chars)))
    pipeline = Pipeline(steps)
    pipeline.fit(texts, y)
    # The terms min_df/max_features dropped are kept only for introspection: not served.
    if variant["representation"] == "tfidf" and hasattr(features, "stop_words_"):
        features.stop_words_ = None
    if variant["precision"] == "float32":
        for part in fitted.estimators_ if multilabel else [fitted]:
            _to_float32(part)
    params = {
        "script": script,
        "variant": dict(variant),
        "multilabel": multilabel,
        "labels": labels,
    }
    return TextClassifier(
        algorithm=algorithm_of(variant),
        params=params,
        labels=list(labels),
        multilabel=multilabel,
        pipeline=pipeline,
        thresholds={label: 0.5 for label in labels} if multilabel else {},
    )


def artifact_bytes(model: TextClassifier) -> bytes:
    """The exact bytes the artifact store would write for `model`."""
    buffer = io.BytesIO()
    artifacts.serialise(model, buffer)
    return buffer.getvalue()
