"""REST API of the registry: models, versions, model cards, compare, training runs, uploads.

Tenants see shared models and their own. Reads need the `read` key scope (or any membership);
training runs and uploads need a tenant admin (or a key with the `batch` scope); aliases move only
for a person: a tenant admin on the tenant's own models, platform staff on shared ones.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from core.edge import INT64_MAX, db_int_bounds, query_int
from core.errors import DomainError
from core.scoping import TenantScopedAPIView, TenantScopedGenericAPIView, TenantScopedViewSet
from registry import model_card, selectors
from registry.errors import ROW_ERRORS_SHOWN, DatasetImportError, RegistryError
from registry.models import (
    Algorithm,
    AliasEvent,
    AliasName,
    DatasetSnapshot,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
)
from registry.services.aliases import alias_rollback, alias_set
from registry.services.datasets import current_revision, dataset_file_upload, snapshot_create
from registry.services.offers import model_offer, model_offer_withdraw
from registry.services.training import training_run_create
from registry.services.versions import versions_compare
from taxonomy.models import LabelSet
from taxonomy.selectors import visible_label_set
from taxonomy.serializers import ReuseRequestSerializer, ReuseSuggestionsSerializer
from tenants import services as need_services
from tenants.models import ApiKeyScope, Need, Role
from tenants.serializers import NeedModelUpdateSerializer, NeedSerializer, SubscribeSerializer


def _api_error(exc: RegistryError, *, max_errors: int = ROW_ERRORS_SHOWN) -> DomainError:
    if isinstance(exc, DatasetImportError):
        return DomainError(
            exc.code,
            exc.message,
            status_code=exc.status_code,
            fields=exc.report(limit=max_errors),
        )
    return DomainError(exc.code, exc.message, status_code=exc.status_code)


# --- Serializers -----------------------------------------------------------------------------
class AliasSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.version")
    version_id = serializers.IntegerField()

    class Meta:
        model = ModelAlias
        fields = ["name", "version", "version_id", "updated_at"]


class RegisteredModelSerializer(serializers.ModelSerializer):
    owner = serializers.SerializerMethodField()
    label_set = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    aliases = AliasSerializer(many=True, read_only=True)

    class Meta:
        model = RegisteredModel
        fields = [
            "id",
            "name",
            "owner",
            "label_set",
            "algorithm",
            "description",
            "aliases",
            "offered",
            "offer_description",
            "offer_ends_at",
            "created_at",
        ]

    def get_owner(self, obj) -> str:
        return obj.tenant.slug if obj.tenant_id else "platform"


class OfferSerializer(serializers.Serializer):
    description = serializers.CharField(
        max_length=2000, help_text="What the model answers, for which texts, how well."
    )


class WithdrawOfferSerializer(serializers.Serializer):
    keep_until = serializers.DateTimeField(
        help_text="Needs of other units already on the model keep it until then "
        "(one day to one year ahead)."
    )


class OfferStateSerializer(serializers.ModelSerializer):
    class Meta:
        model = RegisteredModel
        fields = [
            "id",
            "name",
            "offered",
            "offer_description",
            "offered_at",
            "offer_withdrawn_at",
            "offer_ends_at",
        ]


class SubscriptionSerializer(serializers.Serializer):
    tenant = serializers.CharField()
    tenant_name = serializers.CharField()
    need = serializers.CharField()
    need_name = serializers.CharField()
    status = serializers.CharField()
    since = serializers.DateTimeField()
    own = serializers.BooleanField(help_text="One of your own needs.")


class VersionSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name")
    registered_model_id = serializers.IntegerField()
    snapshot = serializers.CharField(source="snapshot.content_hash")
    parent = serializers.SerializerMethodField()
    created_by = serializers.CharField(
        source="created_by.username", default=None, allow_null=True, read_only=True
    )
    card_url = serializers.SerializerMethodField()
    training_run_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id", "registered_model", "registered_model_id", "version", "status",
            "artifact_sha256", "artifact_size", "artifact_format", "python_version",
            "sklearn_version", "algorithm", "params", "snapshot", "metrics", "latency_p50_ms",
            "latency_p99_ms", "throughput_docs_per_s", "parent", "training_run_id",
            "created_by", "created_at", "notes", "card_url",
        ]  # fmt: skip

    def get_parent(self, obj) -> int | None:
        return obj.parent.version if obj.parent_id else None

    def get_card_url(self, obj) -> str:
        return f"/api/v1/versions/{obj.pk}/card/"


class AliasEventSerializer(serializers.ModelSerializer):
    from_version = serializers.IntegerField(
        source="from_version.version", default=None, allow_null=True, read_only=True
    )
    to_version = serializers.IntegerField(source="to_version.version", read_only=True)
    actor = serializers.CharField(
        source="actor.username", default=None, allow_null=True, read_only=True
    )

    class Meta:
        model = AliasEvent
        fields = ["alias", "action", "from_version", "to_version", "actor", "reason", "at"]


class TrainingRunSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name")
    snapshot = serializers.CharField(source="snapshot.content_hash")
    version = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id", "registered_model", "registered_model_id", "snapshot", "algorithm", "params",
            "status", "progress", "log", "error", "promote_to", "refit_on_all", "created_at",
            "started_at", "finished_at", "duration_seconds", "version",
        ]  # fmt: skip

    def get_version(self, obj) -> int | None:
        version = getattr(obj, "model_version", None)
        return version.version if version else None


class TrainingRunCreateSerializer(serializers.Serializer):
    need = serializers.SlugField(required=False, help_text="Slug of one of your needs.")
    label_set = serializers.SlugField(required=False, help_text="Slug of a visible label set.")
    algorithm = serializers.ChoiceField(choices=Algorithm.choices, default=Algorithm.TFIDF_LOGREG)
    params = serializers.DictField(required=False, default=dict)
    seed = serializers.IntegerField(
        required=False, default=42, **db_int_bounds(DatasetSnapshot, "seed")
    )
    test_fraction = serializers.FloatField(
        required=False, default=0.2, min_value=0.05, max_value=0.5
    )
    promote_to = serializers.ChoiceField(
        choices=AliasName.choices, required=False, allow_blank=True, default=""
    )
    shared = serializers.BooleanField(
        required=False, default=False, help_text="Staff only: train a platform-owned model."
    )
    snapshot = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="Train on this snapshot (its content hash, from /snapshots/) instead of a new "
        "one; seed and test_fraction are then the snapshot's.",
    )
    refit_on_all = serializers.BooleanField(
        required=False,
        default=True,
        help_text="After the held-out evaluation, refit the same configuration on all the "
        "snapshot's data (train + test) and serve that artifact.",
    )

    def validate(self, attrs):
        if bool(attrs.get("need")) == bool(attrs.get("label_set")):
            raise serializers.ValidationError({"need": _("Give exactly one of need or label_set.")})
        return attrs


class AliasMoveSerializer(serializers.Serializer):
    alias = serializers.ChoiceField(choices=AliasName.choices, default=AliasName.PRODUCTION)
    version = serializers.IntegerField(
        required=False, **{**db_int_bounds(ModelVersion, "version"), "min_value": 1}
    )
    reason = serializers.CharField(required=False, default="", max_length=300, allow_blank=True)


class UploadSerializer(serializers.Serializer):
    label_set = serializers.SlugField(
        required=False, help_text="Slug of a visible label set (or give `need`)."
    )
    need = serializers.SlugField(
        required=False,
        help_text="Slug of one of your needs: its label set, and its own label names resolve.",
    )
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=["", "csv", "jsonl"], required=False, default="")
    max_errors = serializers.IntegerField(
        required=False,
        default=ROW_ERRORS_SHOWN,
        min_value=1,
        max_value=1000,
        help_text="How many row errors a rejected upload lists (counts per kind cover all).",
    )

    def validate(self, attrs):
        if not attrs.get("label_set") and not attrs.get("need"):
            raise serializers.ValidationError({"label_set": _("Give a label_set or a need.")})
        return attrs


# --- Views -----------------------------------------------------------------------------------
class RegisteredModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Registered models you can use: shared ones and your own."""

    lookup_value_converter = "int"

    serializer_class = RegisteredModelSerializer
    # Writes here are alias moves, checked per model in `_check_manage` (staff or owner admin).
    write_role = Role.VIEWER
    # Staff who belong to no tenant still manage the shared models (README: promote/rollback).
    allow_platform_staff = True

    def scoped_queryset(self):
        return RegisteredModel.objects.select_related("label_set", "tenant").prefetch_related(
            "aliases__version"
        )

    def _check_manage(self, model: RegisteredModel) -> None:
        if self.acting_user is None:
            raise DomainError(
                "person_required",
                _("Aliases are moved by a person, not an API key."),
                status_code=403,
            )
        if not selectors.can_manage_model(
            user=self.acting_user, membership=self.membership, registered_model=model
        ):
            who = (
                "platform staff" if model.tenant_id is None else f"an admin of {model.tenant.slug}"
            )
            raise DomainError(
                "permission_denied",
                _("Only %(who)s may move this model's aliases.") % {"who": who},
                status_code=403,
            )

    @extend_schema(responses=VersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request, pk=None):
        model = self.get_object()
        versions = (
            selectors.versions_for_tenant(self.tenant)
            if self.tenant is not None
            else selectors.shared_versions()
        ).filter(registered_model=model)
        return Response(VersionSerializer(versions, many=True).data)

    def _check_owner_admin(self, model: RegisteredModel) -> None:
        """Offers are a person's decision, by an admin of the model's owning unit."""
        if self.acting_user is None:
            raise DomainError(
                "person_required",
                _("A model is offered by a person, not an API key."),
                status_code=403,
            )
        if model.tenant_id is None or self.tenant is None or model.tenant_id != self.tenant.pk:
            raise DomainError(
                "not_own_model",
                _("Only a unit's own models can be offered by it."),
                status_code=403,
            )
        if not selectors.can_manage_model(
            user=self.acting_user, membership=self.membership, registered_model=model
        ):
            raise DomainError(
                "permission_denied",
                _("Only an admin of %(tenant_slug)s may do this.")
                % {"tenant_slug": model.tenant.slug},
                status_code=403,
            )

    @extend_schema(
        summary="Offer your own model to other units (they get its answers, never its data)",
        request=OfferSerializer,
        responses=OfferStateSerializer,
    )
    @action(detail=True, methods=["post"])
    def offer(self, request, pk=None):
        model = self.get_object()
        self._check_owner_admin(model)
        body = OfferSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            model = model_offer(
                registered_model=model,
                tenant=self.tenant,
                description=body.validated_data["description"],
            )
        except RegistryError as exc:
            raise _api_error(exc) from exc
        return Response(OfferStateSerializer(model).data)

    @extend_schema(
        summary="Withdraw the offer; other units' needs keep the model until keep_until",
        request=WithdrawOfferSerializer,
        responses=OfferStateSerializer,
    )
    @action(detail=True, methods=["post"], url_path="withdraw-offer")
    def withdraw_offer(self, request, pk=None):
        model = self.get_object()
        self._check_owner_admin(model)
        body = WithdrawOfferSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            model = model_offer_withdraw(
                registered_model=model,
                tenant=self.tenant,
                keep_until=body.validated_data["keep_until"],
            )
        except RegistryError as exc:
            raise _api_error(exc) from exc
        return Response(OfferStateSerializer(model).data)

    @extend_schema(
        summary="Every need served by your model: yours and other units' subscriptions",
        responses=SubscriptionSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def subscriptions(self, request, pk=None):
        model = self.get_object()
        if model.tenant_id is None or self.tenant is None or model.tenant_id != self.tenant.pk:
            raise DomainError(
                "not_own_model",
                _("Only the owning unit sees a model's subscriptions."),
                status_code=403,
            )
        rows = selectors.model_subscriptions(registered_model=model, tenant=self.tenant)
        return Response(SubscriptionSerializer(rows, many=True).data)

    @extend_schema(responses=AliasEventSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="alias-events", pagination_class=None)
    def alias_events(self, request, pk=None):
        model = self.get_object()
        return Response(AliasEventSerializer(selectors.alias_history(model), many=True).data)

    @action(detail=True, methods=["post"], serializer_class=AliasMoveSerializer)
    def promote(self, request, pk=None):
        """Point an alias (production/candidate) at a version number of this model."""
        model = self.get_object()
        self._check_manage(model)
        body = AliasMoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if not body.validated_data.get("version"):
            raise serializers.ValidationError({"version": _("This field is required.")})
        version = get_object_or_404(model.versions, version=body.validated_data["version"])
        try:
            alias = alias_set(
                registered_model=model,
                alias=body.validated_data["alias"],
                version=version,
                actor=self.acting_user,
                reason=body.validated_data["reason"],
            )
        except RegistryError as exc:
            raise _api_error(exc) from exc
        return Response(AliasSerializer(alias).data)

    @action(detail=True, methods=["post"], serializer_class=AliasMoveSerializer)
    def rollback(self, request, pk=None):
        """Move an alias back to the version it pointed at before the current one."""
        model = self.get_object()
        self._check_manage(model)
        body = AliasMoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            alias = alias_rollback(
                registered_model=model,
                alias=body.validated_data["alias"],
                actor=self.acting_user,
                reason=body.validated_data["reason"],
            )
        except RegistryError as exc:
            raise _api_error(exc) from exc
        return Response(AliasSerializer(alias).data)


class VersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Model versions of models you can use; `?model=<id>` filters one model."""

    lookup_value_converter = "int"

    serializer_class = VersionSerializer

    def scoped_queryset(self):
        queryset = ModelVersion.objects.select_related(
            "registered_model", "snapshot", "parent", "created_by"
        )
        model = query_int(
            self.request.query_params.get("model"), name="model", minimum=1, maximum=INT64_MAX
        )
        if model is not None:
            queryset = queryset.filter(registered_model_id=model)
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("model", int, description="Only this registered model's")]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], pagination_class=None)
    def card(self, request, pk=None):
        """The model card as Markdown (download)."""
        version = self.get_object()
        text = model_card.card_markdown(version, viewer_tenant=self.tenant)
        response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
        filename = f"{version.registered_model.name.replace('/', '_')}-v{version.version}.md"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter("a", int, required=True, description="A version id"),
            OpenApiParameter("b", int, required=True, description="Another version id"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def compare(self, request):
        """Re-evaluate versions `a` and `b` (ids) on one test set (b's snapshot by default)."""
        ids = {}
        for key in ("a", "b"):
            value = query_int(request.query_params.get(key), name=key, minimum=1, maximum=INT64_MAX)
            if value is None:
                raise serializers.ValidationError({key: _("Give a version id.")})
            ids[key] = value
        a = get_object_or_404(self.get_queryset(), pk=ids["a"])
        b = get_object_or_404(self.get_queryset(), pk=ids["b"])
        try:
            return Response(versions_compare(a=a, b=b))
        except RegistryError as exc:
            raise _api_error(exc) from exc


class TrainingRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantScopedViewSet
):
    """Training runs: read progress; create one for a need or a label set."""

    lookup_value_converter = "int"

    serializer_class = TrainingRunSerializer
    write_role = Role.ADMIN
    write_scope = ApiKeyScope.BATCH
    # Staff who name no tenant see and train shared models (as they promote them); with
    # `X-Tenant: <slug>` they act for that tenant (tenants.memberships.staff_membership_for).
    allow_platform_staff = True

    def scoped_queryset(self):
        return TrainingRun.objects.select_related("registered_model", "snapshot", "model_version")

    def get_serializer_class(self):
        return TrainingRunCreateSerializer if self.action == "create" else TrainingRunSerializer

    def create(self, request, *args, **kwargs):
        body = TrainingRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        kwargs = {
            "algorithm": data["algorithm"],
            "params": data["params"],
            "seed": data["seed"],
            "test_fraction": data["test_fraction"],
            "promote_to": data["promote_to"],
            "refit_on_all": data["refit_on_all"],
            "actor": self.acting_user,
        }
        if self.tenant is None and (data.get("need") or not data["shared"]):
            raise DomainError(
                "tenant_required",
                _(
                    "Name the tenant to act for (header X-Tenant: <slug>), or train a shared model "
                    "(shared: true)."
                ),
                status_code=400,
            )
        owner = self.tenant
        if data.get("need"):
            kwargs["need"] = get_object_or_404(
                Need.objects.for_tenant(self.tenant), slug=data["need"]
            )
        else:
            label_set = (
                visible_label_set(tenant=self.tenant, slug=data["label_set"])
                if self.tenant is not None
                else LabelSet.objects.shared_only().filter(slug=data["label_set"]).first()
            )
            if label_set is None:
                raise Http404
            if data["shared"]:
                if not getattr(self.acting_user, "is_staff", False):
                    raise DomainError(
                        "permission_denied", _("Only staff train shared models."), status_code=403
                    )
                owner = None
            kwargs.update(label_set=label_set, tenant=owner)
        if data.get("snapshot"):
            kwargs["snapshot"] = get_object_or_404(
                DatasetSnapshot.objects.owned_by(owner), content_hash=data["snapshot"]
            )
        try:
            run = training_run_create(**kwargs)
        except RegistryError as exc:
            raise _api_error(exc) from exc
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_201_CREATED)


class SnapshotSummarySerializer(serializers.Serializer):
    label = serializers.CharField()
    train = serializers.IntegerField()
    test = serializers.IntegerField()
    total = serializers.IntegerField()


class SnapshotSerializer(serializers.ModelSerializer):
    label_set = serializers.CharField(source="revision.label_set.slug")
    revision = serializers.IntegerField(source="revision.number")
    owner = serializers.SerializerMethodField()
    train = serializers.SerializerMethodField()
    test = serializers.SerializerMethodField()
    labels = serializers.SerializerMethodField()

    class Meta:
        model = DatasetSnapshot
        fields = [
            "content_hash", "label_set", "revision", "owner", "seed", "test_fraction",
            "split_strategy", "train", "test", "labels", "description", "created_at",
        ]  # fmt: skip

    def _summary(self, obj) -> dict:
        if not hasattr(obj, "_summary"):
            obj._summary = selectors.snapshot_summary(obj)
        return obj._summary

    def get_owner(self, obj) -> str:
        return obj.tenant.slug if obj.tenant_id else "platform"

    def get_train(self, obj) -> int:
        return len(obj.train_sample_ids)

    def get_test(self, obj) -> int:
        return len(obj.test_sample_ids)

    @extend_schema_field(SnapshotSummarySerializer(many=True))
    def get_labels(self, obj) -> list[dict]:
        """Samples per label in each split, in the label set's order."""
        return self._summary(obj)["labels"]


class SnapshotCreateSerializer(serializers.Serializer):
    need = serializers.SlugField(required=False, help_text="Slug of one of your needs.")
    label_set = serializers.SlugField(required=False, help_text="Slug of a visible label set.")
    seed = serializers.IntegerField(
        required=False, default=42, **db_int_bounds(DatasetSnapshot, "seed")
    )
    test_fraction = serializers.FloatField(
        required=False, default=0.2, min_value=0.05, max_value=0.5
    )
    use_origin_split = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Use the data's own test split where it has one (else a seeded stratified one).",
    )
    shared = serializers.BooleanField(
        required=False, default=False, help_text="Staff only: a snapshot of the shared data."
    )

    def validate(self, attrs):
        if bool(attrs.get("need")) == bool(attrs.get("label_set")):
            raise serializers.ValidationError({"need": _("Give exactly one of need or label_set.")})
        return attrs


class SnapshotViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantScopedViewSet
):
    """Dataset snapshots: freeze the current training data of a label set into a seeded
    train/test split, and see its split and label distribution before training on it."""

    serializer_class = SnapshotSerializer
    lookup_field = "content_hash"
    lookup_value_converter = "str"
    write_role = Role.ADMIN
    write_scope = ApiKeyScope.BATCH
    allow_platform_staff = True

    def scoped_queryset(self):
        # Training reads shared and own samples; the snapshots listed are the tenant's own.
        return DatasetSnapshot.objects.select_related("revision__label_set", "tenant")

    def filter_scoped_queryset(self, queryset):
        return queryset.filter(tenant=self.tenant) if self.tenant else queryset

    @extend_schema(
        summary="Make a snapshot (the same data and parameters give the same snapshot)",
        request=SnapshotCreateSerializer,
        responses={201: SnapshotSerializer},
    )
    def create(self, request, *args, **kwargs):
        body = SnapshotCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data["shared"] and not getattr(self.acting_user, "is_staff", False):
            raise DomainError(
                "permission_denied", _("Only staff snapshot shared data."), status_code=403
            )
        owner = None if data["shared"] else self.tenant
        if owner is None and not data["shared"]:
            raise DomainError(
                "tenant_required",
                _("Name the tenant to act for (header X-Tenant: <slug>), or set shared: true."),
                status_code=400,
            )
        if data.get("need"):
            if self.tenant is None:
                raise Http404
            need = get_object_or_404(Need.objects.for_tenant(self.tenant), slug=data["need"])
            if need.label_set_id is None:
                raise DomainError(
                    "need_has_no_label_set",
                    _("Need %(need_slug)s has no label set yet.") % {"need_slug": need.slug},
                    status_code=409,
                )
            label_set = need.label_set
        else:
            label_set = (
                visible_label_set(tenant=self.tenant, slug=data["label_set"])
                if self.tenant is not None
                else LabelSet.objects.shared_only().filter(slug=data["label_set"]).first()
            )
            if label_set is None:
                raise Http404
        try:
            snapshot = snapshot_create(
                revision=current_revision(label_set),
                tenant=owner,
                seed=data["seed"],
                test_fraction=data["test_fraction"],
                use_origin_split=data["use_origin_split"],
                actor=self.acting_user,
            )
        except RegistryError as exc:
            raise _api_error(exc) from exc
        return Response(SnapshotSerializer(snapshot).data, status=status.HTTP_201_CREATED)


class DatasetUploadView(TenantScopedGenericAPIView):
    """Upload training samples (CSV or JSONL) into a label set; all rows or none."""

    serializer_class = UploadSerializer
    parser_classes = [MultiPartParser, FormParser]
    write_role = Role.REVIEWER
    write_scope = ApiKeyScope.BATCH

    def scoped_queryset(self):
        return LabelSet.objects.all()

    def post(self, request):
        body = UploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        need = None
        if data.get("need"):
            need = get_object_or_404(Need.objects.for_tenant(self.tenant), slug=data["need"])
        try:
            _label_set, report = dataset_file_upload(
                tenant=self.tenant,
                label_set_slug=data.get("label_set") or "",
                need=need,
                upload=data["file"],
                fmt=data["format"] or None,
            )
        except RegistryError as exc:
            raise _api_error(exc, max_errors=data["max_errors"]) from exc
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)


class ReuseSuggestionsView(TenantScopedAPIView):
    """Reuse before rework: label sets and live models overlapping the labels you ask for."""

    # Read-only despite POST: a key with `read` and any member may ask.
    write_scope = ApiKeyScope.READ
    write_role = Role.VIEWER

    @extend_schema(
        summary="Existing label sets and live models for the labels you want, with overlap scores",
        request=ReuseRequestSerializer,
        responses=ReuseSuggestionsSerializer,
    )
    def post(self, request):
        body = ReuseRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        suggestions = selectors.reuse_suggestions(tenant=self.tenant, terms=data["labels"])
        return Response(ReuseSuggestionsSerializer(suggestions).data)


class NeedOfferViewSet(TenantScopedViewSet):
    """What the registry offers one of the caller's needs, under the need's URL: reuse
    suggestions for its labels, a newer model promoted for its label set, and serving it with an
    offered model. Writes need the `requester` role, or a key with the `needs` scope, as the
    need's own endpoints do."""

    serializer_class = NeedSerializer
    lookup_field = "slug"
    write_scope = ApiKeyScope.NEEDS
    write_role = Role.REQUESTER

    def scoped_queryset(self):
        return Need.objects.select_related("label_set", "model").with_labels().order_by("slug")

    @extend_schema(
        summary="Serve this need with an existing shared (or your own) live model",
        request=SubscribeSerializer,
        responses=NeedSerializer,
    )
    @action(detail=True, methods=["post"])
    def subscribe(self, request, slug=None):
        need = self.get_object()
        serializer = SubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = (
            selectors.offered_models(tenant=self.tenant)
            .filter(name=serializer.validated_data["model"])
            .first()
        )
        if model is None:
            raise ValidationError({"model": [_("Unknown model, or it has no production version.")]})
        need = need_services.need_subscribe_model(
            need=need,
            model=model,
            actor=self.actor,
            accept_shortfall=serializer.validated_data["accept_shortfall"],
        )
        return Response(NeedSerializer(need).data)

    @extend_schema(
        summary="Was another model promoted for this need's label set? (follow or keep)",
        responses=NeedModelUpdateSerializer,
    )
    @action(detail=True, methods=["get"], url_path="model-update")
    def model_update(self, request, slug=None):
        need = self.get_object()
        update = None if need.status == "retired" else selectors.newer_model_for(need)
        model = need.model
        withdrawn = (
            model is not None
            and model.tenant_id not in (None, need.tenant_id)
            and not model.offered
            and model.offer_ends_at is not None
        )
        return Response(
            NeedModelUpdateSerializer(
                {
                    "current_model": model.name if model else None,
                    "offer_ends_at": model.offer_ends_at if withdrawn else None,
                    "model_update": update,
                }
            ).data
        )

    @extend_schema(
        summary="Reuse suggestions for this need's labels", responses=ReuseSuggestionsSerializer
    )
    @action(detail=True, methods=["get"])
    def suggestions(self, request, slug=None):
        need = self.get_object()
        terms = need.wanted_label_keys()
        result = selectors.reuse_suggestions(tenant=self.tenant, terms=terms)
        return Response(ReuseSuggestionsSerializer(result).data)
