"""Cases: creation and deduplication, collection from feedback and low confidence, triage signals
and the suggested cause, acceptance into training samples (held-out share, conflicts), gaps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import DomainError
from monitoring.models import Alert, AlertKind, FeedbackEvent, Severity
from registry.models import SampleSource, TrainingSample
from review import selectors, services
from review.models import Case, CaseSource, CaseStatus, Cause
from tests.review.factories import add_training_samples, live_need, log_stream, sha, texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def topics(tenant_a):
    return live_need(tenant_a)


def new_case(need, text="a story about markets and money", **data):
    return services.case_create(
        need=need, data={"text": text, **data}, source=CaseSource.API, reported_by_key="k"
    )


def accepted_samples(tenant):
    return TrainingSample.objects.for_tenant(tenant).filter(source__in=["case", "review"])


def test_duplicate_text_is_refused_with_a_clear_code(topics):
    need, _ = topics
    first = new_case(need, suggested_labels=["t.a"])
    with pytest.raises(DomainError) as exc:
        new_case(need)
    assert exc.value.code == "duplicate_case" and exc.value.status_code == 409
    assert exc.value.fields == {"0": {"existing_case": first.pk}}


def test_bulk_is_all_or_nothing(topics):
    need, _ = topics
    with pytest.raises(DomainError) as exc:
        services.cases_create(
            need=need,
            source=CaseSource.API,
            items=[{"text": "one text"}, {"text": "two text"}, {"text": "one text"}],
        )
    assert exc.value.code == "duplicate_case" and "2" in exc.value.fields
    with pytest.raises(DomainError) as exc:
        services.cases_create(
            need=need,
            source=CaseSource.API,
            items=[{"text": "fine"}, {"text": "bad", "suggested_labels": ["x.unknown"]}],
        )
    assert exc.value.code == "invalid_cases"
    assert exc.value.fields["1"]["code"] == "labels_outside_label_set"
    assert not Case.objects.for_tenant(need.tenant).exists()
    created = services.cases_create(
        need=need, source=CaseSource.API, items=[{"text": "one"}, {"text": "two"}]
    )
    assert len(created) == 2


def test_triage_then_accept_makes_a_training_sample(topics):
    need, _ = topics
    case = new_case(
        need, suggested_labels=["t.b"], predicted_labels=["t.a"], scores={"t.a": 0.61, "t.b": 0.3}
    )
    with pytest.raises(DomainError) as exc:
        services.case_accept(case=case)
    assert exc.value.code == "case_not_triaged"
    case = services.case_triage(case=case, cause=Cause.MODEL_ERROR, user=None)
    assert case.status == CaseStatus.TRIAGED and case.signals["confidence"] == 0.61
    case = services.case_accept(case=case)
    sample = TrainingSample.objects.for_tenant(need.tenant).get(pk=case.sample_id)
    assert case.status == CaseStatus.ACCEPTED
    assert sample.source == SampleSource.CASE and sample.text_hash == sha(case.text)
    assert [link.label.key for link in sample.label_links.all()] == ["t.b"]
    assert sample.revision == need.label_set.current_revision
    # Accepting twice (a double click, a redelivered call) changes nothing.
    assert services.case_accept(case=case).sample_id == sample.pk
    assert accepted_samples(need.tenant).count() == 1


def test_review_cases_become_review_samples(topics):
    need, version = topics
    log_stream(need, version, {"t.a": texts("a", 2)})
    review_round = services.round_start(need=need, sample_size=1)
    item = review_round.items.get()
    services.verdict_record(item=item, decision="correct", labels=["t.c"], api_key_prefix="k")
    case = Case.objects.for_tenant(need.tenant).get()
    case = services.case_accept(
        case=services.case_triage(case=case, cause=Cause.DATA_CHANGE, user=None)
    )
    assert case.sample.source == SampleSource.REVIEW


def test_held_out_share_is_deterministic_by_text_hash(topics):
    need, _ = topics
    services.config_update(need=need, held_out_share=0.5)
    outcomes = {}
    for i in range(40):
        case = new_case(need, text=f"held out candidate {i}", suggested_labels=["t.a"])
        case = services.case_accept(
            case=services.case_triage(case=case, cause=Cause.MODEL_ERROR, user=None)
        )
        outcomes[case.text_hash] = case.held_out
        assert case.sample.held_out == case.held_out
    expected = {h: int(h[:8], 16) / 2**32 < 0.5 for h in outcomes}
    assert outcomes == expected
    assert 0 < sum(outcomes.values()) < 40


def test_conflicting_labels_are_flagged_not_overwritten(topics):
    need, version = topics
    text = "the same text already in training"
    add_training_samples(version, [(text, ["t.a"])])
    case = new_case(need, text=text, suggested_labels=["t.b"])
    case = services.case_accept(
        case=services.case_triage(case=case, cause=Cause.LABEL_PROBLEM, user=None)
    )
    assert case.status == CaseStatus.TRIAGED and case.conflict_labels == ["t.a"]
    sample = TrainingSample.objects.for_tenant(need.tenant).get(text_hash=sha(text))
    assert [link.label.key for link in sample.label_links.all()] == ["t.a"]


def test_rejecting_and_the_end_states(topics):
    need, _ = topics
    case = services.case_reject(case=new_case(need), reason="spam", user=None)
    assert case.status == CaseStatus.REJECTED
    with pytest.raises(DomainError) as exc:
        services.case_triage(case=case, cause=Cause.BAD_INPUT, user=None)
    assert exc.value.code == "case_decided"


def test_signals_and_suggested_cause(topics):
    need, version = topics
    add_training_samples(
        version,
        [
            ("stocks rally as markets rise on earnings", ["t.a"]),
            ("football club wins the league title", ["t.b"]),
            ("new phone released with faster chip", ["t.c"]),
        ],
    )
    near = new_case(
        need,
        text="stocks rally as markets rise on earnings today",
        suggested_labels=["t.a"],
        predicted_labels=["t.b"],
        scores={"t.b": 0.8},
    )
    signals = selectors.case_signals(case=near)
    assert signals["similarity"] > 0.8 and signals["nearest_labels"] == ["t.a"]
    assert signals["oov_share"] == pytest.approx(1 / 8)
    assert signals["suggested_cause"] == "model_error"
    gibberish = new_case(need, text="zxq vbnm qwpl kkjh")
    assert selectors.case_signals(case=gibberish)["suggested_cause"] == "bad_input"
    unseen = new_case(
        need,
        text="markets and football fans watch volcano eruption evacuation",
        suggested_labels=["t.c"],
    )
    assert selectors.case_signals(case=unseen)["suggested_cause"] == "data_change"


def test_open_drift_alert_on_the_label_is_a_signal(topics):
    need, version = topics
    add_training_samples(version, [("stocks rally as markets rise", ["t.a"])])
    today = timezone.now().date()
    Alert.objects.create(
        tenant_id=need.tenant_id,
        need=need,
        kind=AlertKind.LABEL_SHARE,
        label="t.a",
        severity=Severity.WARNING,
        first_seen=today,
        last_seen=today,
        message="share",
    )
    case = new_case(need, text="stocks rally as markets rise again", suggested_labels=["t.a"])
    signals = selectors.case_signals(case=case)
    assert signals["drift_alerts"][0]["label"] == "t.a"
    assert signals["suggested_cause"] == "data_change"


def test_collect_cases_from_wrong_tag_feedback_and_low_confidence(topics):
    need, version = topics
    rows = log_stream(need, version, {"t.a": ["feedback says this is wrong"]})
    log_stream(need, version, {"t.b": texts("low", 30)}, score=0.2, prefix="low")
    now = timezone.now()
    FeedbackEvent.objects.create(
        tenant_id=need.tenant_id,
        need=need,
        event_id="e1",
        item_id=rows[0].item_ref,
        label="t.a",
        type="wrong_tag",
        at=now,
        day=now.date(),
    )
    FeedbackEvent.objects.create(
        tenant_id=need.tenant_id,
        need=need,
        event_id="e2",
        item_id=rows[0].item_ref,
        label="t.a",
        type="click",
        at=now,
        day=now.date(),
    )
    services.config_update(need=need, low_confidence_case_share=0.5)
    counts = services.cases_collect(need=need)
    expected_low = sum(int(sha(t)[:8], 16) / 2**32 < 0.5 for t in texts("low", 30))
    assert counts == {"feedback": 1, "low_confidence": expected_low}
    feedback = Case.objects.for_tenant(need.tenant).get(source=CaseSource.FEEDBACK)
    assert feedback.predicted_labels == ["t.a"] and feedback.text == "feedback says this is wrong"
    assert services.cases_collect(need=need) == {"feedback": 0, "low_confidence": 0}


def test_label_gaps(topics):
    need, version = topics
    add_training_samples(version, [(f"sample a {i}", ["t.a"]) for i in range(25)])
    new_case(need, text="wrong one", predicted_labels=["t.b"], suggested_labels=["t.c"])
    case = new_case(need, text="accepted one", suggested_labels=["t.c"])
    services.case_accept(case=services.case_triage(case=case, cause=Cause.MODEL_ERROR, user=None))
    Case.objects.for_tenant(need.tenant).filter(pk=case.pk).update(
        decided_at=timezone.now() + timedelta(seconds=1)
    )
    gaps = {g["label"]: g for g in selectors.label_gaps(tenant=need.tenant, need=need)}
    assert gaps["t.a"]["samples"] == 25 and not gaps["t.a"]["few_samples"]
    assert gaps["t.c"]["recent_errors"] == 2 and gaps["t.c"]["gained_since_training"] == 1
    assert gaps["t.b"]["recent_errors"] == 1 and gaps["t.b"]["few_samples"]
