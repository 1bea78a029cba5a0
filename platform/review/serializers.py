"""Shapes of the review API. Inputs are bounded (the Schemathesis fuzz test runs over them)."""

from __future__ import annotations

from rest_framework import serializers

from review.models import Case, CaseSource, Cause, Decision, ReviewItem, ReviewRound, SignOff


class RoundStartSerializer(serializers.Serializer):
    sample_size = serializers.IntegerField(min_value=1, max_value=5000, required=False)
    window_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    double_review_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)


class RoundSerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    signoff = serializers.CharField(read_only=True, help_text="meets, retrain, rescope or ''")

    class Meta:
        model = ReviewRound
        fields = [
            "id",
            "need",
            "trigger",
            "trigger_alert",
            "status",
            "window_start",
            "window_end",
            "sample_size",
            "double_review_share",
            "population",
            "strata",
            "model_version",
            "accuracy_target",
            "created_at",
            "sampled_at",
            "closed_at",
            "signoff",
            "signoff_note",
            "signoff_at",
            "progress",
            "result",
        ]
        read_only_fields = fields

    def get_model_version(self, obj) -> str | None:
        version = obj.model_version
        return f"{version.registered_model.name}@v{version.version}" if version else None

    def get_progress(self, obj) -> dict:
        return self.context.get("progress", {}).get(obj.pk, {})

    def get_result(self, obj) -> dict:
        return self.context.get("results", {}).get(obj.pk, {})


class ItemSerializer(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "round",
            "position",
            "item_ref",
            "channel",
            "text",
            "predicted_labels",
            "scores",
            "model_version",
            "stratum",
            "weight",
            "reviews_needed",
        ]
        read_only_fields = fields

    def get_model_version(self, obj) -> str:
        version = obj.model_version
        return f"{version.registered_model.name}@v{version.version}"


class VerdictSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    labels = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=100, required=False, default=list
    )


class VerdictResultSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    slot = serializers.IntegerField()
    decision = serializers.CharField()
    labels = serializers.ListField(child=serializers.CharField())
    answered_at = serializers.DateTimeField()


class SignOffSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=SignOff.choices)
    note = serializers.CharField(max_length=1000, required=False, default="", allow_blank=True)


class ConfigSerializer(serializers.Serializer):
    accuracy_target = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    sample_size = serializers.IntegerField(min_value=1, max_value=5000, required=False)
    window_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    min_per_label = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    double_review_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    held_out_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    low_confidence_case_share = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    auto_round_on_alert = serializers.BooleanField(required=False)
    schedule_crontab = serializers.CharField(max_length=100, required=False, allow_blank=True)
    sync_review_share = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="Share of logged sync predictions whose text is kept for review (0: none, "
        "the default). Review rounds weight kept texts by 1 / share.",
    )
    sync_text_retention_days = serializers.IntegerField(
        min_value=1,
        max_value=365,
        required=False,
        help_text="Days a kept sync text stays before it is purged (at most the platform's "
        "SYNC_REVIEW_TEXT_MAX_DAYS).",
    )


class CaseInSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=100_000, trim_whitespace=False)
    suggested_labels = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=100, required=False
    )
    predicted_labels = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=100, required=False
    )
    scores = serializers.DictField(
        child=serializers.FloatField(min_value=0.0, max_value=1.0), required=False
    )
    item_ref = serializers.CharField(max_length=200, required=False, allow_blank=True)
    source_ref = serializers.CharField(max_length=200, required=False, allow_blank=True)
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class CaseBulkSerializer(serializers.Serializer):
    cases = CaseInSerializer(many=True, min_length=1, max_length=1000)


class CaseSerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.SerializerMethodField()
    reported_by = serializers.CharField(
        source="reported_by.username", read_only=True, allow_null=True
    )
    conflict = serializers.BooleanField(source="has_conflict", read_only=True)
    # Blank until triage: plain strings, so "" conforms to the schema.
    cause = serializers.CharField(read_only=True, help_text="model_error, data_change, ...")
    suggested_cause = serializers.CharField(read_only=True)

    class Meta:
        model = Case
        fields = [
            "id",
            "need",
            "text",
            "text_hash",
            "item_ref",
            "predicted_labels",
            "scores",
            "model_version",
            "suggested_labels",
            "source",
            "source_ref",
            "reported_by",
            "reported_by_key",
            "note",
            "created_at",
            "status",
            "suggested_cause",
            "signals",
            "cause",
            "labels",
            "triaged_at",
            "decided_at",
            "reject_reason",
            "sample",
            "held_out",
            "conflict",
            "conflict_labels",
        ]
        read_only_fields = fields

    def get_model_version(self, obj) -> str | None:
        version = obj.model_version
        return f"{version.registered_model.name}@v{version.version}" if version else None


class CaseBulkResultSerializer(serializers.Serializer):
    cases = CaseSerializer(many=True)


class CaseQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Case._meta.get_field("status").choices, required=False)
    source = serializers.ChoiceField(choices=CaseSource.choices, required=False)


class TriageSerializer(serializers.Serializer):
    cause = serializers.ChoiceField(choices=Cause.choices)
    labels = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=100, required=False
    )


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class GapSerializer(serializers.Serializer):
    label = serializers.CharField()
    samples = serializers.IntegerField()
    recent_errors = serializers.IntegerField()
    gained_since_training = serializers.IntegerField()
    few_samples = serializers.BooleanField()
