from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry and training data"

    def ready(self) -> None:
        from registry import schema  # noqa: F401  (registers the OpenAPI auth fallback)
