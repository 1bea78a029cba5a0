"""Model versions for serving tests, built directly (the registry's services are written elsewhere).

`make_served_need()` trains a tiny classifier on a synthetic corpus (well under a second), stores
it in the artifact store and creates RegisteredModel / DatasetSnapshot / ModelVersion /
ModelAlias rows pointing a need at it.
"""

from __future__ import annotations

import hashlib
import platform
import random

from django.utils import timezone

from registry import artifacts, ml
from registry.models import DatasetSnapshot, ModelAlias, ModelVersion, RegisteredModel
from taxonomy.models import LabelSet
from tests.factories import NeedFactory, make_label_set

TOPIC_WORDS = {
    "news.sport": "football match goal striker league coach stadium penalty tennis champion",
    "news.business": "shares market profit bank economy investors company growth inflation",
    "news.tech": "software computer internet phone chip startup broadband gadget robot",
}
TOPICS = list(TOPIC_WORDS)


def synthetic_corpus(n_per_label: int = 20, seed: int = 7) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for label, words in TOPIC_WORDS.items():
        vocab = words.split()
        for _ in range(n_per_label):
            texts.append(" ".join(rng.choice(vocab) for _ in range(12)) + " news today")
            labels.append([label])
    return texts, labels


def train_classifier(*, labels: list[str] | None = None, seed: int = 7, algorithm="tfidf-logreg"):
    labels = labels or TOPICS
    texts, label_lists = synthetic_corpus(seed=seed)
    keep = [(t, ls) for t, ls in zip(texts, label_lists, strict=True) if ls[0] in labels]
    return ml.train(
        texts=[t for t, _ in keep],
        label_lists=[ls for _, ls in keep],
        labels=labels,
        multilabel=False,
        algorithm=algorithm,
        params={"vectorizer": {"min_df": 1}},
    )


def label_set_for_topics(slug: str = "news-topics") -> LabelSet:
    existing = (
        LabelSet.objects.dangerously_unscoped().filter(slug=slug, tenant__isnull=True).first()
    )
    return existing or make_label_set(slug=slug, keys_=TOPICS)


def add_version(registered_model: RegisteredModel, classifier) -> ModelVersion:
    stored = artifacts.store(classifier)
    label_set = registered_model.label_set
    revision = label_set.revisions.order_by("-number").first()
    snapshot = DatasetSnapshot.objects.create(
        revision=revision,
        content_hash=hashlib.sha256(f"{stored.sha256}-{random.random()}".encode()).hexdigest(),
        label_distribution={},
    )
    number = (
        registered_model.versions.order_by("-version").values_list("version", flat=True).first()
        or 0
    ) + 1
    return ModelVersion.objects.create(
        registered_model=registered_model,
        version=number,
        artifact_sha256=stored.sha256,
        artifact_size=stored.size,
        python_version=platform.python_version(),
        sklearn_version=stored.sklearn_version,
        algorithm=classifier.algorithm,
        params=classifier.params,
        snapshot=snapshot,
        revision=revision,
    )


def set_alias(version: ModelVersion, name: str = "production") -> ModelAlias:
    """Point an alias at a version, exactly as the registry's alias_set service does."""
    alias, created = ModelAlias.objects.get_or_create(
        registered_model=version.registered_model,
        name=name,
        defaults={"version": version},
    )
    if not created:
        alias.version = version
        alias.updated_at = timezone.now()
        alias.save(update_fields=["version", "updated_at"])
    return alias


def make_model(name: str = "news-topics/tfidf-logreg", classifier=None) -> ModelVersion:
    label_set = label_set_for_topics()
    registered = (
        RegisteredModel.objects.dangerously_unscoped()
        .filter(name=name, tenant__isnull=True)
        .first()
    )
    if registered is None:
        registered = RegisteredModel.objects.create(
            name=name, label_set=label_set, algorithm="tfidf-logreg"
        )
    version = add_version(registered, classifier or train_classifier())
    set_alias(version)
    return version


def make_served_need(*, tenant, slug: str = "news", version: ModelVersion | None = None, **fields):
    version = version or make_model()
    fields.setdefault("status", "live")
    return NeedFactory(
        tenant=tenant,
        slug=slug,
        label_set=version.registered_model.label_set,
        model=version.registered_model,
        **fields,
    )
