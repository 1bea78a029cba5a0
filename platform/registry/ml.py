"""The text classifiers the platform trains, behind one small interface.

`TextClassifier.predict_scores(texts)` returns an (n_texts, n_labels) array of confidences in
[0, 1], columns in `labels` order: probabilities for multi-class models (rows sum to 1) and
independent per-label probabilities for multi-label (one-vs-rest) models. Serving, evaluation and
latency measurement all go through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from registry import scoring

ALGORITHMS = ("tfidf-logreg", "tfidf-svm", "hashing-sgd", "complement-nb")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def detect_script(texts: list[str], sample: int = 200) -> str:
    """'cjk' when Chinese characters dominate a sample of the texts, else 'latin'."""
    chunk = "".join(texts[:sample])[:200_000]
    if not chunk:
        return "latin"
    cjk = len(_CJK.findall(chunk))
    letters = sum(ch.isalpha() for ch in chunk) or 1
    return "cjk" if cjk / letters > 0.3 else "latin"


def default_params(algorithm: str, script: str) -> dict[str, Any]:
    """Every hyperparameter, explicitly, so a model version records exactly what it used."""
    if script == "cjk":
        vec = {"analyzer": "char", "ngram_range": [1, 2], "min_df": 2, "max_features": 200_000}
    else:
        vec = {"analyzer": "word", "ngram_range": [1, 2], "min_df": 2, "max_features": 200_000}
    vec["sublinear_tf"] = True
    vec["lowercase"] = True
    if algorithm == "tfidf-logreg":
        clf = {"C": 10.0, "max_iter": 1000, "class_weight": "balanced", "solver": "lbfgs"}
    elif algorithm == "tfidf-svm":
        clf = {"C": 1.0, "class_weight": "balanced", "calibration_cv": 3}
    elif algorithm == "hashing-sgd":
        vec = {k: v for k, v in vec.items() if k not in {"min_df", "max_features", "sublinear_tf"}}
        vec["n_features"] = 2**18
        vec["alternate_sign"] = False
        clf = {
            "loss": "modified_huber",
            "alpha": 1e-5,
            "max_iter": 50,
            "tol": 1e-4,
            "random_state": 42,
            "class_weight": "balanced",
        }
    elif algorithm == "complement-nb":
        clf = {"alpha": 0.3}
    else:
        raise ValueError(f"Unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}.")
    return {"script": script, "vectorizer": vec, "classifier": clf}


SCRIPTS = ("latin", "cjk")
PARAM_SECTIONS = ("vectorizer", "classifier")


def params_problems(algorithm: str, params: Any) -> dict[str, list[str]]:
    """What is wrong with training `params` for `algorithm`, as {field: [problems]} (empty when
    they train). The catalogue is `default_params` (which keys an algorithm has) and then
    scikit-learn's own parameter constraints (which values each accepts), checked by building
    the pipeline's parts without fitting them: a bad value is refused when it is asked for, not
    minutes later in a training worker."""
    if algorithm not in ALGORITHMS:
        return {"algorithm": [f"Unknown algorithm {algorithm!r}; one of {', '.join(ALGORITHMS)}."]}
    if not isinstance(params, dict):
        return {"params": ["An object."]}
    problems: dict[str, list[str]] = {}
    unknown = sorted(set(params) - {"script", *PARAM_SECTIONS})
    if unknown:
        problems["params"] = [f"Unknown key(s): {', '.join(map(str, unknown))}."]
    script = params.get("script") or "latin"
    if script not in SCRIPTS:
        problems["params.script"] = [f"One of {', '.join(SCRIPTS)}."]
        script = "latin"
    merged = default_params(algorithm, script)
    for section in PARAM_SECTIONS:
        given = params.get(section) or {}
        if not isinstance(given, dict):
            problems[f"params.{section}"] = ["An object."]
            continue
        outside = sorted(set(given) - set(merged[section]))
        if outside:
            problems[f"params.{section}"] = [
                f"Not a {section} parameter of {algorithm}: {', '.join(map(str, outside))}; "
                f"it has {', '.join(sorted(merged[section]))}."
            ]
            continue
        merged[section].update(given)
    if problems:
        return problems
    for section, build in (("vectorizer", _vectorizer), ("classifier", _estimator)):
        try:
            for part in _parts(build(algorithm, merged[section])):
                part._validate_params()  # scikit-learn's declared constraints, no fitting
        except (TypeError, ValueError) as exc:  # InvalidParameterError is both
            problems[f"params.{section}"] = [str(exc)[:300]]
    return problems


def _parts(estimator) -> list:
    """The scikit-learn objects inside a built vectorizer or estimator (pipelines, wrappers)."""
    if isinstance(estimator, Pipeline):
        return [part for _, step in estimator.steps for part in _parts(step)]
    inner = getattr(estimator, "estimator", None)
    return [estimator, *(_parts(inner) if inner is not None else [])]


def _vectorizer(algorithm: str, vec: dict[str, Any]):
    kwargs = dict(vec)
    kwargs["ngram_range"] = tuple(kwargs["ngram_range"])
    if algorithm == "hashing-sgd":
        return Pipeline(
            [("hash", HashingVectorizer(**kwargs)), ("tfidf", TfidfTransformer(sublinear_tf=True))]
        )
    return TfidfVectorizer(**kwargs)


def _estimator(algorithm: str, clf: dict[str, Any]):
    if algorithm == "tfidf-logreg":
        return LogisticRegression(**clf)
    if algorithm == "tfidf-svm":
        kwargs = {k: v for k, v in clf.items() if k != "calibration_cv"}
        return CalibratedClassifierCV(LinearSVC(**kwargs), cv=clf.get("calibration_cv", 3))
    if algorithm == "hashing-sgd":
        return SGDClassifier(**clf)
    if algorithm == "complement-nb":
        return ComplementNB(**clf)
    raise ValueError(f"Unknown algorithm {algorithm!r}")


class LeadingText(TransformerMixin, BaseEstimator):
    """A pipeline's first step that keeps each text's first `max_chars` characters (0: all of
    them), in training and in serving alike: a model that reads a bounded prefix has a bounded
    per-text cost whatever the length of what it is sent (news leads carry most of the topic)."""

    def __init__(self, max_chars: int = 0):
        self.max_chars = max_chars

    def fit(self, texts, y=None):
        return self

    def transform(self, texts):
        return cut_texts(texts, self.max_chars)

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless


def cut_texts(texts, max_chars: int) -> list[str]:
    if not max_chars:
        return list(texts)
    return [text[:max_chars] for text in texts]


@dataclass
class TextClassifier:
    algorithm: str
    params: dict[str, Any]
    labels: list[str]
    multilabel: bool
    pipeline: Pipeline
    #: Per-label decision thresholds (multi-label); multi-class models use the need's threshold.
    thresholds: dict[str, float] = field(default_factory=dict)

    def predict_scores(self, texts: list[str]) -> np.ndarray:
        scores = np.asarray(self.pipeline.predict_proba(texts), dtype=np.float64)
        if not self.multilabel:
            # Keep columns in `labels` order whatever order the estimator learned them in.
            classes = list(self.pipeline.classes_)
            if classes != list(range(len(self.labels))):
                full = np.zeros((len(texts), len(self.labels)))
                for column, cls in enumerate(classes):
                    full[:, int(cls)] = scores[:, column]
                scores = full
        return np.clip(scores, 0.0, 1.0)

    def predict_label_lists(self, texts: list[str]) -> list[list[str]]:
        """Hard decisions: argmax for multi-class, per-label thresholds for multi-label."""
        scores = self.predict_scores(texts)
        if not self.multilabel:
            return [[self.labels[int(i)]] for i in scores.argmax(axis=1)]
        cut = np.array([self.thresholds.get(label, 0.5) for label in self.labels])
        return [[self.labels[j] for j in np.flatnonzero(row >= cut)] for row in scores]


def train(
    *,
    texts: list[str],
    label_lists: list[list[str]],
    labels: list[str],
    multilabel: bool,
    algorithm: str,
    params: dict[str, Any] | None = None,
) -> TextClassifier:
    """Fit a classifier. `params` overrides `default_params(algorithm, script)` key by key."""
    if not texts:
        raise ValueError("No training texts.")
    script = (params or {}).get("script") or detect_script(texts)
    merged = default_params(algorithm, script)
    for section in ("vectorizer", "classifier"):
        merged[section].update((params or {}).get(section, {}))
    vectorizer = _vectorizer(algorithm, merged["vectorizer"])
    estimator = _estimator(algorithm, merged["classifier"])
    index = {label: i for i, label in enumerate(labels)}
    if multilabel:
        y = MultiLabelBinarizer(classes=list(range(len(labels)))).fit_transform(
            [[index[label] for label in row] for row in label_lists]
        )
        estimator = OneVsRestClassifier(estimator)
    else:
        y = np.array([index[row[0]] for row in label_lists])
    pipeline = Pipeline([("features", vectorizer), ("classifier", estimator)])
    pipeline.fit(texts, y)
    return TextClassifier(
        algorithm=algorithm,
        params=merged,
        labels=list(labels),
        multilabel=multilabel,
        pipeline=pipeline,
        thresholds={label: 0.5 for label in labels} if multilabel else {},
    )


def compile_scorer(model: TextClassifier, *, check_texts: list[str]) -> tuple[Any, str]:
    """A faster `predict_scores` for serving, and the name of the path taken.

    Every estimator the platform trains is linear in the features (`scoring.linear_form`: multi-
    nomial or binary logistic regression, SGD with log or modified-Huber loss, ComplementNB,
    sigmoid-calibrated linear SVM, and one-vs-rest multi-label models of those), so its scores are
    head(X·W + b): one product, then the estimator's own probability head. That skips
    scikit-learn's per-call validation and dispatch ("linear"), and for a TF-IDF vectoriser the
    vectorised `scoring.build` replaces `transform` too ("tfidf-linear"). Anything else is served
    by `predict_scores` with scikit-learn's input validation switched off (the vectoriser always
    hands it a finite sparse matrix). A compiled path must reproduce `predict_scores` on
    `check_texts` (tolerance: float64 rounding, or float32 rounding for single-precision models)
    or it is not used.
    """
    import sklearn

    def validated_off(texts: list[str]) -> np.ndarray:
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return model.predict_scores(texts)

    steps = [step for _, step in model.pipeline.steps]
    max_chars = steps.pop(0).max_chars if isinstance(steps[0], LeadingText) else 0
    if len(steps) != 2:
        return validated_off, "predict_scores"
    features, estimator = steps
    form = scoring.linear_form(
        estimator, n_labels=len(model.labels), multilabel=bool(model.multilabel)
    )
    if form is None:
        return validated_off, "predict_scores"
    weights, bias, head = form.weights, form.bias, form.head

    def clipped(logits: np.ndarray) -> np.ndarray:
        return np.clip(head(logits), 0.0, 1.0)

    def linear(texts: list[str]) -> np.ndarray:
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            matrix = features.transform(cut_texts(texts, max_chars) if max_chars else texts)
        logits = np.asarray(matrix @ weights, dtype=np.float64)
        logits += bias
        return clipped(logits)

    tolerance = _tolerance(model)
    reference = model.predict_scores(check_texts)
    if not np.allclose(linear(check_texts), reference, **tolerance):
        return validated_off, "predict_scores"
    built = scoring.build(features, weights, bias, clipped)
    direct = built
    if built is not None and max_chars:

        def direct(texts: list[str]) -> np.ndarray:
            return built(cut_texts(texts, max_chars))

    if direct is not None and np.allclose(direct(check_texts), reference, **tolerance):
        return direct, "tfidf-linear"
    return linear, "linear"


def _tolerance(model: TextClassifier) -> dict[str, float]:
    """How close a compiled scorer must come to `predict_scores`: float64 rounding, or float32
    rounding when the model computes in single precision (its features or weights)."""
    features = next(s for _, s in model.pipeline.steps if not isinstance(s, LeadingText))
    steps = [step for _, step in features.steps] if isinstance(features, Pipeline) else [features]
    single = any(np.dtype(getattr(step, "dtype", np.float64)) == np.float32 for step in steps)
    for target in _fitted_parts(model.pipeline.steps[-1][1]):
        for name in ("coef_", "feature_log_prob_"):
            value = getattr(target, name, None)
            if getattr(value, "dtype", None) == np.float32:
                single = True
    return {"rtol": 1e-3, "atol": 1e-4} if single else {"rtol": 1e-6, "atol": 1e-9}


def _fitted_parts(estimator) -> list[Any]:
    parts = [estimator]
    for sub in getattr(estimator, "estimators_", None) or []:
        parts.extend(_fitted_parts(sub))
    for fold in getattr(estimator, "calibrated_classifiers_", None) or []:
        parts.append(fold.estimator)
    return parts
