"""Retrain end to end in the services: challenger as `candidate`, comparison on the champion's
test set and the fresh set, the guard, promotion, rollback, and idempotency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import AliasEvent, ModelAlias, ModelVersion, TrainingRun
from registry.selectors import serving_version
from retraining import services
from retraining.errors import RetrainingError
from retraining.models import Retrain, RetrainStatus, Trigger
from tests.factories import UserFactory


def test_retrain_registers_a_candidate_and_compares_it_with_the_champion(shifted_need, run_retrain):
    need = shifted_need
    champion = serving_version(need)
    retrain = run_retrain(need, reason="new tech vocabulary")

    assert retrain.status == RetrainStatus.READY, retrain.error
    challenger = retrain.challenger
    assert challenger.registered_model_id == champion.registered_model_id
    assert challenger.algorithm == champion.algorithm
    assert challenger.snapshot.parent_id == champion.snapshot_id
    assert challenger.snapshot.test_sample_ids == sorted(champion.snapshot.test_sample_ids)
    assert retrain.accepted_added == 30
    candidate = ModelAlias.objects.get(
        registered_model=challenger.registered_model, name="candidate"
    )
    assert candidate.version_id == challenger.pk
    assert serving_version(need).pk == champion.pk  # production untouched until promotion

    test, fresh = retrain.comparison["test"], retrain.comparison["fresh"]
    assert test["n"] == len(champion.snapshot.test_sample_ids)
    assert fresh["n"] == 45
    # The champion never saw the new tech words; the challenger learned them from the cases.
    tech = fresh["per_label"]["news.tech"]
    assert tech["recall_challenger"] > tech["recall_champion"]
    assert fresh["flips"]["fixed"] > fresh["flips"]["broken"]
    assert fresh["flips"]["p_value"] < 0.05
    assert retrain.guard["passed"], retrain.guard


def test_promotion_through_the_guard_and_rollback_in_one_action(shifted_need, run_retrain):
    need = shifted_need
    champion = serving_version(need)
    retrain = run_retrain(need)
    user = UserFactory()

    services.retrain_promote(retrain=retrain, actor=user)

    assert serving_version(need).pk == retrain.challenger_id
    retrain.refresh_from_db()
    assert retrain.status == RetrainStatus.PROMOTED
    event = AliasEvent.objects.filter(alias="production").first()
    assert event.to_version_id == retrain.challenger_id and "passed the promotion guard" in (
        event.reason
    )

    services.retrain_rollback(retrain=retrain, actor=user)
    assert serving_version(need).pk == champion.pk


def test_guard_refuses_a_challenger_short_of_the_margin_and_writes_nothing(
    shifted_need, run_retrain
):
    need = shifted_need
    services.retrain_policy_update(need=need, promotion_margin=0.9)
    retrain = run_retrain(need)
    assert retrain.guard["passed"] is False
    events = AliasEvent.objects.count()

    with pytest.raises(RetrainingError) as refused:
        services.retrain_promote(retrain=retrain, actor=UserFactory())
    assert refused.value.code == "promotion_refused" and refused.value.status_code == 409
    assert AliasEvent.objects.count() == events
    assert serving_version(need).pk == retrain.champion_id

    with pytest.raises(RetrainingError) as not_staff:
        services.retrain_promote(
            retrain=retrain, actor=UserFactory(), override_reason="business needs it today"
        )
    assert not_staff.value.code == "override_requires_staff"

    staff = UserFactory(is_staff=True)
    services.retrain_promote(
        retrain=retrain, actor=staff, override_reason="business needs it today"
    )
    assert serving_version(need).pk == retrain.challenger_id
    event = AliasEvent.objects.filter(alias="production").first()
    assert event.actor_id == staff.pk and "business needs it today" in event.reason
    retrain.refresh_from_db()
    assert retrain.override_reason == "business needs it today"


def test_guard_refuses_when_the_fresh_set_is_too_small(need_with_champion, run_retrain):
    retrain = run_retrain(need_with_champion)  # no fresh set at all
    assert retrain.status == RetrainStatus.READY
    failed = {c["code"] for c in retrain.guard["checks"] if not c["passed"]}
    assert "fresh_set_size" in failed


def test_starting_twice_gives_one_retrain(shifted_need, django_capture_on_commit_callbacks):
    first, created = services.retrain_start_or_get(need=shifted_need)
    again, created_again = services.retrain_start_or_get(need=shifted_need)
    assert created and not created_again and again.pk == first.pk
    assert Retrain.objects.for_tenant(shifted_need.tenant).count() == 1


def test_a_redelivered_retrain_does_not_train_a_second_challenger(shifted_need, run_retrain):
    retrain = run_retrain(shifted_need)
    versions = ModelVersion.objects.for_tenant(shifted_need.tenant).count()
    assert services.retrain_execute(retrain_id=retrain.pk) is None  # finished: skipped
    assert ModelVersion.objects.for_tenant(shifted_need.tenant).count() == versions


def test_a_retrain_whose_worker_died_is_taken_over_with_the_same_training_run(shifted_need):
    """The worker died after creating and finishing the training run but before recording the
    comparison: the message comes back after the visibility timeout, and the next delivery
    reuses that run and its one version."""
    retrain, _ = services.retrain_start_or_get(need=shifted_need)  # task not run (no commit)
    assert services.retrain_claim(retrain_id=retrain.pk)
    run = services._training_run_for(retrain.pk)
    from registry.services.training import training_run_execute

    training_run_execute(run_id=run.pk)
    versions = ModelVersion.objects.for_tenant(shifted_need.tenant).count()
    # Still RUNNING, claimed recently: a duplicate delivery now must not start over.
    assert services.retrain_execute(retrain_id=retrain.pk) is None
    # Its heartbeat went stale: the worker is gone, and the next delivery takes it over.
    Retrain.objects.for_tenant(shifted_need.tenant).filter(pk=retrain.pk).update(
        heartbeat_at=timezone.now() - timedelta(days=1)
    )

    finished = services.retrain_execute(retrain_id=retrain.pk)

    assert finished.status == RetrainStatus.READY, finished.error
    assert ModelVersion.objects.for_tenant(shifted_need.tenant).count() == versions
    assert TrainingRun.objects.for_tenant(shifted_need.tenant).count() == 2  # champion + one
    assert finished.training_run_id == run.pk


def test_policy_retrains_after_k_accepted_samples_once_per_champion(shifted_need):
    services.retrain_policy_update(need=shifted_need, retrain_after_accepted=50)
    assert services.retrain_policies_check_all_tenants() == []  # 30 accepted < 50
    services.retrain_policy_update(need=shifted_need, retrain_after_accepted=30)
    started = services.retrain_policies_check_all_tenants()
    assert len(started) == 1
    retrain = Retrain.objects.for_tenant(shifted_need.tenant).get(pk=started[0])
    assert retrain.trigger == Trigger.ACCEPTED and "30 accepted" in retrain.reason
    Retrain.objects.for_tenant(shifted_need.tenant).filter(pk=retrain.pk).update(
        status=RetrainStatus.FAILED
    )
    assert services.retrain_policies_check_all_tenants() == []


def test_policy_retrains_on_its_schedule(shifted_need):
    services.retrain_policy_update(need=shifted_need, retrain_every_days=7)
    assert services.retrain_policies_check_all_tenants() == []  # champion is brand new
    later = timezone.now() + timedelta(days=8)
    retrain = services.retrain_policy_check(need=shifted_need, now=later)
    assert retrain is not None and retrain.trigger == Trigger.SCHEDULE


def test_signoff_retrains_unless_the_policy_says_no(shifted_need):
    services.retrain_policy_update(need=shifted_need, retrain_on_signoff=False)
    assert services.retrain_start(need=shifted_need, trigger=Trigger.SIGNOFF) is None
    services.retrain_policy_update(need=shifted_need, retrain_on_signoff=True)
    retrain = services.retrain_start(
        need=shifted_need, trigger=Trigger.SIGNOFF, reason="round 3 sign-off"
    )
    assert retrain.trigger == Trigger.SIGNOFF


def test_a_need_without_a_champion_cannot_retrain(tenant_a, topics):
    from tests.factories import NeedFactory

    need = NeedFactory(tenant=tenant_a, label_set=topics)
    with pytest.raises(RetrainingError) as error:
        services.retrain_start_or_get(need=need)
    assert error.value.code == "no_champion" and error.value.status_code == 409
