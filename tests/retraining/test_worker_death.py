"""Training-queue work whose worker died finishes without anyone touching it.

A training run, a retrain and an optimisation run each hold a claim on their row while a worker
runs them. Two ways back exist when the worker dies: the same Celery message delivered again (a
pool process died: acks_late + reject_on_worker_lost hand the message back at once) takes the claim
over, and a heartbeat that went stale lets the beat sweeper send the work again. A live claim is
never taken by another message. (The real-process version of these cases, with SIGKILL on a
cluster's training worker, is in tests/deploy/test_faults.py.)"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from core.heartbeat import beating
from registry.models import ModelVersion, RunStatus, TrainingRun
from registry.services.training import (
    training_run_claim,
    training_run_create,
    training_run_execute,
)
from retraining import services
from retraining.models import Retrain, RetrainStatus


@pytest.fixture
def queued_run(need_with_champion):
    run = training_run_create(need=need_with_champion, enqueue=False)
    return run


def _runs(need):
    return TrainingRun.objects.for_tenant(need.tenant)


def test_the_same_message_delivered_again_takes_a_running_claim_over(queued_run):
    assert training_run_claim(run_id=queued_run.pk, task_id="message-1")
    # Another message (a duplicate send) finds a live claim and leaves it alone ...
    assert not training_run_claim(run_id=queued_run.pk, task_id="message-2")
    assert not training_run_claim(run_id=queued_run.pk)
    # ... the same message again means its first delivery's worker died.
    assert training_run_claim(run_id=queued_run.pk, task_id="message-1")


def test_a_claim_whose_heartbeat_went_stale_is_taken_over_by_any_delivery(
    queued_run, need_with_champion, settings
):
    assert training_run_claim(run_id=queued_run.pk, task_id="message-1")
    _runs(need_with_champion).filter(pk=queued_run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.TRAINING_STALE_SECONDS - 5)
    )
    assert not training_run_claim(run_id=queued_run.pk, task_id="message-2")
    _runs(need_with_champion).filter(pk=queued_run.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.TRAINING_STALE_SECONDS + 5)
    )
    assert training_run_claim(run_id=queued_run.pk, task_id="message-2")


def test_a_finished_run_is_never_trained_again(queued_run, need_with_champion):
    finished = training_run_execute(run_id=queued_run.pk, task_id="message-1")
    assert finished.status == RunStatus.SUCCEEDED, finished.error
    _runs(need_with_champion).filter(pk=queued_run.pk).update(
        heartbeat_at=timezone.now() - timedelta(days=1)
    )
    assert training_run_execute(run_id=queued_run.pk, task_id="message-1") is None


def test_a_taken_over_run_registers_one_version(queued_run, need_with_champion):
    """The dead delivery got as far as the claim; the redelivery trains and registers once."""
    assert training_run_claim(run_id=queued_run.pk, task_id="message-1")
    finished = training_run_execute(run_id=queued_run.pk, task_id="message-1")
    assert finished.status == RunStatus.SUCCEEDED, finished.error
    assert finished.claim_task == "message-1"
    assert (
        ModelVersion.objects.for_tenant(need_with_champion.tenant)
        .filter(training_run=finished)
        .exists()
    )


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stamps_the_row_while_the_work_runs(need_with_champion):
    run = training_run_create(need=need_with_champion, enqueue=False)
    assert training_run_claim(run_id=run.pk, task_id="m")
    old = timezone.now() - timedelta(days=1)
    rows = _runs(need_with_champion).filter(pk=run.pk)
    rows.update(heartbeat_at=old)
    with beating(lambda: rows.update(heartbeat_at=timezone.now()), every=0.05):
        time.sleep(0.4)
    stamped = rows.get().heartbeat_at
    assert stamped > old + timedelta(hours=23)
    # It stopped with the block: nothing stamps the row any more.
    rows.update(heartbeat_at=old)
    time.sleep(0.2)
    assert rows.get().heartbeat_at == old
    assert connection.vendor  # the caller's connection is untouched


def test_the_sweeper_sends_stale_runs_and_retrains_again_but_not_a_retrains_run(
    shifted_need, need_with_champion, settings, monkeypatch
):
    from workers.tasks import training as tasks

    sent: dict[str, list[int]] = {"runs": [], "retrains": []}
    monkeypatch.setattr(tasks.train_model, "delay", lambda pk: sent["runs"].append(pk))
    monkeypatch.setattr(tasks.run_retrain, "delay", lambda pk: sent["retrains"].append(pk))
    dead = timezone.now() - timedelta(seconds=settings.TRAINING_STALE_SECONDS + 5)

    standalone = training_run_create(need=need_with_champion, enqueue=False)
    alive = training_run_create(need=need_with_champion, enqueue=False)
    assert training_run_claim(run_id=standalone.pk, task_id="a")
    assert training_run_claim(run_id=alive.pk, task_id="b")
    _runs(need_with_champion).filter(pk=standalone.pk).update(heartbeat_at=dead)

    retrain, _ = services.retrain_start_or_get(need=shifted_need)
    assert services.retrain_claim(retrain_id=retrain.pk, task_id="c")
    retrain_run = services._training_run_for(retrain.pk)
    assert training_run_claim(run_id=retrain_run.pk, task_id="c")
    Retrain.objects.for_tenant(shifted_need.tenant).filter(pk=retrain.pk).update(heartbeat_at=dead)
    _runs(need_with_champion).filter(pk=retrain_run.pk).update(heartbeat_at=dead)

    result = tasks.sweep_stale_training()

    assert sent == {"runs": [standalone.pk], "retrains": [retrain.pk]}
    assert result == {"runs": [standalone.pk], "retrains": [retrain.pk]}


def test_a_retrain_sent_again_by_the_sweeper_takes_its_runs_claim_over(shifted_need, settings):
    """The retrain's run was stamped a little later than the retrain, so it is not yet stale by
    itself when the retrain is; the retrain's new delivery must still take the run over."""
    retrain, _ = services.retrain_start_or_get(need=shifted_need)
    assert services.retrain_claim(retrain_id=retrain.pk, task_id="dead")
    run = services._training_run_for(retrain.pk)
    assert training_run_claim(run_id=run.pk, task_id="dead")
    Retrain.objects.for_tenant(shifted_need.tenant).filter(pk=retrain.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.TRAINING_STALE_SECONDS + 5)
    )

    finished = services.retrain_execute(retrain_id=retrain.pk, task_id="sweeper-sent")

    assert finished.status == RetrainStatus.READY, finished.error
    assert finished.training_run_id == run.pk
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert ModelVersion.objects.for_tenant(shifted_need.tenant).filter(training_run=run).exists()
