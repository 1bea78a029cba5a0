"""Serializers: the OpenAPI description of every serving endpoint, and output for list views."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from serving import selectors
from serving.models import BatchJob, Item, PredictionLog, WebhookDelivery
from serving.ranked import ranked_scores, scores_mapping


class ItemInSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200)
    text = serializers.CharField(help_text="1 to TAG_MAX_TEXT_CHARS characters, not blank.")


class ItemsInSerializer(serializers.Serializer):
    items = ItemInSerializer(many=True, help_text="At most TAG_MAX_ITEMS (sync) items.")


class ModelRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


class TagOutSerializer(serializers.Serializer):
    id = serializers.CharField()
    labels = serializers.ListField(
        child=serializers.CharField(), help_text="Tenant label names, top-k above thresholds."
    )
    scores = serializers.DictField(
        child=serializers.FloatField(),
        help_text="Every label's score. A JSON object has no order: rank by value, never by key "
        "position (`labels` is already ranked).",
    )
    model = ModelRefSerializer()


class TagResponseSerializer(serializers.Serializer):
    need = serializers.CharField()
    model = ModelRefSerializer()
    items = TagOutSerializer(many=True)


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


class IngestResponseSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="New items queued for tagging.")
    duplicates = serializers.ListField(
        child=serializers.CharField(),
        help_text="Ids already ingested for this need (not re-queued).",
    )


class ItemOutSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="external_id")
    labels = serializers.SerializerMethodField()
    scores = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = ["id", "status", "labels", "scores", "model", "received_at", "tagged_at", "error"]

    def get_labels(self, obj) -> list[str]:
        return (obj.result or {}).get("labels", [])

    def get_scores(self, obj) -> dict[str, float]:
        return scores_mapping(ranked_scores((obj.result or {}).get("scores")))

    def get_model(self, obj) -> dict | None:
        return (obj.result or {}).get("model")


class PredictionSerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = PredictionLog
        fields = [
            "id",
            "created_at",
            "need",
            "channel",
            "item_ref",
            "text_hash",
            "labels",
            "scores",
            "top_label",
            "top_score",
            "above_threshold",
            "model_version",
        ]

    def get_model_version(self, obj) -> dict:
        return {
            "name": obj.model_version.registered_model.name,
            "version": obj.model_version.version,
        }


class DeadLetterSerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "need",
            "status",
            "attempts",
            "item_count",
            "last_error",
            "last_status_code",
            "created_at",
            "dead_at",
            "delivered_at",
            "replays",
            "payload",
        ]


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    percent = serializers.FloatField()
    rate_per_s = serializers.FloatField()
    eta_seconds = serializers.FloatField(allow_null=True)
    elapsed_seconds = serializers.FloatField()


class WaitingChunkSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    first_item = serializers.IntegerField()
    last_item = serializers.IntegerField()
    attempts = serializers.IntegerField()
    lease_until = serializers.DateTimeField(allow_null=True)
    lease_seconds_left = serializers.FloatField(
        allow_null=True, help_text="Negative: the claimer seems gone; the sweeper re-queues it."
    )


class ChunkStatusSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    done = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Given up after max_attempts claims.")
    cancelled = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    waiting = WaitingChunkSerializer(
        many=True, help_text="Running chunks on a retry or waiting for a dead claim's lease."
    )


class BatchJobSerializer(serializers.ModelSerializer):
    need = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    progress = ProgressSerializer(read_only=True)
    chunks = serializers.SerializerMethodField()
    results_csv = serializers.SerializerMethodField()
    results_jsonl = serializers.SerializerMethodField()

    class Meta:
        model = BatchJob
        fields = [
            "id",
            "need",
            "source",
            "filename",
            "status",
            "total_items",
            "done_items",
            "progress",
            "chunks",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "results_csv",
            "results_jsonl",
        ]

    @extend_schema_field(ChunkStatusSerializer)
    def get_chunks(self, obj) -> dict:
        return ChunkStatusSerializer(selectors.batch_chunk_status(job=obj)).data

    def get_results_csv(self, obj) -> str:
        return f"/api/v1/batch-jobs/{obj.pk}/results?format=csv"

    def get_results_jsonl(self, obj) -> str:
        return f"/api/v1/batch-jobs/{obj.pk}/results?format=jsonl"


class BatchCreateUploadSerializer(serializers.Serializer):
    need = serializers.SlugField(help_text="The need whose model tags the file.")
    file = serializers.FileField(
        help_text='CSV with a header `id,text`, or JSONL with one {"id", "text"} per line; '
        "UTF-8, at most UPLOAD_MAX_BYTES, ids unique within the file."
    )


class BatchCreateItemsSerializer(serializers.Serializer):
    need = serializers.SlugField()
    item_ids = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="External ids of stored items."
    )
    since = serializers.DateTimeField(
        required=False, help_text="Or: every stored item of the need received since then."
    )


class WebhookSettingsSerializer(serializers.Serializer):
    url = serializers.URLField(
        max_length=200, allow_blank=True, help_text='Where stream results are POSTed; "" = none.'
    )
    has_secret = serializers.BooleanField(
        read_only=True, help_text="Whether deliveries are signed (the secret is never shown)."
    )


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The new HMAC-SHA256 signing secret. Shown in this response only; store it now.",
    )


class WebhookTestSerializer(serializers.Serializer):
    delivered = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)
