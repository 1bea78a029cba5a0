from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from taxonomy.models import (
    Label,
    LabelChange,
    LabelProposal,
    LabelSet,
    LabelSetKind,
    LabelSetRevision,
)


class LabelSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)
    replaced_by = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)

    class Meta:
        model = Label
        fields = [
            "key",
            "parent",
            "name_en",
            "name_zh",
            "description",
            "aliases",
            "status",
            "replaced_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class LabelTreeNodeSerializer(serializers.Serializer):
    key = serializers.CharField()
    name_en = serializers.CharField()
    name_zh = serializers.CharField()
    status = serializers.CharField()
    children = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_children(self, node: dict) -> list[dict]:
        return [LabelTreeNodeSerializer(child).data for child in node["children"]]

    def to_representation(self, node: dict) -> dict:
        label = node["label"]
        return {
            "key": label.key,
            "name_en": label.name_en,
            "name_zh": label.name_zh,
            "status": label.status,
            "children": self.get_children(node),
        }


class LabelCreateSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=200)
    parent = serializers.SlugRelatedField(
        slug_field="key", queryset=Label.objects.all(), required=False, allow_null=True
    )
    name_en = serializers.CharField(max_length=200)
    name_zh = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    aliases = serializers.ListField(child=serializers.CharField(max_length=200), required=False)


class LabelUpdateSerializer(serializers.Serializer):
    """Names, description and aliases; `parent` moves the label (its key never changes)."""

    parent = serializers.SlugRelatedField(
        slug_field="key", queryset=Label.objects.all(), required=False, allow_null=True
    )
    name_en = serializers.CharField(max_length=200, required=False)
    name_zh = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    aliases = serializers.ListField(child=serializers.CharField(max_length=200), required=False)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True)


class LabelDeprecateSerializer(serializers.Serializer):
    replaced_by = serializers.SlugRelatedField(
        slug_field="key", queryset=Label.objects.all(), required=False, allow_null=True
    )
    note = serializers.CharField(max_length=300, required=False, allow_blank=True)


class LabelMergeSerializer(serializers.Serializer):
    target = serializers.SlugRelatedField(slug_field="key", queryset=Label.objects.all())
    note = serializers.CharField(max_length=300, required=False, allow_blank=True)


class LabelChangeSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = LabelChange
        fields = ["label_key", "action", "actor", "at", "before", "after", "note"]
        read_only_fields = fields


class LabelSetRevisionSerializer(serializers.ModelSerializer):
    labels = serializers.SerializerMethodField()

    class Meta:
        model = LabelSetRevision
        fields = ["number", "labels", "note", "created_at"]
        read_only_fields = fields

    def get_labels(self, revision: LabelSetRevision) -> list[str]:
        return revision.label_keys()


class LabelSetSerializer(serializers.ModelSerializer):
    owner = serializers.SerializerMethodField()
    kind = serializers.ChoiceField(choices=LabelSetKind.choices)
    current_revision = serializers.SerializerMethodField()

    class Meta:
        model = LabelSet
        fields = ["slug", "name", "description", "kind", "owner", "current_revision", "created_at"]
        read_only_fields = fields

    def get_owner(self, label_set: LabelSet) -> str:
        """`shared` for platform-owned sets, else the owning tenant's slug."""
        return label_set.tenant.slug if label_set.tenant_id else "shared"

    @extend_schema_field(LabelSetRevisionSerializer(allow_null=True))
    def get_current_revision(self, label_set: LabelSet) -> dict | None:
        revision = label_set.current_revision
        return LabelSetRevisionSerializer(revision).data if revision else None


class ReuseRequestSerializer(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.CharField(max_length=200),
        min_length=1,
        max_length=200,
        help_text="Label keys, English or Chinese names, or aliases.",
    )


class CollapsedClassSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="The one class several of your labels come back as.")
    name = serializers.CharField()
    requested = serializers.ListField(child=serializers.CharField())


class OverlapSerializer(serializers.Serializer):
    score = serializers.FloatField()
    coverage = serializers.FloatField()
    jaccard = serializers.FloatField()
    matched = serializers.ListField(child=serializers.CharField())
    partial = serializers.ListField(child=serializers.CharField())
    missing = serializers.ListField(child=serializers.CharField())
    extra = serializers.ListField(child=serializers.CharField())
    distinct = serializers.IntegerField(
        help_text="How many distinct classes your labels land on: what it can tell apart."
    )
    requested = serializers.IntegerField(help_text="How many labels you asked for.")
    lands_on = serializers.DictField(
        child=serializers.CharField(), help_text="Your label -> the class it comes back as."
    )
    collapsed = CollapsedClassSerializer(many=True)
    fits = serializers.BooleanField(
        help_text="Every label you asked for comes back as a class of its own."
    )
    reasons = serializers.ListField(child=serializers.CharField())


class LabelSetSuggestionSerializer(serializers.Serializer):
    label_set = serializers.CharField(source="label_set.slug")
    name = serializers.CharField(source="label_set.name")
    owner = serializers.SerializerMethodField()
    revision = serializers.IntegerField(source="revision.number")
    overlap = OverlapSerializer()

    def get_owner(self, row: dict) -> str:
        return row["label_set"].tenant.slug if row["label_set"].tenant_id else "shared"


class LabelQualitySerializer(serializers.Serializer):
    label = serializers.CharField()
    model_label = serializers.CharField(allow_null=True)
    f1 = serializers.FloatField(allow_null=True)
    how = serializers.ChoiceField(choices=["exact", "coarser", "shared", "missing"])


class QualitySerializer(serializers.Serializer):
    macro_f1 = serializers.FloatField(
        allow_null=True,
        help_text="Held-out F1 averaged over the labels you asked for (0 for a label it cannot "
        "tell apart or lacks); never the model's overall F1.",
    )
    labels = LabelQualitySerializer(many=True)


class ModelSuggestionSerializer(serializers.Serializer):
    model = serializers.CharField(source="model.name")
    label_set = serializers.CharField(source="model.label_set.slug")
    owner = serializers.SerializerMethodField()
    version = serializers.IntegerField(source="version.version")
    overlap = OverlapSerializer()
    quality = QualitySerializer()
    offered = serializers.BooleanField(
        source="model.offered", help_text="Its owning unit offers it to other units."
    )
    offer_description = serializers.CharField(source="model.offer_description")

    def get_owner(self, row: dict) -> str:
        return row["model"].tenant.slug if row["model"].tenant_id else "shared"


class ReuseSuggestionsSerializer(serializers.Serializer):
    resolved = serializers.DictField(
        child=serializers.CharField(), help_text="What you typed -> the label key it matched."
    )
    unknown = serializers.ListField(child=serializers.CharField())
    label_sets = LabelSetSuggestionSerializer(many=True)
    models = ModelSuggestionSerializer(many=True)

    def to_representation(self, suggestions) -> dict:
        return {
            "resolved": suggestions.resolution.matched,
            "unknown": suggestions.resolution.unknown,
            "label_sets": LabelSetSuggestionSerializer(suggestions.label_sets, many=True).data,
            "models": ModelSuggestionSerializer(suggestions.models, many=True).data,
        }


class LabelSetCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=80)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    kind = serializers.ChoiceField(choices=LabelSetKind.choices, default=LabelSetKind.MULTICLASS)
    labels = serializers.ListField(
        child=serializers.CharField(max_length=200),
        min_length=1,
        max_length=500,
        help_text="Taxonomy label keys, in the order the set shows them.",
    )


class LabelSetReviseSerializer(serializers.Serializer):
    """Any change makes a new revision; models stay pinned to the revision they trained on."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=LabelSetKind.choices, required=False)
    labels = serializers.ListField(
        child=serializers.CharField(max_length=200), min_length=1, max_length=500, required=False
    )
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class LabelProposalSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)
    proposed_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    decided_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    label = serializers.SlugRelatedField(slug_field="key", read_only=True, allow_null=True)

    class Meta:
        model = LabelProposal
        fields = [
            "id", "key", "parent", "name_en", "name_zh", "description", "aliases", "reason",
            "status", "proposed_by", "created_at", "decided_by", "decided_at", "decision_note",
            "label",
        ]  # fmt: skip
        read_only_fields = fields


class LabelProposalCreateSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=200)
    parent = serializers.SlugRelatedField(
        slug_field="key", queryset=Label.objects.all(), required=False, allow_null=True
    )
    name_en = serializers.CharField(max_length=200)
    name_zh = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50
    )
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
