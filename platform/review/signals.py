"""Measurable signals behind a case's suggested cause, and the suggestion itself.

- confidence: the model's top score for the text;
- oov_share: the share of the text's tokens never seen in the model version's training texts;
- similarity: the cosine similarity (TF-IDF, character n-grams) to the nearest training text,
  and that text's labels;
- drift: open drift / rare-class / label-share alerts on the predicted or suggested labels.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

TOKEN_RE = re.compile(r"[\u3400-\u9fff]|[^\W\d_]+", re.UNICODE)
#: Training texts read per model version for the vocabulary and the nearest-sample search.
MAX_TRAINING_TEXTS = 5000


def tokens(text: str) -> list[str]:
    return [t.lower() for t in TOKEN_RE.findall(text)]


@dataclass
class TrainingIndex:
    vocabulary: frozenset[str]
    texts: list[str]
    labels: list[list[str]]
    vectorizer: object
    matrix: object

    def oov_share(self, text: str) -> float | None:
        words = tokens(text)
        if not words:
            return None
        return round(sum(w not in self.vocabulary for w in words) / len(words), 4)

    def nearest(self, text: str) -> tuple[float, int] | None:
        if not self.texts:
            return None
        from sklearn.metrics.pairwise import linear_kernel

        row = self.vectorizer.transform([text])  # type: ignore[attr-defined]
        sims = linear_kernel(row, self.matrix).ravel()
        best = int(sims.argmax())
        return round(float(sims[best]), 4), best


def build_index(texts: list[str], labels: list[list[str]]) -> TrainingIndex:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vocabulary = frozenset(w for text in texts for w in tokens(text))
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    matrix = vectorizer.fit_transform(texts) if texts else None
    return TrainingIndex(vocabulary, texts, labels, vectorizer, matrix)


_cache: OrderedDict[int, TrainingIndex] = OrderedDict()
_lock = threading.Lock()


def cached_index(version_id: int, load) -> TrainingIndex:
    """The index of one model version's training texts (`load()` -> (texts, labels)); a few are
    kept per process, since a version's training data never changes."""
    with _lock:
        if version_id in _cache:
            _cache.move_to_end(version_id)
            return _cache[version_id]
    texts, labels = load()
    index = build_index(texts, labels)
    with _lock:
        _cache[version_id] = index
        while len(_cache) > 4:
            _cache.popitem(last=False)
    return index


#: Thresholds of the suggestion (documented on the triage page next to the signals).
LOW_CONFIDENCE = 0.5
HIGH_OOV = 0.5
BAD_INPUT_OOV = 0.9
LOW_SIMILARITY = 0.2
NEAR_DUPLICATE = 0.9
MIN_TOKENS = 3


def suggest_cause(signals: dict) -> tuple[str, str]:
    """(cause, why) from the signals: the first rule that applies."""
    n_tokens = signals.get("tokens") or 0
    oov = signals.get("oov_share")
    similarity = signals.get("similarity")
    if n_tokens < MIN_TOKENS or (oov is not None and oov >= BAD_INPUT_OOV):
        return "bad_input", "too few known words to tag"
    nearest_labels = signals.get("nearest_labels") or []
    suggested = signals.get("suggested_labels") or []
    if (
        similarity is not None
        and similarity >= NEAR_DUPLICATE
        and suggested
        and sorted(nearest_labels) != sorted(suggested)
    ):
        return "label_problem", "a near-identical training text carries other labels"
    if signals.get("drift_alerts"):
        return "data_change", "a drift alert is open on these labels"
    if (oov is not None and oov >= HIGH_OOV) or (
        similarity is not None and similarity < LOW_SIMILARITY
    ):
        return "data_change", "the text is unlike the training data"
    return "model_error", "the text resembles the training data, yet the answer was wrong"
