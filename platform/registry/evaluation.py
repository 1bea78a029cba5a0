"""Evaluation of a TextClassifier on labelled texts: metrics, thresholds, latency, pictures.

Everything here is pure (no database), so training, comparison and tests share one definition of
"how good is this model".
"""

from __future__ import annotations

import math
import random
import time
from html import escape
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from registry.ml import TextClassifier

THRESHOLD_GRID = [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)]


def _round(value: float) -> float:
    return round(float(value), 4)


def evaluate(
    classifier: TextClassifier,
    texts: list[str],
    label_lists: list[list[str]],
    *,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro/micro F1, per-label precision/recall/F1/support and a confusion matrix.

    `labels` is the label universe (default: the classifier's). Macro F1 averages over labels that
    have test support, so a label absent from the test split does not count as a zero.
    """
    labels = list(labels or classifier.labels)
    predicted = classifier.predict_label_lists(texts) if texts else []
    binarizer = MultiLabelBinarizer(classes=labels)
    known = set(labels)
    y_true = binarizer.fit_transform([[x for x in row if x in known] for row in label_lists])
    y_pred = binarizer.transform([[x for x in row if x in known] for row in predicted])
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0
    )
    supported = [i for i, s in enumerate(support) if s > 0]
    tp = int((y_true & y_pred).sum())
    fp = int(((1 - y_true) & y_pred).sum())
    fn = int((y_true & (1 - y_pred)).sum())
    micro_f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    if classifier.multilabel:
        accuracy = float((y_true == y_pred).all(axis=1).mean()) if len(texts) else 0.0
        # Rows: true label, columns: predicted label; a document counts in every pair it has.
        matrix = (y_true.T @ y_pred).astype(int).tolist()
        matrix_kind = "co-occurrence"
    else:
        true_single = [row[0] if row else "" for row in label_lists]
        pred_single = [row[0] if row else "" for row in predicted]
        accuracy = (
            sum(t == p for t, p in zip(true_single, pred_single, strict=True)) / len(texts)
            if texts
            else 0.0
        )
        matrix = confusion_matrix(true_single, pred_single, labels=labels).tolist()
        matrix_kind = "confusion"
    per_label = {
        label: {
            "precision": _round(precision[i]),
            "recall": _round(recall[i]),
            "f1": _round(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    weakest = sorted(
        (label for label in labels if per_label[label]["support"]),
        key=lambda label: per_label[label]["f1"],
    )[:3]
    return {
        "n_test": len(texts),
        "labels": labels,
        "accuracy": _round(accuracy),
        "macro_f1": _round(np.mean([f1[i] for i in supported]) if supported else 0.0),
        "micro_f1": _round(micro_f1),
        "macro_precision": _round(np.mean([precision[i] for i in supported]) if supported else 0),
        "macro_recall": _round(np.mean([recall[i] for i in supported]) if supported else 0),
        "per_label": per_label,
        "confusion_matrix": matrix,
        "matrix_kind": matrix_kind,
        "weakest_labels": weakest,
    }


def tune_thresholds(
    classifier: TextClassifier, texts: list[str], label_lists: list[list[str]]
) -> dict[str, float]:
    """Per-label thresholds maximising each label's F1 on the given (validation) texts."""
    scores = classifier.predict_scores(texts)
    truth = MultiLabelBinarizer(classes=classifier.labels).fit_transform(label_lists)
    thresholds: dict[str, float] = {}
    for j, label in enumerate(classifier.labels):
        best, best_f1 = 0.5, -1.0
        for cut in THRESHOLD_GRID:
            pred = scores[:, j] >= cut
            tp = int((pred & (truth[:, j] == 1)).sum())
            denom = int(pred.sum()) + int(truth[:, j].sum())
            f1 = 2 * tp / denom if denom else 0.0
            # Ties go to the cut nearest 0.5, the uninformed default.
            if f1 > best_f1 + 1e-9 or (
                abs(f1 - best_f1) <= 1e-9 and abs(cut - 0.5) < abs(best - 0.5)
            ):
                best, best_f1 = cut, f1
        thresholds[label] = float(best)
    return thresholds


def measure_latency(
    classifier: TextClassifier,
    texts: list[str],
    *,
    single_docs: int = 100,
    batch_docs: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """Single-document latency p50/p99 (ms) and batch throughput (docs/s) on sample texts."""
    if not texts:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "docs_per_s": 0.0}
    rng = random.Random(seed)
    singles = [rng.choice(texts) for _ in range(single_docs)]
    classifier.predict_scores(singles[:1])  # warm caches before timing
    timings = []
    for text in singles:
        start = time.perf_counter()
        classifier.predict_scores([text])
        timings.append((time.perf_counter() - start) * 1000)
    batch = [texts[i % len(texts)] for i in range(batch_docs)]
    start = time.perf_counter()
    classifier.predict_scores(batch)
    elapsed = max(time.perf_counter() - start, 1e-9)
    return {
        "p50_ms": _round(np.percentile(timings, 50)),
        "p99_ms": _round(np.percentile(timings, 99)),
        "docs_per_s": round(len(batch) / elapsed, 1),
    }


def _short(label: str) -> str:
    return label.rsplit(".", 1)[-1]


def confusion_svg(metrics: dict[str, Any], *, title: str = "") -> str:
    """A server-rendered heatmap: rows are true labels, columns predicted; colour by row share."""
    labels = metrics.get("labels") or []
    matrix = metrics.get("confusion_matrix") or []
    n = len(labels)
    if not n or len(matrix) != n:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="40" role="img">'
            '<text x="10" y="25" font-family="sans-serif" font-size="14">No confusion matrix</text></svg>'
        )
    cell = max(28, min(64, 480 // n))
    left, top = 130, 40 + (16 if title else 0)
    width, height = left + n * cell + 20, top + n * cell + 90
    width = max(width, int(len(title) * 7.5) + 20)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="12">',
        f"<title>{escape(metrics.get('matrix_kind', 'confusion'))} matrix {escape(title)}</title>",
    ]
    if title:
        out.append(
            f'<text x="{left}" y="18" font-size="14" font-weight="bold">{escape(title)}</text>'
        )
    out.append(
        f'<text x="{left + n * cell / 2}" y="{top - 22}" text-anchor="middle" font-weight="bold">'
        "predicted</text>"
    )
    out.append(
        f'<text x="14" y="{top + n * cell / 2}" font-weight="bold" '
        f'transform="rotate(-90 14 {top + n * cell / 2})" text-anchor="middle">true</text>'
    )
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        out.append(
            f'<text x="{left - 6}" y="{top + i * cell + cell / 2 + 4}" text-anchor="end">'
            f"{escape(_short(labels[i]))}</text>"
        )
        for j, count in enumerate(row):
            share = count / total
            # White to a dark blue; text flips to white on dark cells to stay readable.
            shade = int(255 - share * 200)
            fill = f"rgb({shade},{int(255 - share * 140)},255)"
            colour = "#fff" if share > 0.55 else "#123"
            x, y = left + j * cell, top + i * cell
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" '
                f'stroke="#ccd"><title>true {escape(labels[i])}, predicted {escape(labels[j])}: '
                f"{count}</title></rect>"
            )
            out.append(
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                f'fill="{colour}">{count}</text>'
            )
    for j, label in enumerate(labels):
        x, y = left + j * cell + cell / 2, top + n * cell + 8
        out.append(
            f'<text x="{x}" y="{y}" transform="rotate(40 {x} {y})" text-anchor="start">'
            f"{escape(_short(label))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def delta(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return None
    return _round(b - a)
