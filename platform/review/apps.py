from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReviewConfig(AppConfig):
    name = "review"
    verbose_name = _("Review rounds and cases")

    def ready(self) -> None:
        # Sync texts for review: serving (a lower layer) asks this app which share of a need's
        # sync texts to keep through a hook it owns; answered from a per-process cache.
        from review import sync_texts
        from serving import predlog

        predlog.register_text_share_provider(sync_texts.share_for_need)
