"""Tasks on the `training` queue."""

from celery import shared_task

from registry.services.training import training_run_execute
from workers.tasks.base import DurableTask


@shared_task(base=DurableTask, name="workers.tasks.training.train_model", ignore_result=True)
def train_model(run_id: int) -> None:
    """Train one TrainingRun. Redelivery is harmless: the service claims the run with a
    compare-and-set and returns early when another delivery already has it."""
    training_run_execute(run_id=run_id)


@shared_task(base=DurableTask, name="workers.tasks.training.optimise_need", ignore_result=True)
def optimise_need(run_id: int) -> None:
    """Run one OptimisationRun (search, measure, register). A redelivered message does nothing
    while the run's heartbeat is fresh; after its worker died it starts the run over."""
    from optimisation.services import optimisation_run_execute

    optimisation_run_execute(run_id=run_id)


@shared_task(
    base=DurableTask,
    name="workers.tasks.training.sweep_stale_optimisation_runs",
    ignore_result=True,
)
def sweep_stale_optimisation_runs() -> None:
    from optimisation.services import optimisation_runs_sweep

    optimisation_runs_sweep()


@shared_task(base=DurableTask, name="workers.tasks.training.run_retrain", ignore_result=True)
def run_retrain(retrain_id: int) -> None:
    """Run one retrain (snapshot, training, candidate alias, comparison). Redelivery after a
    worker died is harmless: the retrain and its training run are claimed with compare-and-set,
    and a run registers at most one version."""
    from retraining.services import retrain_execute

    retrain_execute(retrain_id=retrain_id)


@shared_task(
    base=DurableTask, name="workers.tasks.training.check_retrain_policies", ignore_result=True
)
def check_retrain_policies() -> None:
    """Beat: start the retrains that needs' policies ask for (K accepted samples, a schedule)."""
    from retraining.services import retrain_policies_check_all_tenants

    retrain_policies_check_all_tenants()
