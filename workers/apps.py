from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Celery tasks"

    def ready(self) -> None:
        import workers.tasks  # noqa: F401  (registers every task: core.queues.task_send finds them by name)
        from tagging_platform.redis_broker import install_restore_guard

        # Every process that consumes from Redis (the workers) must survive a broker outage.
        install_restore_guard()
