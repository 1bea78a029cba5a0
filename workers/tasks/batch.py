"""Tasks on the `batch` queue."""

from __future__ import annotations

from celery import shared_task

from workers.tasks.base import DurableTask, time_limits


@shared_task(
    bind=True, base=DurableTask, name="workers.tasks.batch.run_batch_chunk", **time_limits(300)
)
def run_batch_chunk(self, chunk_id: int) -> str:
    """One chunk of a batch job. acks_late + reject_on_worker_lost: a killed worker's chunk is
    redelivered (same task id: it takes the chunk over at once); the chunk's claim token and
    unique result keys make the rerun exactly-once."""
    from serving import services

    return services.batch_chunk_run(
        chunk_id=chunk_id, task_id=self.request.id or "", worker=self.request.hostname or ""
    )


@shared_task(name="workers.tasks.batch.sweep_stale_chunks")
def sweep_stale_chunks() -> int:
    """Beat, every BATCH_SWEEP_SECONDS: send again the chunks a dead worker left stranded."""
    from serving import services

    return services.batch_chunks_sweep()


@shared_task(base=DurableTask, name="workers.tasks.batch.run_scheduled_batch")
def run_scheduled_batch(scheduled_id: int) -> int | None:
    """Beat entry point of a ScheduledBatch: tag everything new since the last run."""
    from serving import services

    job = services.scheduled_batch_run(scheduled_id=scheduled_id)
    return job.pk if job else None
