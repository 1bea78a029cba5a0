"""API shapes of optimisation runs and trials; bounds are validated here so bad input is a 400
(the service checks them again with the platform's limits)."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import serializers

from optimisation import services
from optimisation.models import OptimisationRun, OptimisationTrial


class RunStartSerializer(serializers.Serializer):
    latency_budget_ms = serializers.FloatField(
        min_value=0.001,
        max_value=services.MAX_LATENCY_BUDGET_MS,
        required=False,
        help_text="p99 single-item latency budget in ms (default: the need's).",
    )
    size_budget_kb = serializers.IntegerField(
        min_value=1,
        max_value=services.MAX_SIZE_BUDGET_KB,
        required=False,
        help_text="Artifact size budget in KB (default: the need's).",
    )
    time_limit_seconds = serializers.IntegerField(
        min_value=services.MIN_TIME_LIMIT_SECONDS,
        help_text="Search time limit; at most the platform's OPTIMISATION_MAX_SECONDS.",
    )
    max_trials = serializers.IntegerField(
        min_value=1, max_value=services.MAX_TRIALS, required=False, allow_null=True
    )
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=42)
    target_requests_per_s = serializers.FloatField(
        min_value=0.001, max_value=services.MAX_TARGET_RPS, required=False, allow_null=True
    )

    def validate_time_limit_seconds(self, value: int) -> int:
        limit = settings.OPTIMISATION_MAX_SECONDS
        if value > limit:
            raise serializers.ValidationError(
                _("At most %(limit)s seconds on this platform.") % {"limit": limit}
            )
        return value


class TrialSerializer(serializers.ModelSerializer):
    class Meta:
        model = OptimisationTrial
        fields = [
            "number",
            "state",
            "params",
            "macro_f1",
            "p50_ms",
            "p99_ms",
            "mean_ms",
            "docs_per_s",
            "size_bytes",
            "scorer_path",
            "search_p99_ms",
            "fit_seconds",
            "pareto",
            "fits",
            "is_default",
            "error",
        ]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    chosen_trial = serializers.IntegerField(
        source="chosen_trial.number", read_only=True, allow_null=True, default=None
    )
    registered_version = serializers.SerializerMethodField()

    class Meta:
        model = OptimisationRun
        fields = [
            "id",
            "need",
            "status",
            "progress",
            "latency_budget_ms",
            "size_budget_kb",
            "time_limit_seconds",
            "max_trials",
            "seed",
            "target_requests_per_s",
            "cancel_requested",
            "measurement",
            "result",
            "chosen_trial",
            "registered_version",
            "error",
            "log",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_registered_version(self, run: OptimisationRun) -> str | None:
        version = run.registered_version
        return None if version is None else str(version)
