"""Tasks on the `training` queue."""

import logging

from celery import shared_task

from registry.services.training import training_run_execute, training_runs_stale
from workers.tasks.base import DurableTask

logger = logging.getLogger(__name__)


@shared_task(
    bind=True, base=DurableTask, name="workers.tasks.training.train_model", ignore_result=True
)
def train_model(self, run_id: int) -> None:
    """Train one TrainingRun. Redelivery is harmless: the service claims the run with a
    compare-and-set and returns early when a live delivery already has it; this same message
    delivered again (its worker died) takes the run over."""
    training_run_execute(run_id=run_id, task_id=self.request.id or "")


@shared_task(
    bind=True, base=DurableTask, name="workers.tasks.training.optimise_need", ignore_result=True
)
def optimise_need(self, run_id: int) -> None:
    """Run one OptimisationRun (search, measure, register). A redelivered message does nothing
    while the run's heartbeat is fresh; after its worker died it starts the run over."""
    from optimisation.services import optimisation_run_execute

    optimisation_run_execute(run_id=run_id, task_id=self.request.id or "")


@shared_task(
    base=DurableTask,
    name="workers.tasks.training.sweep_stale_optimisation_runs",
    ignore_result=True,
)
def sweep_stale_optimisation_runs() -> None:
    from optimisation.services import optimisation_runs_sweep

    optimisation_runs_sweep()


@shared_task(
    bind=True, base=DurableTask, name="workers.tasks.training.run_retrain", ignore_result=True
)
def run_retrain(self, retrain_id: int) -> None:
    """Run one retrain (snapshot, training, candidate alias, comparison). Redelivery after a
    worker died is harmless: the retrain and its training run are claimed with compare-and-set,
    and a run registers at most one version."""
    from retraining.services import retrain_execute

    retrain_execute(retrain_id=retrain_id, task_id=self.request.id or "")


@shared_task(
    base=DurableTask, name="workers.tasks.training.check_retrain_policies", ignore_result=True
)
def check_retrain_policies() -> None:
    """Beat: start the retrains that needs' policies ask for (K accepted samples, a schedule)."""
    from retraining.services import retrain_policies_check_all_tenants

    retrain_policies_check_all_tenants()


@shared_task(
    base=DurableTask, name="workers.tasks.training.sweep_stale_training", ignore_result=True
)
def sweep_stale_training() -> dict:
    """Beat: send again the training runs and retrains whose worker died (their heartbeat went
    stale), so they finish without anyone touching them. The new delivery takes the dead claim
    over; a run that belongs to a retrain goes with its retrain."""
    from retraining.services import retrain_training_run_ids_active, retrains_stale

    retrains = retrains_stale()
    runs = training_runs_stale(exclude=retrain_training_run_ids_active())
    for retrain_id, _run_id in retrains:
        logger.warning("retrain %s lost its worker; sending it again", retrain_id)
        run_retrain.delay(retrain_id)
    for run_id in runs:
        logger.warning("training run %s lost its worker; sending it again", run_id)
        train_model.delay(run_id)
    return {"retrains": [r for r, _ in retrains], "runs": runs}
