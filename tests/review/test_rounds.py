"""Review rounds: stratified sampling with weights, the claim rules of the queue, verdicts, the
weighted result with Wilson intervals, closing, alerts, sign-off, and how rounds start."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import PeriodicTask
from scipy.stats import binomtest

from core.errors import DomainError
from monitoring.models import Alert, AlertKind, AlertStatus, Severity
from review import estimates, sampling, services
from review.models import (
    Case,
    CaseSource,
    Decision,
    ReviewItem,
    ReviewRound,
    ReviewVerdict,
    RoundStatus,
    SignOff,
    Trigger,
)
from serving.models import Channel
from tenants.models import Membership, Role
from tests.factories import MembershipFactory, UserFactory
from tests.review.factories import live_need, log_stream, texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def topics(tenant_a):
    need, version = live_need(tenant_a)
    log_stream(need, version, {"t.a": texts("a", 200), "t.b": texts("b", 50), "t.c": texts("c", 3)})
    return need, version


def reviewer(tenant, name, role=Role.REVIEWER):
    user = UserFactory(username=name)
    MembershipFactory(user=user, tenant=tenant, role=role)
    return user


def items_of(review_round):
    return list(ReviewItem.objects.for_tenant(review_round.tenant).filter(round=review_round))


# --- Sampling ---------------------------------------------------------------------------------
def test_allocation_oversamples_rare_labels_and_keeps_the_total():
    strata = [
        sampling.Stratum("a", 200, 200),
        sampling.Stratum("b", 50, 50),
        sampling.Stratum("c", 3, 3),
    ]
    alloc = sampling.allocate(strata, 30, min_per_label=5)
    assert sum(alloc.values()) == 30
    assert alloc["c"] == 3  # every rare item (proportional would give 0)
    assert alloc["b"] >= 5 and alloc["a"] > alloc["b"]


def test_round_is_stratified_and_weights_add_up_to_the_stream(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=30)
    items = items_of(review_round)
    assert review_round.status == RoundStatus.OPEN
    assert len(items) == 30 and review_round.population == 253
    by_stratum = {}
    for item in items:
        by_stratum.setdefault(item.stratum, []).append(item)
    assert len(by_stratum["t.c"]) == 3
    # Inverse inclusion probabilities: each stratum's weights sum to its size.
    for key, size in {"t.a": 200, "t.b": 50, "t.c": 3}.items():
        assert sum(i.weight for i in by_stratum[key]) == pytest.approx(size)
    assert len({i.text_hash for i in items}) == 30


def test_weighted_accuracy_is_unbiased_despite_oversampling(topics):
    """The model is always right on t.a and t.b, always wrong on rare t.c: the stream's accuracy
    is 250/253; an unweighted mean over the oversampled items would say 27/30."""
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=30)
    for item in items_of(review_round):
        if item.stratum == "t.c":
            services.verdict_record(
                item=item, decision=Decision.CORRECT, labels=["t.a"], api_key_prefix="tool"
            )
        else:
            services.verdict_record(item=item, decision=Decision.CONFIRM, api_key_prefix="tool")
    from review.selectors import round_result

    result = round_result(review_round=review_round)
    assert result["accuracy"]["estimate"] == pytest.approx(250 / 253, abs=1e-4)
    assert result["per_label_precision"]["t.c"]["estimate"] == 0.0
    assert result["accuracy"]["n_eff"] < 30  # unequal weights are worth fewer draws


def test_same_text_is_never_sampled_twice(tenant_a):
    need, version = live_need(tenant_a)
    same = "the very same article text"
    log_stream(need, version, {"t.a": [same]}, prefix="x")
    log_stream(need, version, {"t.a": [same]}, prefix="y")  # asked again under another id
    log_stream(need, version, {"t.b": texts("b", 4)})
    review_round = services.round_start(need=need, sample_size=50)
    hashes = [i.text_hash for i in items_of(review_round)]
    assert len(hashes) == len(set(hashes)) == 5


def test_round_reads_only_this_tenants_predictions(topics, tenant_b):
    need, _ = topics
    other, other_version = live_need(tenant_b, slug="topics")
    log_stream(
        other, other_version, {"t.a": ["bravo secret text one", "bravo secret two"]}, prefix="b"
    )
    review_round = services.round_start(need=need, sample_size=500)
    assert all("bravo" not in i.text for i in items_of(review_round))
    assert {i.tenant_id for i in items_of(review_round)} == {need.tenant_id}


def test_sync_predictions_without_stored_text_are_not_reviewable(tenant_a):
    need, version = live_need(tenant_a)
    log_stream(need, version, {"t.a": texts("a", 3)}, channel=Channel.SYNC, store_text=False)
    with pytest.raises(DomainError) as exc:
        services.round_start(need=need)
    assert exc.value.code == "no_predictions" and exc.value.status_code == 409
    assert not ReviewRound.objects.for_tenant(tenant_a).exists()


def test_sampling_twice_draws_nothing_more(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=20)
    assert services.round_sample(review_round=review_round) == 0
    assert len(items_of(review_round)) == 20


def test_pending_round_sampled_by_the_task_once(topics, django_capture_on_commit_callbacks):
    from workers.tasks.monitoring import review_round_sample

    need, _ = topics
    with django_capture_on_commit_callbacks(execute=True):
        review_round = services.round_start(need=need, sample_size=10, sample_now=False)
    review_round.refresh_from_db()
    assert review_round.status == RoundStatus.OPEN
    assert review_round_sample.apply(args=[review_round.pk]).get() == {"items": 0}
    assert len(items_of(review_round)) == 10


# --- The queue --------------------------------------------------------------------------------
def test_two_reviewers_never_get_the_same_item(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=10)
    ann, ben = reviewer(need.tenant, "ann"), reviewer(need.tenant, "ben")
    first = services.item_claim_next(review_round=review_round, reviewer=ann)
    second = services.item_claim_next(review_round=review_round, reviewer=ben)
    assert first.pk != second.pk
    # Resume: asking again gives the item already held.
    assert services.item_claim_next(review_round=review_round, reviewer=ann).pk == first.pk


def test_double_review_gives_an_item_to_two_reviewers_and_no_third(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=1, double_review_share=1.0)
    ann, ben, cy = (reviewer(need.tenant, n) for n in ("ann", "ben", "cy"))
    a = services.item_claim_next(review_round=review_round, reviewer=ann)
    b = services.item_claim_next(review_round=review_round, reviewer=ben)
    assert a.pk == b.pk and a.reviews_needed == 2
    assert services.item_claim_next(review_round=review_round, reviewer=cy) is None


def test_skip_hands_the_item_to_someone_else_but_not_back(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=1)
    ann, ben = reviewer(need.tenant, "ann"), reviewer(need.tenant, "ben")
    item = services.item_claim_next(review_round=review_round, reviewer=ann)
    assert services.item_claim_next(review_round=review_round, reviewer=ben) is None
    services.verdict_record(item=item, decision=Decision.SKIP, reviewer=ann)
    assert services.item_claim_next(review_round=review_round, reviewer=ann) is None
    assert services.item_claim_next(review_round=review_round, reviewer=ben).pk == item.pk


def test_verdict_with_labels_outside_the_label_set_writes_nothing(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=3)
    ann = reviewer(need.tenant, "ann")
    item = services.item_claim_next(review_round=review_round, reviewer=ann)
    with pytest.raises(DomainError) as exc:
        services.verdict_record(item=item, decision="correct", labels=["nope.x"], reviewer=ann)
    assert exc.value.code == "labels_outside_label_set"
    verdict = ReviewVerdict.objects.for_tenant(need.tenant).get(item=item)
    assert verdict.decision == ""  # still just the claim
    assert not Case.objects.for_tenant(need.tenant).exists()


def test_multiclass_correction_takes_one_label(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=3)
    item = items_of(review_round)[0]
    with pytest.raises(DomainError) as exc:
        services.verdict_record(
            item=item, decision="correct", labels=["t.a", "t.b"], api_key_prefix="k"
        )
    assert exc.value.code == "too_many_labels"


def test_corrections_and_unsure_answers_become_cases(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=3)
    first, second, third = items_of(review_round)
    wrong = next(k for k in ("t.a", "t.b", "t.c") if k not in first.predicted_labels)
    services.verdict_record(item=first, decision="correct", labels=[wrong], api_key_prefix="k")
    services.verdict_record(item=second, decision="unsure", api_key_prefix="k")
    services.verdict_record(item=third, decision="confirm", api_key_prefix="k")
    cases = {c.text_hash: c for c in Case.objects.for_tenant(need.tenant)}
    assert set(cases) == {first.text_hash, second.text_hash}
    assert cases[first.text_hash].source == CaseSource.REVIEW_CORRECTION
    assert cases[first.text_hash].suggested_labels == [wrong]
    assert cases[second.text_hash].source == CaseSource.REVIEW_UNSURE


def test_verdict_on_a_closed_round_is_refused(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=2)
    services.round_close(review_round=review_round)
    with pytest.raises(DomainError) as exc:
        services.verdict_record(
            item=items_of(review_round)[0], decision="confirm", api_key_prefix="k"
        )
    assert exc.value.code == "round_not_open"


# --- Result -----------------------------------------------------------------------------------
def test_equal_weights_give_scipys_wilson_interval():
    result = estimates.weighted_proportion([2.0] * 10, [True] * 8 + [False] * 2)
    ci = binomtest(8, 10).proportion_ci(confidence_level=0.95, method="wilson")
    assert result["estimate"] == 0.8 and result["n_eff"] == 10
    assert result["low"] == pytest.approx(ci.low, abs=1e-4)
    assert result["high"] == pytest.approx(ci.high, abs=1e-4)


def test_kappa_of_double_reviews(topics):
    need, _ = topics
    review_round = services.round_start(need=need, sample_size=8, double_review_share=1.0)
    ann, ben = reviewer(need.tenant, "ann"), reviewer(need.tenant, "ben")
    first_answers, second_answers = [], []
    for i, item in enumerate(sorted(items_of(review_round), key=lambda x: x.position)):
        services.verdict_record(item=item, decision="confirm", reviewer=ann)
        if i % 4 == 0:
            other = next(k for k in ("t.a", "t.b", "t.c") if k not in item.predicted_labels)
            services.verdict_record(item=item, decision="correct", labels=[other], reviewer=ben)
            second_answers.append(other)
        else:
            services.verdict_record(item=item, decision="confirm", reviewer=ben)
            second_answers.append(item.predicted_labels[0])
        first_answers.append(item.predicted_labels[0])
    from sklearn.metrics import cohen_kappa_score

    from review.selectors import round_result

    result = round_result(review_round=review_round)
    assert result["double_reviewed"] == 8
    assert result["kappa"] == pytest.approx(
        cohen_kappa_score(first_answers, second_answers), abs=1e-4
    )
    assert result["agreement"] == 0.75


def _answer_all(review_round, *, right: int):
    for i, item in enumerate(items_of(review_round)):
        if i < right:
            services.verdict_record(item=item, decision="confirm", api_key_prefix="k")
        else:
            other = next(k for k in ("t.a", "t.b", "t.c") if k not in item.predicted_labels)
            services.verdict_record(
                item=item, decision="correct", labels=[other], api_key_prefix="k"
            )


def test_close_alerts_when_the_interval_lies_below_the_target(tenant_a):
    need, version = live_need(tenant_a)
    log_stream(need, version, {"t.a": texts("a", 40)})
    services.config_update(need=need, accuracy_target=0.95)
    review_round = services.round_start(need=need, sample_size=40)
    _answer_all(review_round, right=20)
    closed = services.round_close(review_round=review_round)
    assert closed.result["accuracy"]["high"] < 0.95
    alert = Alert.objects.for_tenant(tenant_a).get(kind=AlertKind.REVIEW_ACCURACY)
    assert alert.status == AlertStatus.OPEN and alert.severity == Severity.CRITICAL
    assert alert.evidence["round"] == review_round.pk
    # Closing again changes nothing and raises no second alert.
    services.round_close(review_round=closed)
    assert Alert.objects.for_tenant(tenant_a).filter(kind=AlertKind.REVIEW_ACCURACY).count() == 1
    # A later round that reaches the target resolves it.
    log_stream(need, version, {"t.a": texts("a", 40, start=100)}, prefix="later")
    later = services.round_start(need=need, sample_size=40)
    _answer_all(later, right=40)
    services.round_close(review_round=later)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_no_alert_when_the_interval_reaches_the_target(tenant_a):
    need, version = live_need(tenant_a)
    log_stream(need, version, {"t.a": texts("a", 20)})
    services.config_update(need=need, accuracy_target=0.9)
    review_round = services.round_start(need=need, sample_size=20)
    _answer_all(review_round, right=18)  # 0.9, interval reaches above the target
    services.round_close(review_round=review_round)
    assert not Alert.objects.for_tenant(tenant_a).filter(kind=AlertKind.REVIEW_ACCURACY).exists()


# --- Sign-off ---------------------------------------------------------------------------------
def test_sign_off_by_the_business_owner_only_after_closing(topics, alice):
    need, _ = topics
    owner = reviewer(need.tenant, "olive", role=Role.VIEWER)
    stranger = reviewer(need.tenant, "rex")
    services.config_update(need=need, business_owner=owner)
    review_round = services.round_start(need=need, sample_size=3)
    owner_membership = Membership.objects.for_tenant(need.tenant).get(user=owner)
    with pytest.raises(DomainError) as exc:
        services.round_sign_off(
            review_round=review_round, decision="retrain", user=owner, membership=owner_membership
        )
    assert exc.value.code == "round_not_closed"
    services.round_close(review_round=review_round)
    with pytest.raises(DomainError) as exc:
        services.round_sign_off(
            review_round=review_round,
            decision="retrain",
            user=stranger,
            membership=Membership.objects.for_tenant(need.tenant).get(user=stranger),
        )
    assert exc.value.code == "not_business_owner" and exc.value.status_code == 403
    signed = services.round_sign_off(
        review_round=review_round,
        decision=SignOff.RETRAIN,
        note="drifted",
        user=owner,
        membership=owner_membership,
    )
    assert signed.signoff == "retrain" and signed.signoff_by == owner
    with pytest.raises(DomainError) as exc:
        services.round_sign_off(
            review_round=review_round, decision="meets", user=owner, membership=owner_membership
        )
    assert exc.value.code == "already_signed_off"


def test_retrain_sign_off_goes_through_the_one_call_site(topics, alice, monkeypatch):
    need, _ = topics
    calls = []
    monkeypatch.setattr(
        services,
        "_retrain_requested",
        lambda **kw: calls.append((kw["review_round"].pk, kw["actor"])),
    )
    review_round = services.round_start(need=need, sample_size=2)
    services.round_close(review_round=review_round)
    services.round_sign_off(
        review_round=review_round,
        decision="retrain",
        user=alice,
        membership=Membership.objects.for_tenant(need.tenant).get(user=alice),
    )
    assert calls == [(review_round.pk, alice)]


# --- How rounds start -------------------------------------------------------------------------
def _alert(need, kind=AlertKind.DRIFT):
    from django.utils import timezone

    today = timezone.now().date()
    return Alert.objects.create(
        tenant_id=need.tenant_id,
        need=need,
        kind=kind,
        severity=Severity.WARNING,
        first_seen=today,
        last_seen=today,
        message="drift",
    )


def test_a_new_drift_alert_starts_one_round(topics):
    need, _ = topics
    alert = _alert(need)
    started = services.rounds_for_alerts_all_tenants()
    assert len(started) == 1
    review_round = ReviewRound.objects.for_tenant(need.tenant).get(pk=started[0])
    assert review_round.trigger == Trigger.ALERT and review_round.trigger_alert == alert
    assert review_round.status == RoundStatus.OPEN
    assert services.rounds_for_alerts_all_tenants() == []  # idempotent


def test_alert_rounds_can_be_switched_off_per_need(topics):
    need, _ = topics
    services.config_update(need=need, auto_round_on_alert=False)
    _alert(need, kind=AlertKind.RARE_CLASS)
    assert services.rounds_for_alerts_all_tenants() == []


def test_schedule_creates_a_beat_entry_that_starts_rounds(topics):
    from workers.tasks.monitoring import review_round_scheduled

    need, _ = topics
    config = services.config_update(need=need, schedule_crontab="0 6 * * 1")
    task = PeriodicTask.objects.get(pk=config.periodic_task_id)
    assert task.task == "workers.tasks.monitoring.review_round_scheduled"
    assert json.loads(task.kwargs) == {"need_id": need.pk} and task.crontab.day_of_week == "1"
    result = review_round_scheduled.apply(kwargs=json.loads(task.kwargs)).get()
    review_round = ReviewRound.objects.for_tenant(need.tenant).get(pk=result["round"])
    assert review_round.trigger == Trigger.SCHEDULE
    services.config_update(need=need, schedule_crontab="")
    assert not PeriodicTask.objects.filter(pk=task.pk).exists()


def test_bad_crontab_is_refused(topics):
    need, _ = topics
    with pytest.raises(DomainError) as exc:
        services.config_update(need=need, schedule_crontab="every monday")
    assert exc.value.code == "invalid_crontab"
