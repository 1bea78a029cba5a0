from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OptimisationConfig(AppConfig):
    """Deployment-time optimisation: the most accurate model variant within a need's latency
    and size budgets, found with a multi-objective search and measured on the serving path."""

    name = "optimisation"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = _("Deployment-time optimisation")
