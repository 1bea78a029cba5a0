"""Registry fixtures: small synthetic corpora that train in well under a second."""

from __future__ import annotations

import random

import pytest

from registry.datasets import SampleRow
from registry.services.datasets import current_revision, samples_import, snapshot_create
from tests.factories import make_label_set

TOPIC_WORDS = {
    "news.business": "market shares profit bank economy investors stock trade",
    "news.sport": "match goal team player season coach league victory",
    "news.tech": "software computer internet phone chip digital network device",
}
FILLER = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "on",
    "with",
    "for",
    "today",
    "report",
    "said",
    "new",
    "year",
]


def synthetic_rows(per_label: int = 30, seed: int = 0, words=None) -> list[SampleRow]:
    """Texts made of a label's topic words plus shared filler: learnable but not trivial."""
    rng = random.Random(seed)
    words = words or TOPIC_WORDS
    rows, number = [], 0
    for label, vocabulary in words.items():
        topic = vocabulary.split()
        for _ in range(per_label):
            number += 1
            text = " ".join(
                rng.choice(topic) if rng.random() < 0.5 else rng.choice(FILLER) for _ in range(14)
            )
            rows.append(SampleRow(row=number, text=f"{text} #{number}", labels=[label]))
    return rows


@pytest.fixture
def topics(db):
    return make_label_set(slug="news-topics", keys_=list(TOPIC_WORDS))


@pytest.fixture
def topic_samples(topics):
    samples_import(revision=current_revision(topics), tenant=None, rows=synthetic_rows())
    return topics


@pytest.fixture
def topic_snapshot(topic_samples):
    return snapshot_create(revision=current_revision(topic_samples), tenant=None)


@pytest.fixture
def trained_version(topic_snapshot, django_capture_on_commit_callbacks):
    """v1 of the shared news-topics/tfidf-logreg model, trained through the training task."""
    from registry.services.training import training_run_create

    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_create(
            label_set=topic_snapshot.revision.label_set, snapshot=topic_snapshot
        )
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run.model_version


@pytest.fixture
def train_version(django_capture_on_commit_callbacks):
    """Train another version of a model line: train_version(snapshot, algorithm=..., tenant=...)."""
    from registry.services.training import training_run_create

    def _train(snapshot, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            run = training_run_create(
                label_set=snapshot.revision.label_set, snapshot=snapshot, **kwargs
            )
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        return run.model_version

    return _train
