"""The demo's records are written from the demo's facts, and a second run changes nothing."""

from __future__ import annotations

import io

import pytest

from monitoring.models import Alert
from records import demo
from records.models import Section, SectionRevision
from tagging_platform.demo import STEPS
from tests.factories import MembershipFactory, UserFactory
from tests.monitoring.factories import make_monitored_need
from tests.records.conftest import metrics
from tests.taxonomy.factories import build_news_tree

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_need(db):
    from datetime import date

    from tests.factories import TenantFactory

    build_news_tree()
    tenant = TenantFactory(slug="tenant-a")
    alice = UserFactory(username="alice")
    MembershipFactory(user=alice, tenant=tenant, role="admin")
    need, version = make_monitored_need(
        tenant=tenant, slug="news-topics", baseline={"news.sport": 300, "news.tech": 100}
    )
    version.metrics = {
        **metrics(0.7712, 0.8),
        "per_label": {
            "news.sport": {"precision": 0.9, "recall": 0.95, "f1": 0.924, "support": 60},
            "news.tech": {"precision": 0.7, "recall": 0.55, "f1": 0.616, "support": 20},
        },
    }
    version.save()
    snapshot = version.snapshot
    snapshot.train_sample_ids = list(range(320))
    snapshot.test_sample_ids = list(range(80))
    snapshot.save()
    Alert.objects.create(
        tenant=tenant,
        need=need,
        kind="rare_class",
        label="news.tech",
        severity="critical",
        first_seen=date(2026, 11, 20),
        last_seen=date(2026, 11, 24),
        message="news.tech seen 3 times where 40 were expected",
    )
    return need, version


def test_demo_records_come_from_the_facts_and_are_idempotent(demo_need):
    need, version = demo_need
    out = io.StringIO()
    demo.load_records(out)
    assert "tenant-a/news-topics: record written from" in out.getvalue()
    assert "tenant-b/zh-sentiment not found" in out.getvalue()
    sections = {
        (s.kind, s.title): s
        for s in Section.objects.for_tenant(need.tenant).filter(record__need=need)
    }
    data = sections[("data", "")].body
    assert "400 samples, 320 for training and 80 held out" in data
    assert "| `news.sport` | 300 | 75.0% |" in data
    problem = sections[("problem", "Low F1 on news.tech")]
    assert problem.model_version_id == version.pk and problem.label.key == "news.tech"
    assert "F1 0.616" in problem.body
    alert_problem = next(s for (k, t), s in sections.items() if t.startswith("Monitoring alert"))
    assert alert_problem.status == "open" and "3 times where 40" in alert_problem.body
    lesson = sections[("lesson", "The weakest label was news.tech")]
    assert lesson.shareable and "macro-F1 0.771" in lesson.body
    retro = next(s for s in sections.values() if s.kind == "retrospective")
    assert retro.milestone == "launch" and "1 raised, 1 still open" in retro.body
    revisions = SectionRevision.objects.for_tenant(need.tenant).count()
    demo.load_records(io.StringIO())
    assert SectionRevision.objects.for_tenant(need.tenant).count() == revisions
    # A fact that changed (the alert resolved) becomes a new revision of what it changed.
    Alert.objects.for_tenant(need.tenant).update(status="resolved")
    demo.load_records(io.StringIO())
    alert_problem.refresh_from_db()
    assert alert_problem.status == "solved" and alert_problem.revision == 2


def test_records_step_runs_after_the_registry_step():
    names = [step.__module__ for _, step in STEPS]
    assert names.index("records.demo") > names.index("registry.demo")


def test_a_corpus_imported_one_file_per_sample_is_one_import_line_within_the_section_limit(
    demo_need,
):
    """`make run` failed on a fresh machine: BBC samples carry one source ref per file, and the
    data section listed each of 2,225 files, past the 50,000-character section limit."""
    import hashlib

    from registry.models import TrainingSample
    from registry.services.datasets import current_revision

    need, _ = demo_need
    revision = current_revision(need.label_set)
    TrainingSample.objects.bulk_create(
        TrainingSample(
            tenant=need.tenant,
            revision=revision,
            text=f"sample {n}",
            text_hash=hashlib.sha256(f"sample {n}".encode()).hexdigest(),
            source="import",
            source_ref=f"bbc/sport/{n:04d}.txt",
        )
        for n in range(3000)
    )

    demo.load_records(io.StringIO())

    data = Section.objects.for_tenant(need.tenant).get(record__need=need, kind="data").body
    assert len(data) < 2000
    assert f"- 3000 samples (import, revision {revision.number}), e.g. `bbc/sport/0000.txt`" in data
