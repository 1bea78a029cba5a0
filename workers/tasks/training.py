"""Tasks on the `training` queue."""

from celery import shared_task

from registry.services.training import training_run_execute
from workers.tasks.base import DurableTask


@shared_task(base=DurableTask, name="workers.tasks.training.train_model", ignore_result=True)
def train_model(run_id: int) -> None:
    """Train one TrainingRun. Redelivery is harmless: the service claims the run with a
    compare-and-set and returns early when another delivery already has it."""
    training_run_execute(run_id=run_id)
