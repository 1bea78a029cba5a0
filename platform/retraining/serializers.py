"""Serializers of the retraining API (bounds validated here, so bad input is a 400)."""

from __future__ import annotations

from rest_framework import serializers

from registry.models import Algorithm
from retraining.models import Retrain, RetrainPolicy


class RetrainPolicySerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    promotion_margin = serializers.FloatField(min_value=-1.0, max_value=1.0, required=False)
    max_recall_drop = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    min_fresh_samples = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    retrain_after_accepted = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    retrain_every_days = serializers.IntegerField(
        min_value=1, max_value=365, required=False, allow_null=True
    )
    shadow_share = serializers.FloatField(min_value=0.0, max_value=0.5, required=False)
    algorithm = serializers.ChoiceField(
        choices=Algorithm.choices,
        required=False,
        allow_blank=True,
        help_text="The algorithm retrains train ('' = the champion's).",
    )
    params = serializers.DictField(
        required=False,
        help_text="Params retrains change ({'vectorizer': {...}, 'classifier': {...}}), checked "
        "against the algorithm's catalogue.",
    )

    class Meta:
        model = RetrainPolicy
        fields = [
            "need", "promotion_margin", "max_recall_drop", "min_fresh_samples",
            "retrain_after_accepted", "retrain_on_signoff", "retrain_every_days",
            "shadow_share", "algorithm", "params", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["updated_at"]


class VersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(source="registered_model.name")
    version = serializers.IntegerField()
    algorithm = serializers.CharField()


class RetrainSerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    champion = VersionRefSerializer(read_only=True)
    challenger = VersionRefSerializer(read_only=True, allow_null=True)
    snapshot = serializers.CharField(
        source="snapshot.content_hash", read_only=True, allow_null=True, default=None
    )
    training_run_id = serializers.IntegerField(read_only=True, allow_null=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )
    promoted_by = serializers.CharField(
        source="promoted_by.username", read_only=True, allow_null=True, default=None
    )
    shadow = serializers.SerializerMethodField()

    class Meta:
        model = Retrain
        fields = [
            "id", "need", "trigger", "reason", "status", "champion", "challenger", "algorithm",
            "params",
            "snapshot", "training_run_id", "accepted_added", "guard", "comparison", "shadow",
            "error", "created_by", "created_at", "started_at", "finished_at", "promoted_by",
            "promoted_at", "override_reason",
        ]  # fmt: skip

    def get_shadow(self, obj) -> dict | None:
        from retraining.shadow import retrain_shadow_summary

        return retrain_shadow_summary(obj)


class RetrainCreateSerializer(serializers.Serializer):
    need = serializers.SlugField(max_length=80, help_text="Slug of one of your needs.")
    reason = serializers.CharField(max_length=300, required=False, default="", allow_blank=True)
    algorithm = serializers.ChoiceField(
        choices=Algorithm.choices,
        required=False,
        help_text="Train another registered algorithm than the champion's (its defaults, then "
        "`params`). Without algorithm and params, the need's policy decides, else the champion.",
    )
    params = serializers.DictField(
        required=False,
        help_text="Training params to change ({'vectorizer': {...}, 'classifier': {...}}), "
        "checked against the algorithm's catalogue; with the champion's algorithm, the "
        "champion's are used for the rest.",
    )


class PromoteSerializer(serializers.Serializer):
    override_reason = serializers.CharField(
        max_length=280,
        required=False,
        default="",
        allow_blank=True,
        help_text="Staff only, when the guard refuses: why the challenger goes live anyway.",
    )


class RollbackSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, default="", allow_blank=True)
