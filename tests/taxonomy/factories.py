"""Taxonomy test data: a small bilingual news tree, shared label sets and minimal live models."""

from __future__ import annotations

import hashlib

from registry.models import (
    AliasName,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    TrainingSample,
    TrainingSampleLabel,
)
from taxonomy import services
from taxonomy.models import Label, LabelSet

#: key -> (English name, Chinese name, aliases)
NEWS_TREE = {
    "news": ("News", "新闻", []),
    "news.business": ("Business", "商业", ["Economy", "finance", "财经"]),
    "news.entertainment": ("Entertainment", "娱乐", ["showbiz"]),
    "news.politics": ("Politics", "政治", []),
    "news.sport": ("Sport", "体育", ["Sports", "运动"]),
    "news.sport.football": ("Football", "足球", ["soccer"]),
    "news.tech": ("Technology", "科技", ["Tech", "IT"]),
    "sentiment": ("Sentiment", "情感", []),
    "sentiment.positive": ("Positive", "正面", []),
    "sentiment.neutral": ("Neutral", "中性", []),
    "sentiment.negative": ("Negative", "负面", []),
}
NEWS_TOPICS = ["news.business", "news.entertainment", "news.politics", "news.sport", "news.tech"]
SENTIMENT = ["sentiment.positive", "sentiment.neutral", "sentiment.negative"]


def build_news_tree(actor=None) -> dict[str, Label]:
    labels: dict[str, Label] = {}
    for key, (en, zh, aliases) in NEWS_TREE.items():
        parent = labels.get(key.rsplit(".", 1)[0]) if "." in key else None
        labels[key] = services.label_create(
            key=key, name_en=en, name_zh=zh, aliases=aliases, parent=parent, actor=actor
        )
    return labels


def shared_label_sets() -> tuple[LabelSet, LabelSet]:
    topics = services.label_set_create(
        slug="news-topics", name="News topics", label_keys=NEWS_TOPICS
    )
    sentiment = services.label_set_create(
        slug="news-sentiment", name="News sentiment", label_keys=SENTIMENT
    )
    return topics, sentiment


def make_live_model(
    *, label_set: LabelSet, tenant=None, name: str | None = None
) -> RegisteredModel:
    """A RegisteredModel whose `production` alias points at a (byte-less) version."""
    revision = label_set.current_revision
    name = name or f"{label_set.slug}/tfidf-logreg"
    model = RegisteredModel.objects.create(
        tenant=tenant, name=name, label_set=label_set, algorithm="tfidf-logreg"
    )
    snapshot = DatasetSnapshot.objects.create(
        tenant=tenant,
        revision=revision,
        content_hash=hashlib.sha256(name.encode()).hexdigest(),
    )
    version = ModelVersion.objects.create(
        registered_model=model,
        version=1,
        artifact_sha256="0" * 64,
        artifact_size=1,
        python_version="3.11",
        sklearn_version="1.5",
        algorithm="tfidf-logreg",
        snapshot=snapshot,
        revision=revision,
    )
    ModelAlias.objects.create(registered_model=model, name=AliasName.PRODUCTION, version=version)
    return model


def make_training_sample(
    *, label_set: LabelSet, labels: list[Label], text: str = "hello"
) -> TrainingSample:
    sample = TrainingSample.objects.create(
        revision=label_set.current_revision,
        text=text,
        text_hash=hashlib.sha256(text.encode()).hexdigest(),
    )
    for label in labels:
        TrainingSampleLabel.objects.create(sample=sample, label=label)
    return sample
