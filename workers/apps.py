from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Celery tasks and inference runtime"

    def ready(self) -> None:
        from workers.broker import install_restore_guard

        # Every process that consumes from Redis (the workers) must survive a broker outage.
        install_restore_guard()
