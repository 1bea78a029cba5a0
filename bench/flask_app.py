"""The baseline: a minimal Flask app that loads the same artifact and answers the same request.

Run by bench/serving_bench.py under gunicorn (2 sync workers), exactly like the platform.
BENCH_ARTIFACT is the artifact file; no auth, no tenancy, no label mapping, no logging.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]  # registry.ml defines the pickled class

import joblib  # noqa: E402
import numpy as np  # noqa: E402
from flask import Flask, jsonify, request  # noqa: E402

MODEL = joblib.load(os.environ["BENCH_ARTIFACT"])["model"]
MODEL.predict_scores(["warm-up"])
LABELS = list(MODEL.labels)

app = Flask(__name__)


@app.post("/tag")
def tag():
    items = request.get_json()["items"]
    scores = MODEL.predict_scores([item["text"] for item in items])
    out = []
    for item, row in zip(items, scores, strict=True):
        order = np.argsort(-row)
        out.append(
            {
                "id": item["id"],
                "labels": [LABELS[order[0]]],
                "scores": {LABELS[j]: round(float(row[j]), 4) for j in order},
            }
        )
    return jsonify({"items": out})
