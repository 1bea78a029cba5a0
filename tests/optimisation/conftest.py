"""Optimisation fixtures: a tenant's need on a small synthetic corpus whose answer is known."""

from __future__ import annotations

import random

import pytest

from registry.datasets import SampleRow
from registry.services.datasets import current_revision, samples_import, snapshot_create
from tenants.models import NeedStatus
from tests.factories import NeedFactory, make_label_set

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
    "people",
    "city",
]


def order_rows(per_label: int = 40, seed: int = 0) -> list[SampleRow]:
    """Both labels use exactly the same words; only their ORDER tells them apart ("alpha beta"
    vs "beta alpha"). A word-unigram model cannot beat chance; word bigrams or character
    n-grams (which span the space) separate them perfectly: a data set whose answer is known."""
    rng = random.Random(seed)
    rows, number = [], 0
    for label, pair in (("order.forward", "alpha beta"), ("order.backward", "beta alpha")):
        for _ in range(per_label):
            number += 1
            words = [rng.choice(FILLER) for _ in range(10)]
            words.insert(rng.randrange(len(words) + 1), pair)
            rows.append(SampleRow(row=number, text=" ".join(words), labels=[label]))
    return rows


@pytest.fixture
def fast_measurement(settings):
    settings.OPTIMISATION_WARMUP = 3
    settings.OPTIMISATION_REPETITIONS = 20


@pytest.fixture
def order_set(db):
    return make_label_set(slug="word-order", keys_=["order.forward", "order.backward"])


@pytest.fixture
def order_snapshot(order_set, tenant_a):
    revision = current_revision(order_set)
    samples_import(revision=revision, tenant=tenant_a, rows=order_rows())
    return snapshot_create(revision=revision, tenant=tenant_a, seed=7)


@pytest.fixture
def need(order_snapshot, tenant_a, fast_measurement):
    return NeedFactory(
        tenant=tenant_a,
        slug="order",
        label_set=order_snapshot.revision.label_set,
        status=NeedStatus.APPROVED,
        latency_budget_ms=1000.0,
        size_budget_kb=100_000,
    )


@pytest.fixture
def need_b(tenant_b, order_set):
    return NeedFactory(tenant=tenant_b, slug="order-b", label_set=order_set)
