from __future__ import annotations

from rest_framework import serializers

from core.edge import db_int_bounds
from taxonomy.models import LabelSet
from tenants.models import (
    NEED_EDITABLE_FIELDS,
    ApiKey,
    ApiKeyScope,
    Delivery,
    Execution,
    Membership,
    Need,
    NeedStatusChange,
    Role,
    Tenant,
)


class NeedSerializer(serializers.ModelSerializer):
    label_set = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    model = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    delivery = serializers.ListField(child=serializers.ChoiceField(choices=Delivery.choices))
    # NeedLabel rows, shown in the shapes the API has always had (Need's properties).
    requested_labels = serializers.JSONField(read_only=True)
    label_mapping = serializers.JSONField(read_only=True)
    per_label_thresholds = serializers.JSONField(read_only=True)

    class Meta:
        model = Need
        fields = [
            "slug",
            *NEED_EDITABLE_FIELDS,
            "status",
            "model",
            "model_alias",
            "created_at",
            "updated_at",
            "approved_at",
        ]
        read_only_fields = fields


class ModelUpdateSerializer(serializers.Serializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.version")
    promoted_at = serializers.DateTimeField()


class NeedModelUpdateSerializer(serializers.Serializer):
    current_model = serializers.CharField(allow_null=True)
    offer_ends_at = serializers.DateTimeField(
        allow_null=True,
        help_text="Set when the current model is another unit's and its offer was withdrawn: "
        "the need keeps it until then.",
    )
    model_update = ModelUpdateSerializer(
        allow_null=True,
        help_text="A model promoted for this need's label set after the need chose its model: "
        "follow it with POST subscribe {model}, or keep the current one with POST keep-model.",
    )


class NeedWriteSerializer(serializers.Serializer):
    """Field types only; the domain rules (labels known, mapping inside the set…) are services'."""

    # `slug` and NEED_EDITABLE_FIELDS, no more and no fewer (a test holds them to it).
    slug = serializers.SlugField(max_length=80, required=False)
    name = serializers.CharField(max_length=200)
    goal = serializers.CharField(max_length=300, required=False, allow_blank=True)
    label_set = serializers.SlugRelatedField(
        slug_field="slug", queryset=LabelSet.objects.none(), required=False, allow_null=True
    )
    requested_labels = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Label keys, names (en/zh) or aliases, when no existing label set fits.",
    )
    label_mapping = serializers.DictField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Your own label names -> global label keys.",
    )
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    per_label_thresholds = serializers.DictField(
        child=serializers.FloatField(min_value=0.0, max_value=1.0), required=False
    )
    top_k = serializers.IntegerField(
        required=False, **{**db_int_bounds(Need, "top_k"), "min_value": 1}
    )
    delivery = serializers.ListField(
        child=serializers.ChoiceField(choices=Delivery.choices), required=False, min_length=1
    )
    latency_budget_ms = serializers.FloatField(min_value=0.001, required=False, allow_null=True)
    size_budget_kb = serializers.IntegerField(
        required=False, allow_null=True, **{**db_int_bounds(Need, "size_budget_kb"), "min_value": 1}
    )
    target_requests_per_s = serializers.FloatField(
        min_value=0.001, max_value=1_000_000, required=False, allow_null=True
    )
    execution = serializers.ChoiceField(choices=Execution.choices, required=False)

    def __init__(self, *args, tenant=None, **kwargs):
        super().__init__(*args, **kwargs)
        if tenant is not None:
            # Only label sets this tenant can see resolve; another tenant's slug is "not found".
            self.fields["label_set"].queryset = LabelSet.objects.for_tenant(tenant)


class NeedUpdateSerializer(NeedWriteSerializer):
    name = serializers.CharField(max_length=200, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.pop("slug")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", help_text="Why (audited)."
    )


class NeedStatusChangeSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = NeedStatusChange
        fields = ["from_status", "to_status", "actor", "api_key_prefix", "reason", "at"]
        read_only_fields = fields


class SubscribeSerializer(serializers.Serializer):
    model = serializers.CharField(
        max_length=200, help_text="The registered model's name, e.g. news-topics/tfidf-logreg."
    )
    accept_shortfall = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Subscribe even though the model cannot tell some of your labels apart or "
        "lacks some (the refusal lists which).",
    )


class ApiKeySerializer(serializers.ModelSerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKeyScope.choices))
    created_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    is_usable = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        # Never the hash: it is useless to clients and only helps an attacker.
        fields = [
            "prefix",
            "name",
            "scopes",
            "created_by",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "is_usable",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices), min_length=1
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(
        read_only=True, help_text="The plain key. Shown in this response only; store it now."
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            "contact_email",
            "is_active",
            "quota_requests_per_minute",
            "quota_max_batch_items",
            "alert_email",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        # PostgreSQL's range whatever the backend (SQLite would allow 64 bits).
        extra_kwargs = {
            "quota_requests_per_minute": db_int_bounds(Tenant, "quota_requests_per_minute"),
            "quota_max_batch_items": db_int_bounds(Tenant, "quota_max_batch_items"),
        }


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["username", "tenant", "role", "created_at"]
        read_only_fields = ["tenant", "created_at"]


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True, help_text="May be empty.")
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = Membership
        fields = ["username", "email", "role", "has_password", "created_at"]
        read_only_fields = fields

    def get_has_password(self, membership: Membership) -> bool:
        """False until the invited person has used their set-password link."""
        return membership.user.has_usable_password()


class MemberInviteSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)


class MemberInvitedSerializer(MemberSerializer):
    set_password_url = serializers.CharField(
        read_only=True,
        allow_blank=True,
        help_text="One-time link for a new user to set a password (shown in this response only); "
        "empty when an existing user was added.",
    )

    class Meta(MemberSerializer.Meta):
        fields = [*MemberSerializer.Meta.fields, "set_password_url"]
        read_only_fields = fields


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
