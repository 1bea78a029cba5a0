"""The timeline is derived from the facts at read time, links every entry, and stays a few
queries however long the history."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from monitoring.models import Alert
from records import timeline
from registry.models import AliasEvent, DatasetSnapshot, TrainingRun
from tenants.models import NeedStatusChange
from tests.monitoring.factories import make_monitored_need

pytestmark = pytest.mark.django_db


def test_timeline_has_an_entry_from_every_source(live_need, tenant_a):
    entries = timeline.build(need=live_need, tenant=tenant_a)
    kinds = {e.kind for e in entries}
    assert {
        "need_requested",
        "need_approved",
        "need_live",
        "label_set_revision",
        "data_import",
        "snapshot",
        "training_run",
        "promotion",
        "alert",
    } <= kinds
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    promotion = [e for e in entries if e.kind == "promotion"][-1]
    assert promotion.title == "production: v1 → v2"
    assert promotion.actor == "alice" and promotion.detail == "better on sport"
    assert promotion.metrics["macro_f1_delta"] == pytest.approx(0.06)
    snapshot = next(e for e in entries if e.kind == "snapshot")
    assert snapshot.metrics["size"] == 100
    assert snapshot.metrics["distribution"] == {"news.sport": 60, "news.tech": 40}
    run = next(e for e in entries if e.kind == "training_run")
    assert "→ v2" in run.title and "macro-f1 0.860" in run.detail
    imported = next(e for e in entries if e.kind == "data_import")
    assert imported.metrics == {"samples": 12} and imported.detail == "desk-export.csv"


def test_every_timeline_link_opens_for_the_owner(client, live_need, tenant_a, alice):
    client.force_login(alice)
    for entry in timeline.build(need=live_need, tenant=tenant_a):
        path = entry.url.split("#")[0]
        assert client.get(path).status_code == 200, (entry.kind, entry.url)


def test_a_deleted_fact_leaves_no_entry(live_need, tenant_a):
    alert = Alert.objects.for_tenant(tenant_a).get(need=live_need)
    assert any(e.object_id == alert.pk for e in timeline.build(need=live_need, tenant=tenant_a))
    alert.delete()
    assert not any(e.kind == "alert" for e in timeline.build(need=live_need, tenant=tenant_a))


def test_another_tenants_rows_on_a_shared_model_stay_out(live_need, tenant_a, tenant_b):
    """tenant B's own run and snapshot next to A's data never show in A's timeline."""
    other_need, other_version = make_monitored_need(
        tenant=tenant_b, slug="b-topics", baseline={"news.sport": 5}
    )
    TrainingRun.objects.create(
        tenant=tenant_b,
        registered_model=other_need.model,
        snapshot=other_version.snapshot,
        algorithm="tfidf-logreg",
        need=other_need,
    )
    entries = timeline.build(need=live_need, tenant=tenant_a)
    assert other_version.snapshot_id not in {
        e.object_id for e in entries if e.object_type == "registry.datasetsnapshot"
    }
    assert all(
        e.object_type != "registry.trainingrun" or e.object_id != other_need.pk for e in entries
    )
    with pytest.raises(ValueError):
        timeline.build(need=live_need, tenant=tenant_b)


def test_a_thousand_events_take_a_few_queries(
    live_need, tenant_a, alice, django_assert_max_num_queries
):
    today = date.today()
    Alert.objects.bulk_create(
        Alert(
            tenant=tenant_a,
            need=live_need,
            kind="label_share",
            label=f"news.topic{i}",
            severity="warning",
            first_seen=today,
            last_seen=today,
            message=f"share moved {i}",
            resolved_at=timezone.now() if i % 2 else None,
        )
        for i in range(400)
    )
    NeedStatusChange.objects.bulk_create(
        NeedStatusChange(need=live_need, from_status="live", to_status="live", actor=alice)
        for _ in range(200)
    )
    snapshot = DatasetSnapshot.objects.for_tenant(tenant_a).first()
    TrainingRun.objects.bulk_create(
        TrainingRun(
            tenant=tenant_a,
            registered_model=live_need.model,
            snapshot=snapshot,
            algorithm="tfidf-logreg",
            need=live_need,
            created_by=alice,
        )
        for _ in range(200)
    )
    version = live_need.model.versions.first()
    AliasEvent.objects.bulk_create(
        AliasEvent(
            registered_model=live_need.model,
            alias="candidate",
            to_version=version,
            from_version=version,
            actor=alice,
        )
        for _ in range(200)
    )
    # One query per source at most, whatever the number of events.
    with django_assert_max_num_queries(len(timeline.SOURCES)):
        entries = timeline.build(need=live_need, tenant=tenant_a)
    assert len(entries) > 1_000


def test_sources_are_pluggable(live_need, tenant_a, monkeypatch):
    monkeypatch.setattr(timeline, "SOURCES", dict(timeline.SOURCES))

    @timeline.timeline_source("review")
    def review_rounds(context):
        return [
            timeline.Entry(
                at=timezone.now(),
                kind="review_round",
                title="Review round 1",
                url="/",
                object_type="review.round",
                object_id=1,
            )
        ]

    kinds = [e.kind for e in timeline.build(need=live_need, tenant=tenant_a)]
    assert kinds[-1] == "review_round"
    only = timeline.build(need=live_need, tenant=tenant_a, only=["review"])
    assert [e.kind for e in only] == ["review_round"]
