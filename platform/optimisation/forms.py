from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from optimisation import services


class OptimiseForm(forms.Form):
    latency_budget_ms = forms.FloatField(
        min_value=0.001,
        max_value=services.MAX_LATENCY_BUDGET_MS,
        label=_("p99 latency budget (ms)"),
    )
    size_budget_kb = forms.IntegerField(
        min_value=1, max_value=services.MAX_SIZE_BUDGET_KB, label=_("Size budget (KB)")
    )
    time_limit_seconds = forms.IntegerField(
        min_value=services.MIN_TIME_LIMIT_SECONDS, label=_("Search time limit (s)")
    )
    max_trials = forms.IntegerField(
        min_value=1,
        max_value=services.MAX_TRIALS,
        required=False,
        label=_("Trial budget (optional)"),
    )
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=42, label=_("Seed"))
    target_requests_per_s = forms.FloatField(
        min_value=0.001,
        max_value=services.MAX_TARGET_RPS,
        required=False,
        label=_("Target requests/s (capacity planning)"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The platform's maximum is a setting: read it per form, not at import.
        self.fields["time_limit_seconds"] = forms.IntegerField(
            min_value=services.MIN_TIME_LIMIT_SECONDS,
            max_value=settings.OPTIMISATION_MAX_SECONDS,
            label=_("Search time limit (s)"),
        )
