from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "serving"
    verbose_name = "Serving: sync, stream and batch tagging"

    def ready(self) -> None:
        from django.conf import settings

        from tagging_platform.celery import app

        # Periodic serving chores, merged into whatever schedule other apps declare.
        app.conf.beat_schedule = {
            **(app.conf.beat_schedule or {}),
            "serving-flush-prediction-log": {
                "task": "workers.tasks.online.flush_prediction_log",
                "schedule": settings.PREDICTION_LOG_FLUSH_SECONDS,
            },
            "serving-requeue-pending-items": {
                "task": "workers.tasks.online.tag_pending_items",
                "schedule": 60.0,
            },
            # On the online queue: a backlog of chunks on the batch queue must not delay it.
            "serving-sweep-stale-batch-chunks": {
                "task": "workers.tasks.batch.sweep_stale_chunks",
                "schedule": settings.BATCH_SWEEP_SECONDS,
                # (django-celery-beat's DatabaseScheduler reads `expire_seconds`, not `expires`)
                "options": {
                    "queue": "online",
                    "expire_seconds": max(1, int(settings.BATCH_SWEEP_SECONDS)),
                },
            },
        }
