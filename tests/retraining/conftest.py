"""Retraining fixtures: a tenant need whose champion learned an old vocabulary for `news.tech`;
accepted cases and a fresh set speak the new one, so a retrain has something to learn."""

from __future__ import annotations

import random

import pytest

from registry.datasets import SampleRow
from registry.models import SampleSource, TrainingSample
from registry.services.datasets import current_revision, samples_import
from tenants.models import NeedStatus
from tests.factories import NeedFactory
from tests.registry.conftest import FILLER, TOPIC_WORDS, synthetic_rows

#: What tech news talks about after the shift: new words, and words the champion learned as business.
NEW_TECH = "robot cloud quantum startup algorithm drone satellite battery market investors"


def shifted_rows(*, per_label: int, seed: int, start: int, tech_share: float = 1.0):
    """Rows in the world after the shift: tech texts use NEW_TECH words; others as before."""
    rng = random.Random(seed)
    words = {**TOPIC_WORDS, "news.tech": NEW_TECH}
    rows, number = [], start
    for label, vocabulary in words.items():
        topic = vocabulary.split()
        count = round(per_label * (tech_share if label == "news.tech" else 1 - tech_share))
        for _ in range(count):
            number += 1
            text = " ".join(
                rng.choice(topic) if rng.random() < 0.6 else rng.choice(FILLER) for _ in range(14)
            )
            rows.append(SampleRow(row=number, text=f"{text} ~{number}", labels=[label]))
    return rows


def add_samples(need, rows, *, source=SampleSource.CASE, held_out=False) -> list[int]:
    revision = current_revision(need.label_set)
    samples_import(revision=revision, tenant=need.tenant, rows=rows, source=source)
    from registry.datasets import text_hash

    hashes = [text_hash(row.text) for row in rows]
    samples = TrainingSample.objects.owned_by(need.tenant).filter(
        revision=revision, text_hash__in=hashes
    )
    if held_out:
        samples.update(held_out=True)
    return list(samples.values_list("id", flat=True))


@pytest.fixture
def topics(db):
    from tests.factories import make_label_set

    return make_label_set(slug="news-topics", keys_=list(TOPIC_WORDS))


@pytest.fixture
def need_with_champion(tenant_a, topics, django_capture_on_commit_callbacks):
    """Tenant A's live need, served by its own model v1 (the champion) at `production`."""
    from registry.services.training import training_run_create

    samples_import(
        revision=current_revision(topics), tenant=None, rows=synthetic_rows(per_label=60)
    )
    need = NeedFactory(tenant=tenant_a, slug="topics", label_set=topics, status=NeedStatus.LIVE)
    with django_capture_on_commit_callbacks(execute=True):
        run = training_run_create(need=need, promote_to="production")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    need.refresh_from_db()
    return need


@pytest.fixture
def shifted_need(need_with_champion):
    """The need after the shift: 30 accepted tech cases and a fresh set of 45 held-out samples."""
    need = need_with_champion
    add_samples(need, shifted_rows(per_label=30, seed=1, start=1000), source=SampleSource.CASE)
    add_samples(
        need,
        shifted_rows(per_label=15, seed=2, start=2000, tech_share=0.0)
        + shifted_rows(per_label=15, seed=3, start=3000),
        source=SampleSource.REVIEW,
        held_out=True,
    )
    return need


@pytest.fixture
def run_retrain(django_capture_on_commit_callbacks):
    """Start a retrain and run its task (eager Celery) when the start commits."""
    from retraining.services import retrain_start_or_get

    def _run(need, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            retrain, _ = retrain_start_or_get(need=need, **kwargs)
        retrain.refresh_from_db()
        return retrain

    return _run
