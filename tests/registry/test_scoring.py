"""The vectorised TF-IDF scorer (registry.scoring) gives scikit-learn's numbers, or declines."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from registry import datasets, ml, scoring

EDGE_CASES = [
    "",  # nothing at all
    "   \n\t  ",  # whitespace only
    "a b c",  # only one-letter words: no token under the default pattern
    "zzqx qqzv",  # only unknown words
    "Goal!",  # a single known-ish token: no bigram
    "Économie: l'état café NAÏVE naive",  # accents, apostrophes, case
    "goal goal goal goal goal goal",  # repeats: sublinear tf
    "新款手机发布，芯片性能提升。 市场  反应\n\n热烈",  # CJK and runs of whitespace
]


@pytest.fixture(scope="module")
def bbc():
    rows = list(islice(datasets.bbc_rows(), 0, None, 8))  # every 8th article: all five topics
    return [row.text for row in rows], [row.labels[0] for row in rows]


@pytest.fixture(scope="module")
def zh():
    rows = list(islice(datasets.zh_inews_rows(), 0, 1500, 5))
    return [row.text for row in rows], [row.labels[0] for row in rows]


def fit(texts, labels, **vectorizer):
    vectorizer.setdefault("min_df", 1)
    pipeline = Pipeline(
        [
            ("features", TfidfVectorizer(**vectorizer)),
            ("classifier", LogisticRegression(C=10.0, max_iter=300)),
        ]
    )
    names = sorted(set(labels))
    pipeline.fit(texts, [names.index(label) for label in labels])
    return pipeline


def check(pipeline, texts) -> None:
    features, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    score = scoring.build(features, estimator.coef_.T.copy(), estimator.intercept_.copy())
    assert score is not None
    expected = pipeline.predict_proba(texts)
    together = score(texts)
    assert together.shape == expected.shape
    np.testing.assert_allclose(together, expected, rtol=1e-9, atol=1e-12)
    # One text at a time, and in uneven batches, gives the same rows.
    np.testing.assert_allclose(score(texts[:1]), expected[:1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        np.vstack([score(texts[i : i + 7]) for i in range(0, len(texts), 7)]),
        expected,
        rtol=1e-9,
        atol=1e-12,
    )


@pytest.mark.parametrize(
    "options",
    [
        {"ngram_range": (1, 2), "sublinear_tf": True},  # the platform's default for Latin text
        {"ngram_range": (1, 1)},
        {"ngram_range": (2, 3), "sublinear_tf": True},
        {"ngram_range": (1, 2), "binary": True, "norm": None},
        {"ngram_range": (1, 2), "use_idf": False, "lowercase": False},
        {"ngram_range": (1, 2), "strip_accents": "unicode"},
        {"ngram_range": (1, 2), "token_pattern": r"(?u)\b\w+\b"},  # one-letter words count
        {"ngram_range": (1, 2), "max_features": 300, "min_df": 2},
        {"analyzer": "char", "ngram_range": (1, 3)},
    ],
    ids=lambda options: ",".join(f"{k}={v}" for k, v in options.items()),
)
def test_matches_scikit_learn_on_bbc_articles(bbc, options):
    texts, labels = bbc
    pipeline = fit(texts, labels, **options)
    check(pipeline, texts[::3] + EDGE_CASES + [texts[0], texts[0]])


def test_matches_scikit_learn_on_chinese_news_with_character_ngrams(zh):
    texts, labels = zh
    pipeline = fit(texts, labels, analyzer="char", ngram_range=(1, 2), sublinear_tf=True)
    check(pipeline, texts[::2] + EDGE_CASES)


def test_large_batches_take_the_sparse_product_and_several_passes(bbc, monkeypatch):
    texts, labels = bbc
    pipeline = fit(texts, labels, ngram_range=(1, 2), sublinear_tf=True)
    monkeypatch.setattr(scoring, "DENSE_PRODUCTS_MAX", 0)
    check(pipeline, texts[::3] + EDGE_CASES)
    monkeypatch.setattr(scoring, "MAX_DOCS_PER_PASS", 5)
    check(pipeline, texts[::3] + EDGE_CASES)


@pytest.mark.parametrize(
    "options",
    [
        {"stop_words": "english"},
        {"analyzer": "char_wb"},
        {"tokenizer": str.split, "token_pattern": None},
    ],
    ids=["stop_words", "char_wb", "tokenizer"],
)
def test_declines_what_it_does_not_reproduce(bbc, options):
    texts, labels = bbc
    pipeline = fit(texts[::4], labels[::4], **options)
    features, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    assert scoring.build(features, estimator.coef_.T, estimator.intercept_) is None


def test_the_platforms_models_are_served_by_it(bbc):
    texts, labels = bbc
    model = ml.train(
        texts=texts,
        label_lists=[[label] for label in labels],
        labels=sorted(set(labels)),
        multilabel=False,
        algorithm="tfidf-logreg",
    )
    scorer, path = ml.compile_scorer(model, check_texts=texts[:5] + EDGE_CASES)
    assert path == "tfidf-linear"
    np.testing.assert_allclose(scorer(texts), model.predict_scores(texts), rtol=1e-9, atol=1e-12)
