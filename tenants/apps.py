from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants, members, API keys and tagging needs"

    def ready(self) -> None:
        from tenants import schema  # noqa: F401  (registers the Api-Key auth scheme for OpenAPI)
