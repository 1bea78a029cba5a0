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
