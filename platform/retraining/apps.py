from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RetrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "retraining"
    verbose_name = _("Retraining and champion/challenger")

    def ready(self) -> None:
        # Shadow mode: serving (a lower layer) asks this app which needs shadow, and how much,
        # through a hook it owns; the answer is cached per process (retraining.shadow).
        from retraining import shadow
        from serving import shadow as serving_shadow

        serving_shadow.register_share_provider(shadow.share_for_need)
