"""A vectorised TF-IDF + linear scorer for serving: the same numbers as scikit-learn, faster.

`TfidfVectorizer.transform` builds every n-gram as a Python string and counts it in a Python loop,
which is most of a prediction's cost. Here each text is tokenised once (the vectoriser's own
preprocessor and token pattern), its tokens become integer ids with one C-level `map(dict.get)`,
and n-grams become integer codes (`id₁·T + id₂` for bigrams) looked up with `np.searchsorted`
in per-n sorted code tables built from the fitted vocabulary at load time. Counting, sublinear tf,
idf, L2 normalisation and the product with the weights then run on whole arrays, for a whole
batch of texts at once.

`build(features, weights, bias)` returns `None` for any configuration it does not reproduce
exactly (stop words, custom analysers or tokenisers, `char_wb`, ...); the caller
(`registry.ml.compile_scorer`) also checks its output against the model's own `predict_scores`
before using it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from scipy import sparse, special
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.svm import LinearSVC

#: scikit-learn's default token pattern, and an equivalent one that `re` runs about 30% faster:
#: `\w\w+` already matches whole runs of word characters, so the `\b` anchors never change a match.
_DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_FAST_TOKEN_PATTERN = re.compile(r"\w\w+")
_WHITE_SPACES = re.compile(r"\s\s+")  # as sklearn's _char_ngrams normalises whitespace

Scorer = Callable[[list[str]], np.ndarray]


def build(
    features,
    weights: np.ndarray,
    bias: np.ndarray,
    head: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Scorer | None:
    """head(tfidf(texts) · weights + bias) for a fitted TfidfVectorizer, or None. `head` turns
    the logits into scores (softmax by default; `linear_form` gives each estimator's own)."""
    if not isinstance(features, TfidfVectorizer) or features.norm not in ("l2", None):
        return None
    if features.analyzer not in ("word", "char") or features.get_stop_words():
        return None
    if features.analyzer == "word" and features.tokenizer is not None:
        return None
    if features.preprocessor is not None or features.input != "content":
        return None
    min_n, max_n = features.ngram_range
    tokens_of = _tokeniser(features)
    tables = _NgramTables(features.vocabulary_, features.analyzer, min_n, max_n)
    if not tables.ok:
        return None
    n_features = len(features.vocabulary_)
    idf = features.idf_ if features.use_idf else None
    sublinear, binary, l2 = features.sublinear_tf, features.binary, features.norm == "l2"
    index_get = tables.index.get
    head = head or _softmax

    def score(texts: list[str]) -> np.ndarray:
        if len(texts) > tables.max_docs:
            step = tables.max_docs
            return np.vstack([score(texts[i : i + step]) for i in range(0, len(texts), step)])
        n_docs = len(texts)
        # Every text's tokens in one list, each text followed by a None (id -1), so no n-gram
        # spans two texts. Each distinct token is looked up in the (large, cache-cold) vocabulary
        # index once; the repeats go through a small dict that stays in cache.
        stream: list = []
        lengths = np.empty(n_docs, dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = tokens_of(text)
            stream.extend(tokens)
            stream.append(None)
            lengths[row] = len(tokens) + 1
        distinct = dict.fromkeys(stream)
        local = dict(zip(distinct, map(index_get, distinct, repeat(-1)), strict=True))
        ids = np.fromiter(map(local.__getitem__, stream), dtype=np.int64, count=len(stream))
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        docs, columns, counts = tables.count(ids, doc_of)
        values = counts.astype(np.float64)
        if binary:
            values[:] = 1.0
        elif sublinear:
            values = np.log(values) + 1.0
        if idf is not None:
            values *= idf[columns]
        if l2:
            norms = np.sqrt(np.bincount(docs, weights=values * values, minlength=n_docs))
            values /= norms[docs]
        logits = _linear(docs, columns, values, n_docs, n_features, weights)
        logits += bias
        return head(logits)

    return score


#: Texts scored in one pass (bounds memory; (text, n-gram) keys must also fit in int64).
MAX_DOCS_PER_PASS = 2048
#: Above this many (n-gram, label) products, `_linear` multiplies through a sparse matrix instead
#: of materialising them (bounded memory for large batches and many labels).
DENSE_PRODUCTS_MAX = 1 << 21


def _linear(docs, columns, values, n_docs: int, n_features: int, weights) -> np.ndarray:
    """X · weights for the sparse rows given as (text, column, value), sorted by text."""
    n_labels = weights.shape[1]
    if len(values) * n_labels > DENSE_PRODUCTS_MAX:
        indptr = np.zeros(n_docs + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs, minlength=n_docs), out=indptr[1:])
        matrix = sparse.csr_matrix((values, columns, indptr), shape=(n_docs, n_features))
        return np.asarray(matrix @ weights)
    out = np.zeros((n_docs, n_labels))
    if len(values):
        products = weights[columns]
        products *= values[:, None]
        starts = np.flatnonzero(np.concatenate(([True], docs[1:] != docs[:-1])))
        out[docs[starts]] = np.add.reduceat(products, starts, axis=0)
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


def _tokeniser(features) -> Callable[[str], list[str]]:
    """The vectoriser's own preprocessing (lowercase, accents) and tokenisation, as a function
    from text to the units its n-grams are made of (words, or characters for `char`)."""
    preprocess = features.build_preprocessor()
    if features.analyzer == "char":

        def chars(text: str) -> list[str]:
            return list(_WHITE_SPACES.sub(" ", preprocess(text)))

        return chars
    if features.token_pattern == _DEFAULT_TOKEN_PATTERN:
        findall = _FAST_TOKEN_PATTERN.findall
        return lambda text: findall(preprocess(text))
    tokenize = features.build_tokenizer()
    return lambda text: tokenize(preprocess(text))


class _NgramTables:
    """The fitted vocabulary as integer tables: token -> id, and for each n a sorted array of
    n-gram codes (ids in base T) with the feature column of each."""

    def __init__(self, vocabulary: dict[str, int], analyzer: str, min_n: int, max_n: int):
        split = (lambda term: list(term)) if analyzer == "char" else (lambda term: term.split(" "))
        parts = {term: split(term) for term in vocabulary}
        self.index: dict[str, int] = {}
        for pieces in parts.values():
            for piece in pieces:
                self.index.setdefault(piece, len(self.index))
        base = max(1, len(self.index))
        self.base, self.sizes = base, range(min_n, max_n + 1)
        # Codes must fit in int64; every term must split into min_n..max_n known pieces.
        self.ok = base ** max(1, max_n) < 2**62 and all(
            min_n <= len(pieces) <= max_n and all(pieces) for pieces in parts.values()
        )
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.unigram_columns = np.empty(0, dtype=np.int64)
        self.max_docs = 1
        if not self.ok:
            return
        for n in self.sizes:
            terms = [(term, pieces) for term, pieces in parts.items() if len(pieces) == n]
            codes = np.zeros(len(terms), dtype=np.int64)
            for k in range(n):
                codes = codes * base + np.fromiter(
                    (self.index[pieces[k]] for _, pieces in terms),
                    dtype=np.int64,
                    count=len(terms),
                )
            columns = np.fromiter(
                (vocabulary[term] for term, _ in terms), dtype=np.int64, count=len(terms)
            )
            order = np.argsort(codes)
            self.tables[n] = (codes[order], columns[order])
        self.unigram_columns = np.full(base, -1, dtype=np.int64)
        if 1 in self.tables:
            codes, columns = self.tables[1]
            self.unigram_columns[codes] = columns
        self.max_docs = max(1, min(MAX_DOCS_PER_PASS, (2**62) // base**max_n))

    def count(
        self, ids: np.ndarray, doc_of: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(text, column, count) of every vocabulary n-gram in the id stream, sorted by text.

        Occurrences are counted first (np.unique on text·Tⁿ + code) and each distinct n-gram is
        looked up once, with sorted keys; unigrams index a direct table instead."""
        docs, columns, counts = [], [], []
        for n, (codes, cols) in self.tables.items():
            if len(codes) == 0 or len(ids) < n:
                continue
            width = len(ids) - n + 1
            code = ids[:width].copy()
            valid = code >= 0
            for k in range(1, n):
                following = ids[k : k + width]
                valid &= following >= 0
                code = code * self.base + following
            span = self.base**n
            keys, found_counts = np.unique(
                doc_of[:width][valid] * span + code[valid], return_counts=True
            )
            at, code = np.divmod(keys, span)
            if n == 1:
                column = self.unigram_columns[code]
                found = column >= 0
            else:
                slot = np.minimum(np.searchsorted(codes, code), len(codes) - 1)
                found = codes[slot] == code
                column = cols[slot]
            docs.append(at[found])
            columns.append(column[found])
            counts.append(found_counts[found])
        if not docs:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        docs, columns, counts = (
            np.concatenate(docs),
            np.concatenate(columns),
            np.concatenate(counts),
        )
        if len(self.tables) > 1:  # each n's entries are sorted by text; merge them
            order = np.argsort(docs, kind="stable")
            docs, columns, counts = docs[order], columns[order], counts[order]
        return docs, columns, counts


# --- Linear forms: every platform estimator as head(X · W + b) -------------------------------
@dataclass(frozen=True)
class LinearForm:
    """An estimator's scores as `head(X · weights + bias)`: one product for every label (and,
    for calibrated or one-vs-rest models, every fold or binary estimator), then a cheap head."""

    weights: np.ndarray  # (n_features, n_logits), float64
    bias: np.ndarray  # (n_logits,)
    head: Callable[[np.ndarray], np.ndarray]  # logits (n_texts, n_logits) -> (n_texts, n_labels)
    kind: str


@dataclass(frozen=True)
class _Block:
    """One linear sub-model: its logit columns and how they become probabilities."""

    weights: np.ndarray  # (n_features, width)
    bias: np.ndarray  # (width,)
    #: block logits (n_texts, width) -> probabilities (n_texts, n_classes) of the sub-model
    proba: Callable[[np.ndarray], np.ndarray]


def _expit(z: np.ndarray) -> np.ndarray:
    return special.expit(z)


def _two_columns(positive: np.ndarray) -> np.ndarray:
    return np.column_stack([1.0 - positive, positive])


def _ovr_normalise(prob: np.ndarray) -> np.ndarray:
    """As scikit-learn's OvR normalisation: rows of all zeros become uniform."""
    total = prob.sum(axis=1)
    zero = total == 0
    if np.any(zero):
        prob[zero, :] = 1
        total[zero] = prob.shape[1]
    prob /= total[:, None]
    return prob


def _coef_block(coef, intercept) -> tuple[np.ndarray, np.ndarray]:
    weights = np.ascontiguousarray(np.asarray(coef, dtype=np.float64).T)
    bias = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (weights.shape[1],)).copy()
    return weights, bias


def _estimator_block(estimator, n_classes: int) -> _Block | None:
    """`estimator.predict_proba` (classes 0..n_classes-1) as a linear block, or None."""
    classes = getattr(estimator, "classes_", None)
    if classes is None or list(classes) != list(range(n_classes)) or n_classes < 2:
        return None
    binary = n_classes == 2
    if isinstance(estimator, LogisticRegression):
        weights, bias = _coef_block(estimator.coef_, estimator.intercept_)
        if binary:
            return _Block(weights, bias, lambda z: _two_columns(_expit(z[:, 0])))
        return _Block(weights, bias, _softmax)
    if isinstance(estimator, SGDClassifier) and estimator.loss in ("log_loss", "modified_huber"):
        weights, bias = _coef_block(estimator.coef_, estimator.intercept_)
        if estimator.loss == "log_loss":
            if binary:
                return _Block(weights, bias, lambda z: _two_columns(_expit(z[:, 0])))
            return _Block(weights, bias, lambda z: _ovr_normalise(_expit(z)))

        def huber(z: np.ndarray) -> np.ndarray:
            prob = (np.clip(z, -1, 1) + 1.0) / 2.0
            return _two_columns(prob[:, 0]) if binary else _ovr_normalise(prob)

        return _Block(weights, bias, huber)
    if isinstance(estimator, ComplementNB):
        weights, bias = _coef_block(estimator.feature_log_prob_, 0.0)
        return _Block(weights, bias, _softmax)
    if isinstance(estimator, CalibratedClassifierCV):
        return _calibrated_block(estimator, n_classes)
    return None


def _calibrated_block(model: CalibratedClassifierCV, n_classes: int) -> _Block | None:
    """The mean of the folds' sigmoid-calibrated linear models (scikit-learn's own order of
    operations: calibrate each class, normalise per fold, average the folds)."""
    folds = []
    for fold in model.calibrated_classifiers_:
        inner = fold.estimator
        # LinearSVC has no predict_proba, so its calibration input is the decision function.
        if fold.method != "sigmoid" or not isinstance(inner, LinearSVC):
            return None
        if list(fold.classes) != list(range(n_classes)):
            return None
        if list(inner.classes_) != list(range(n_classes)):
            return None
        weights, bias = _coef_block(inner.coef_, inner.intercept_)
        if weights.shape[1] != len(fold.calibrators):
            return None
        a = np.array([float(c.a_) for c in fold.calibrators])
        b = np.array([float(c.b_) for c in fold.calibrators])
        folds.append((weights, bias, a, b))
    if not folds:
        return None
    widths = [f[0].shape[1] for f in folds]
    edges = np.cumsum([0, *widths])

    def calibrated(z: np.ndarray) -> np.ndarray:
        mean = np.zeros((z.shape[0], n_classes))
        for k, (_, _, a, b) in enumerate(folds):
            calibrated_z = _expit(-(z[:, edges[k] : edges[k + 1]] * a + b))
            if n_classes == 2:
                proba = _two_columns(calibrated_z[:, 0])
            else:
                total = calibrated_z.sum(axis=1)[:, None]
                proba = np.full_like(calibrated_z, 1 / n_classes)
                np.divide(calibrated_z, total, out=proba, where=total != 0)
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
            mean += proba
        mean /= len(folds)
        return mean

    return _Block(
        np.hstack([f[0] for f in folds]), np.concatenate([f[1] for f in folds]), calibrated
    )


def linear_form(estimator, *, n_labels: int, multilabel: bool) -> LinearForm | None:
    """The fitted estimator of a platform pipeline as head(X · W + b), or None when it has no
    such form (the caller then serves `predict_scores`). Multi-class: LogisticRegression,
    SGDClassifier (log_loss, modified_huber), ComplementNB, sigmoid-calibrated LinearSVC.
    Multi-label: a OneVsRestClassifier of those, one positive-class column per label."""
    if not multilabel:
        block = _estimator_block(estimator, n_labels)
        if block is None:
            return None
        return LinearForm(block.weights, block.bias, block.proba, type(estimator).__name__)
    if not isinstance(estimator, OneVsRestClassifier) or not getattr(estimator, "multilabel_", 0):
        return None
    if len(estimator.estimators_) != n_labels or n_labels < 2:
        return None
    blocks = []
    for sub in estimator.estimators_:
        block = _estimator_block(sub, 2)  # a label that never (or always) occurs: no form
        if block is None:
            return None
        blocks.append(block)
    edges = np.cumsum([0, *(b.weights.shape[1] for b in blocks)])
    procs = [b.proba for b in blocks]

    def one_vs_rest(z: np.ndarray) -> np.ndarray:
        out = np.empty((z.shape[0], n_labels))
        for j, proba in enumerate(procs):
            out[:, j] = proba(z[:, edges[j] : edges[j + 1]])[:, 1]
        return out

    kind = "OneVsRest(" + ",".join(sorted({type(s).__name__ for s in estimator.estimators_})) + ")"
    return LinearForm(
        np.hstack([b.weights for b in blocks]),
        np.concatenate([b.bias for b in blocks]),
        one_vs_rest,
        kind,
    )
