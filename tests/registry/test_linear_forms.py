"""Every estimator the platform trains is served by a compiled scorer (registry.scoring.linear_form
+ the vectorised TF-IDF scorer) that gives scikit-learn's own labels and scores on real data."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from registry import datasets, ml, scoring

EDGE_CASES = ["", "   ", "zzqx qqzv", "goal goal goal", "新款手机发布，芯片性能提升。"]


@pytest.fixture(scope="module")
def bbc():
    rows = list(islice(datasets.bbc_rows(), 0, None, 5))
    labels = sorted({row.labels[0] for row in rows})
    texts = [row.text for row in rows]
    y = [labels.index(row.labels[0]) for row in rows]
    return texts[::2], y[::2], texts[1::2], labels


@pytest.fixture(scope="module")
def zh():
    rows = list(islice(datasets.zh_inews_rows(), 0, 2400, 3))
    labels = sorted({row.labels[0] for row in rows})
    texts = [row.text for row in rows]
    y = [labels.index(row.labels[0]) for row in rows]
    return texts[::2], y[::2], texts[1::2], labels


ESTIMATORS = {
    "logreg": lambda: LogisticRegression(C=10.0, max_iter=300),
    "logreg-l1": lambda: LogisticRegression(C=10.0, l1_ratio=1.0, solver="saga", max_iter=100),
    "svm-calibrated": lambda: CalibratedClassifierCV(LinearSVC(C=1.0), cv=3),
    "sgd-huber": lambda: SGDClassifier(loss="modified_huber", alpha=1e-5, random_state=0),
    "sgd-log": lambda: SGDClassifier(loss="log_loss", alpha=1e-5, random_state=0),
    "complement-nb": lambda: ComplementNB(alpha=0.3),
}


def _to_float32(estimator) -> None:
    parts = [estimator, *getattr(estimator, "estimators_", [])]
    parts += [c.estimator for c in getattr(estimator, "calibrated_classifiers_", [])]
    for part in parts:
        for name in ("coef_", "intercept_", "feature_log_prob_"):
            value = getattr(part, name, None)
            if isinstance(value, np.ndarray):
                setattr(part, name, value.astype(np.float32))


def classifier(features, estimator, texts, y, labels, *, multilabel=False, float32=False):
    pipeline = Pipeline([("features", features), ("classifier", estimator)])
    pipeline.fit(texts, y)
    if float32:
        _to_float32(estimator)
    return ml.TextClassifier(
        algorithm="test",
        params={},
        labels=list(labels),
        multilabel=multilabel,
        pipeline=pipeline,
        thresholds={label: 0.5 for label in labels} if multilabel else {},
    )


def assert_same(model, texts, expected_path, *, float32=False):
    scorer, path = ml.compile_scorer(model, check_texts=texts[:3] + EDGE_CASES)
    assert path == expected_path
    expected = model.predict_scores(texts)
    got = scorer(texts)
    assert got.shape == expected.shape
    tolerance = {"rtol": 1e-3, "atol": 1e-4} if float32 else {"rtol": 1e-7, "atol": 1e-10}
    np.testing.assert_allclose(got, expected, **tolerance)
    if model.multilabel:
        cut = np.array([model.thresholds[label] for label in model.labels])
        assert ((got >= cut) == (expected >= cut)).all()
    else:
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    # One text at a time gives the same rows as the batch.
    np.testing.assert_allclose(
        np.vstack([scorer([text]) for text in texts[:20]]), got[:20], rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
@pytest.mark.parametrize("float32", [False, True], ids=["float64", "float32"])
def test_every_classifier_on_a_word_vocabulary_matches_scikit_learn_on_bbc(bbc, kind, float32):
    texts, y, held_out, labels = bbc
    features = TfidfVectorizer(
        ngram_range=(1, 1),
        min_df=2,
        max_features=5000,
        sublinear_tf=True,
        dtype=np.float32 if float32 else np.float64,
    )
    model = classifier(features, ESTIMATORS[kind](), texts, y, labels, float32=float32)
    assert_same(model, held_out + EDGE_CASES, "tfidf-linear", float32=float32)


@pytest.mark.parametrize("kind", ["logreg", "svm-calibrated", "sgd-huber", "complement-nb"])
def test_character_pairs_on_chinese_news_match_scikit_learn(zh, kind):
    texts, y, held_out, labels = zh
    features = TfidfVectorizer(
        analyzer="char", ngram_range=(1, 2), min_df=2, max_features=20000, sublinear_tf=True
    )
    model = classifier(features, ESTIMATORS[kind](), texts, y, labels)
    assert_same(model, held_out, "tfidf-linear")


def test_two_labels_use_the_binary_heads(bbc):
    texts, y, held_out, labels = bbc
    pair = [i for i, label in enumerate(y) if label in (0, 1)]
    for kind in sorted(ESTIMATORS):
        features = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        model = classifier(
            features,
            ESTIMATORS[kind](),
            [texts[i] for i in pair],
            [y[i] for i in pair],
            labels[:2],
        )
        assert_same(model, held_out[:60] + EDGE_CASES, "tfidf-linear")


def test_a_hashing_vectoriser_takes_the_linear_path(bbc):
    texts, y, held_out, labels = bbc
    features = Pipeline(
        [
            ("hash", HashingVectorizer(n_features=2**16, alternate_sign=False, norm=None)),
            ("tfidf", TfidfTransformer(sublinear_tf=True)),
        ]
    )
    model = classifier(features, ESTIMATORS["sgd-huber"](), texts, y, labels)
    assert_same(model, held_out, "linear")


@pytest.mark.parametrize("kind", ["logreg", "svm-calibrated", "sgd-huber", "complement-nb"])
def test_one_vs_rest_multi_label_models_match_scikit_learn(bbc, kind):
    texts, y, held_out, labels = bbc
    # A multi-label task from real articles: each article's topic, and "business" also on every
    # politics article (so a text may carry two labels).
    politics, business = labels.index("news.politics"), labels.index("news.business")
    sets = [[label] + ([business] if label == politics else []) for label in y]
    indicator = MultiLabelBinarizer(classes=list(range(len(labels)))).fit_transform(sets)
    features = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    model = classifier(
        features, OneVsRestClassifier(ESTIMATORS[kind]()), texts, indicator, labels, multilabel=True
    )
    assert_same(model, held_out + EDGE_CASES, "tfidf-linear")


def test_what_has_no_linear_form_is_served_by_predict_scores(bbc):
    texts, y, held_out, labels = bbc
    isotonic = CalibratedClassifierCV(LinearSVC(), cv=3, method="isotonic")
    model = classifier(TfidfVectorizer(min_df=2), isotonic, texts, y, labels)
    scorer, path = ml.compile_scorer(model, check_texts=held_out[:3])
    assert path == "predict_scores"
    assert (scorer(held_out) == model.predict_scores(held_out)).all()
    # A multi-label model with a label that never occurs in training (a constant predictor).
    indicator = MultiLabelBinarizer(classes=list(range(len(labels)))).fit_transform(
        [[label] if label != 0 else [1] for label in y]
    )
    constant = classifier(
        TfidfVectorizer(min_df=2),
        OneVsRestClassifier(LogisticRegression()),
        texts,
        indicator,
        labels,
        multilabel=True,
    )
    assert scoring.linear_form(constant.pipeline.steps[-1][1], n_labels=5, multilabel=True) is None
    assert ml.compile_scorer(constant, check_texts=held_out[:3])[1] == "predict_scores"
