"""Shapes of project records in the API. Input serializers bound every field (Schemathesis)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from records.models import SINGLE_KINDS, Milestone, ProblemStatus, Section, SectionRevision
from records.services import MAX_BODY, MAX_TAG, MAX_TAGS, MAX_TITLE

INT64_MAX = 2**63 - 1
ITEM_KINDS = ("problem", "lesson", "retrospective")


class SectionSerializer(serializers.ModelSerializer):
    labels = serializers.SerializerMethodField()
    label = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)
    updated_by = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = Section
        fields = [
            "id",
            "kind",
            "title",
            "body",
            "revision",
            "status",
            "model_version",
            "label",
            "case",
            "labels",
            "tags",
            "shareable",
            "milestone",
            "since",
            "resolved_at",
            "created_by",
            "created_at",
            "updated_by",
            "updated_at",
        ]
        read_only_fields = fields

    def get_labels(self, obj: Section) -> list[str]:
        return [label.key for label in obj.labels.all()]

    def get_updated_by(self, obj: Section) -> str | None:
        return obj.updated_by.get_username() if obj.updated_by_id else None

    def get_created_by(self, obj: Section) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None


class RevisionSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()

    class Meta:
        model = SectionRevision
        fields = ["number", "title", "body", "diff", "author", "at"]
        read_only_fields = fields

    def get_author(self, obj: SectionRevision) -> str | None:
        return obj.author.get_username() if obj.author_id else None


class TimelineEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField()
    title = serializers.CharField()
    detail = serializers.CharField(allow_blank=True)
    url = serializers.CharField(help_text="The page (or API resource) of the object.")
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    actor = serializers.CharField(allow_blank=True)
    metrics = serializers.DictField(child=serializers.JSONField())


class RecordSummarySerializer(serializers.Serializer):
    need = serializers.CharField(source="slug")
    name = serializers.CharField()
    status = serializers.CharField()
    sections = serializers.IntegerField(source="n_sections")
    open_problems = serializers.IntegerField()
    has_retrospective = serializers.BooleanField()
    updated_at = serializers.SerializerMethodField()

    def get_updated_at(self, need) -> str | None:
        record = getattr(need, "project_record", None)
        return record.updated_at.isoformat() if record else None


class RecordSerializer(serializers.Serializer):
    need = serializers.CharField(source="need.slug")
    name = serializers.CharField(source="need.name")
    goal = serializers.CharField(source="need.goal")
    status = serializers.CharField(source="need.status")
    sections = serializers.SerializerMethodField()
    problems = SectionSerializer(many=True)
    lessons = SectionSerializer(many=True)
    retrospectives = SectionSerializer(many=True)
    timeline = TimelineEntrySerializer(many=True)

    @extend_schema_field(serializers.DictField(child=SectionSerializer(allow_null=True)))
    def get_sections(self, view) -> dict:
        return {
            kind: SectionSerializer(section).data if section else None
            for kind, _, section in view.singles
        }


class SectionWriteSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=MAX_BODY, allow_blank=True, trim_whitespace=False)
    base_revision = serializers.IntegerField(
        min_value=0, max_value=10**9, help_text="The revision you edited; 0 for a new section."
    )


class ItemCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ITEM_KINDS)
    title = serializers.CharField(max_length=MAX_TITLE)
    body = serializers.CharField(
        max_length=MAX_BODY, allow_blank=True, required=False, default="", trim_whitespace=False
    )
    status = serializers.ChoiceField(choices=ProblemStatus.choices, required=False)
    model_version = serializers.IntegerField(
        min_value=1, max_value=INT64_MAX, required=False, allow_null=True
    )
    label = serializers.CharField(max_length=200, required=False, allow_blank=True)
    case = serializers.IntegerField(
        min_value=1, max_value=INT64_MAX, required=False, allow_null=True
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=50, required=False
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=MAX_TAG), max_length=MAX_TAGS, required=False
    )
    shareable = serializers.BooleanField(required=False)
    milestone = serializers.ChoiceField(choices=Milestone.choices, required=False)


class ItemUpdateSerializer(ItemCreateSerializer):
    kind = None  # type: ignore[assignment]
    title = serializers.CharField(max_length=MAX_TITLE, required=False)
    body = serializers.CharField(
        max_length=MAX_BODY, allow_blank=True, required=False, trim_whitespace=False
    )
    base_revision = serializers.IntegerField(min_value=1, max_value=10**9)


class SearchHitSerializer(serializers.Serializer):
    need = serializers.CharField(source="need.slug")
    kind = serializers.CharField()
    section = serializers.IntegerField(source="section.pk", allow_null=True, default=None)
    title = serializers.CharField()
    excerpt = serializers.CharField(allow_blank=True)


class LessonSerializer(serializers.Serializer):
    title = serializers.CharField(source="lesson.title")
    body = serializers.CharField(source="lesson.body")
    labels = serializers.ListField(child=serializers.CharField())
    tags = serializers.ListField(child=serializers.CharField(), source="lesson.tags")
    own = serializers.BooleanField(help_text="From one of your own records (else shared).")
    need = serializers.CharField(source="need.slug", allow_null=True, default=None)


class DraftSerializer(serializers.Serializer):
    title = serializers.CharField()
    body = serializers.CharField()
    since = serializers.DateTimeField()
    milestone = serializers.CharField()
    metrics = serializers.ListField(child=serializers.DictField())


SINGLE_KIND_VALUES = [k.value for k in SINGLE_KINDS]
