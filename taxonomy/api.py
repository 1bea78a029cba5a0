"""REST views for the taxonomy.

Labels are company-wide (no tenant), so their views are plain DRF views: any signed-in user or
API key with the `read` scope may read them; only platform staff (session) may change them.
Label sets can be tenant-owned, so their views derive from `TenantScopedViewSet`.
"""

from __future__ import annotations

from django.db.models import F
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from taxonomy import selectors, services
from taxonomy.models import Label, LabelSet, LabelStatus
from taxonomy.serializers import (
    LabelChangeSerializer,
    LabelCreateSerializer,
    LabelDeprecateSerializer,
    LabelMergeSerializer,
    LabelSerializer,
    LabelSetRevisionSerializer,
    LabelSetSerializer,
    LabelTreeNodeSerializer,
    LabelUpdateSerializer,
)
from tenants.authentication import ApiKeyUser
from tenants.models import ApiKeyScope
from tenants.scoping import TenantScopedViewSet


class TaxonomyPermission(permissions.BasePermission):
    """Read: any signed-in user, or an API key with `read`. Write: platform staff only."""

    message = "Only platform staff change the taxonomy."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return False
        if request.method in permissions.SAFE_METHODS:
            if isinstance(user, ApiKeyUser):
                return ApiKeyScope.READ in request.auth.scopes
            return True
        return bool(getattr(user, "is_staff", False)) and not isinstance(user, ApiKeyUser)


@extend_schema_view(
    list=extend_schema(
        summary="List or search labels",
        parameters=[
            OpenApiParameter("q", str, description="Search keys, names (en/zh) and aliases."),
            OpenApiParameter("status", str, enum=list(LabelStatus.values)),
        ],
    ),
    retrieve=extend_schema(summary="One label"),
    create=extend_schema(
        summary="Create a label (staff)", request=LabelCreateSerializer, responses=LabelSerializer
    ),
    partial_update=extend_schema(
        summary="Rename, describe, alias or move a label (staff)",
        request=LabelUpdateSerializer,
        responses=LabelSerializer,
    ),
    destroy=extend_schema(summary="Delete an unused label (staff); a label in use gets a 400"),
)
class LabelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Label.objects.select_related("parent", "replaced_by").order_by("key")
    serializer_class = LabelSerializer
    permission_classes = [TaxonomyPermission]
    lookup_field = "key"
    lookup_value_regex = r"[a-z0-9][a-z0-9._-]*"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        return selectors.label_list(
            query=self.request.query_params.get("q", ""),
            status=self.request.query_params.get("status") or None,
        ).order_by("key")

    def create(self, request, *args, **kwargs):
        data = _validated(LabelCreateSerializer, request.data)
        label = services.label_create(actor=request.user, **data)
        return Response(LabelSerializer(label).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, *args, **kwargs):
        label = self.get_object()
        data = _validated(LabelUpdateSerializer, request.data)
        note = data.pop("note", "")
        moving = "parent" in data
        new_parent = data.pop("parent", None)
        if moving:
            services.label_move(label=label, new_parent=new_parent, actor=request.user, note=note)
        if data:
            services.label_update(label=label, actor=request.user, note=note, **data)
        label.refresh_from_db()
        return Response(LabelSerializer(label).data)

    def perform_destroy(self, instance: Label) -> None:
        services.label_delete(label=instance, actor=self.request.user)

    @extend_schema(summary="The label's change history", responses=LabelChangeSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request, key=None):
        label = self.get_object()
        page = self.paginate_queryset(label.history.select_related("actor"))
        return self.get_paginated_response(LabelChangeSerializer(page, many=True).data)

    @extend_schema(
        summary="Deprecate a label (staff)",
        request=LabelDeprecateSerializer,
        responses=LabelSerializer,
    )
    @action(detail=True, methods=["post"])
    def deprecate(self, request, key=None):
        label = self.get_object()
        data = _validated(LabelDeprecateSerializer, request.data)
        label = services.label_deprecate(label=label, actor=request.user, **data)
        return Response(LabelSerializer(label).data)

    @extend_schema(
        summary="Merge this label into another (staff); rewrites every reference",
        request=LabelMergeSerializer,
        responses=LabelSerializer,
    )
    @action(detail=True, methods=["post"])
    def merge(self, request, key=None):
        label = self.get_object()
        data = _validated(LabelMergeSerializer, request.data)
        target = services.label_merge(source=label, actor=request.user, **data)
        return Response(LabelSerializer(target).data)


class LabelTreeView(APIView):
    permission_classes = [TaxonomyPermission]

    @extend_schema(summary="The whole label tree", responses=LabelTreeNodeSerializer(many=True))
    def get(self, request):
        tree = selectors.label_tree()
        return Response(LabelTreeNodeSerializer(tree, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="Label sets you can use: shared ones and your tenant's own"),
    retrieve=extend_schema(summary="One label set with its current revision"),
)
class LabelSetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    serializer_class = LabelSetSerializer
    lookup_field = "slug"

    def scoped_queryset(self):
        return LabelSet.objects.select_related("tenant").order_by("slug")

    def get_scoped_object(self, queryset):
        # A tenant's own set may share a slug with no shared set (the service refuses that), but
        # prefer the tenant's own row should an old one exist.
        label_set = (
            queryset.filter(slug=self.kwargs["slug"])
            .order_by(F("tenant").asc(nulls_last=True))
            .first()
        )
        if label_set is None:
            raise Http404
        return label_set

    @extend_schema(
        summary="Every revision of a label set", responses=LabelSetRevisionSerializer(many=True)
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def revisions(self, request, slug=None):
        label_set = self.get_object()
        revisions = label_set.revisions.order_by("-number")
        return Response(LabelSetRevisionSerializer(revisions, many=True).data)


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
