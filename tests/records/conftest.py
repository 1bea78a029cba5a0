"""Records fixtures: a live need with facts in every timeline source (alias moves with metrics,
a training run, an import, a snapshot, status changes, an alert), built directly as rows."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from django.utils import timezone

from monitoring.models import Alert
from registry.models import (
    AliasEvent,
    ModelAlias,
    ModelVersion,
    RunStatus,
    TrainingRun,
    TrainingSample,
)
from tenants.models import NeedStatusChange
from tests.monitoring.factories import make_monitored_need


def metrics(macro_f1: float, accuracy: float) -> dict:
    return {"macro_f1": macro_f1, "accuracy": accuracy, "micro_f1": accuracy, "n_test": 40}


def add_version(
    need, number: int, *, f1: float, acc: float, promote_by=None, reason=""
) -> ModelVersion:
    first = ModelVersion.objects.for_tenant(need.tenant).get(registered_model=need.model, version=1)
    version = ModelVersion.objects.create(
        registered_model=need.model,
        version=number,
        artifact_sha256=hashlib.sha256(f"{need.pk}-{number}".encode()).hexdigest(),
        artifact_size=1,
        python_version="3.11",
        sklearn_version="1.5",
        algorithm="tfidf-logreg",
        snapshot=first.snapshot,
        revision=first.revision,
        metrics=metrics(f1, acc),
    )
    if promote_by is not None:
        alias = ModelAlias.objects.get(registered_model=need.model, name="production")
        AliasEvent.objects.create(
            registered_model=need.model,
            alias="production",
            from_version=alias.version,
            to_version=version,
            actor=promote_by,
            reason=reason,
        )
        alias.version = version
        alias.save()
    return version


@pytest.fixture
def live_need(tenant_a, alice):
    """tenant A's live need: v1 promoted at launch, a run that made v2, v2 promoted, an alert."""
    need, v1 = make_monitored_need(
        tenant=tenant_a, slug="desk-topics", baseline={"news.sport": 60, "news.tech": 40}
    )
    need.created_by = alice
    need.goal = "Route articles to desks"
    need.save()
    v1.metrics = metrics(0.80, 0.82)
    v1.save()
    snapshot = v1.snapshot
    snapshot.train_sample_ids = list(range(1, 81))
    snapshot.test_sample_ids = list(range(81, 101))
    snapshot.created_by = alice
    snapshot.save()
    revision = v1.revision
    TrainingSample.objects.bulk_create(
        TrainingSample(
            tenant=tenant_a,
            revision=revision,
            text=f"text {i}",
            text_hash=f"h{i}",
            source_ref="desk-export.csv",
        )
        for i in range(12)
    )
    NeedStatusChange.objects.create(
        need=need, from_status="requested", to_status="approved", actor=alice
    )
    NeedStatusChange.objects.create(
        need=need, from_status="approved", to_status="live", actor=alice
    )
    AliasEvent.objects.create(
        registered_model=need.model, alias="production", to_version=v1, actor=alice, reason="launch"
    )
    run = TrainingRun.objects.create(
        tenant=tenant_a,
        registered_model=need.model,
        snapshot=snapshot,
        algorithm="tfidf-logreg",
        need=need,
        status=RunStatus.SUCCEEDED,
        created_by=alice,
        finished_at=timezone.now(),
    )
    v2 = add_version(need, 2, f1=0.86, acc=0.88, promote_by=alice, reason="better on sport")
    v2.training_run = run
    v2.save()
    Alert.objects.create(
        tenant=tenant_a,
        need=need,
        kind="drift",
        severity="warning",
        first_seen=date.today(),
        last_seen=date.today(),
        message="Label distribution drifted (PSI 0.31)",
    )
    need.refresh_from_db()
    return need
