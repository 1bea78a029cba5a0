"""REST views for the taxonomy.

Labels are company-wide (no tenant), so their views are plain DRF views: any signed-in user or
API key with the `read` scope may read them; only platform staff (session) may change them.
Label sets can be tenant-owned, so their views derive from `TenantScopedViewSet`.
"""

from __future__ import annotations

from django.db.models import F
from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from core.authentication import ApiKeyUser
from core.errors import DomainError
from core.roles import ApiKeyScope, Role
from core.scoping import TenantScopedViewSet
from taxonomy import selectors, services
from taxonomy.models import Label, LabelProposal, LabelSet, LabelStatus
from taxonomy.serializers import (
    DecisionSerializer,
    LabelChangeSerializer,
    LabelCreateSerializer,
    LabelDeprecateSerializer,
    LabelMergeSerializer,
    LabelProposalCreateSerializer,
    LabelProposalSerializer,
    LabelSerializer,
    LabelSetCreateSerializer,
    LabelSetReviseSerializer,
    LabelSetRevisionSerializer,
    LabelSetSerializer,
    LabelTreeNodeSerializer,
    LabelUpdateSerializer,
)


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
    """Read: shared label sets and your own. Write: a tenant admin (or a key with the `needs`
    scope) creates and revises the tenant's own sets; shared ones are platform staff's."""

    serializer_class = LabelSetSerializer
    lookup_field = "slug"
    write_role = Role.ADMIN
    write_scope = ApiKeyScope.NEEDS
    http_method_names = ["get", "post", "patch", "head", "options"]

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
        summary="Create your tenant's own label set from taxonomy labels",
        request=LabelSetCreateSerializer,
        responses={201: LabelSetSerializer},
    )
    def create(self, request):
        data = _validated(LabelSetCreateSerializer, request.data)
        label_set = services.label_set_create(
            tenant=self.tenant,
            slug=data["slug"],
            name=data["name"],
            label_keys=data["labels"],
            kind=data["kind"],
            description=data["description"],
            actor=self.acting_user,
        )
        return Response(LabelSetSerializer(label_set).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revise your own label set (a new revision; trained models keep theirs)",
        request=LabelSetReviseSerializer,
        responses=LabelSetSerializer,
    )
    def partial_update(self, request, slug=None):
        label_set = self.get_object()
        if label_set.tenant_id != self.tenant.pk:
            raise DomainError(
                "shared_label_set",
                _("Shared label sets are changed by platform staff; create your own set instead."),
                status_code=403,
            )
        data = _validated(LabelSetReviseSerializer, request.data)
        services.label_set_revise(
            label_set=label_set,
            label_keys=data.get("labels"),
            kind=data.get("kind"),
            name=data.get("name"),
            description=data.get("description"),
            note=data["note"],
            actor=self.acting_user,
        )
        label_set.refresh_from_db()
        return Response(LabelSetSerializer(label_set).data)

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


@extend_schema_view(
    list=extend_schema(summary="Your tenant's label proposals, with their status"),
    retrieve=extend_schema(summary="One label proposal"),
)
class LabelProposalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """New taxonomy labels a tenant asks for. Requesters (or `needs` keys) propose; platform
    staff approve or reject (here with `X-Tenant`, or in the admin)."""

    serializer_class = LabelProposalSerializer
    lookup_value_regex = r"\d+"
    write_role = Role.REQUESTER
    write_scope = ApiKeyScope.NEEDS

    def scoped_queryset(self):
        return LabelProposal.objects.select_related("parent", "proposed_by", "decided_by", "label")

    @extend_schema(
        summary="Propose a new taxonomy label (platform staff decide)",
        request=LabelProposalCreateSerializer,
        responses={201: LabelProposalSerializer},
    )
    def create(self, request):
        data = _validated(LabelProposalCreateSerializer, request.data)
        proposal = services.label_proposal_create(
            tenant=self.tenant, proposed_by=self.acting_user, **data
        )
        return Response(LabelProposalSerializer(proposal).data, status=status.HTTP_201_CREATED)

    def _staff_only(self) -> None:
        if not getattr(self.acting_user, "is_staff", False):
            raise DomainError(
                "permission_denied", _("Only platform staff decide on proposals."), status_code=403
            )

    @extend_schema(
        summary="Approve: create the label (platform staff)",
        request=DecisionSerializer,
        responses=LabelProposalSerializer,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        self._staff_only()
        data = _validated(DecisionSerializer, request.data)
        proposal = services.label_proposal_approve(
            proposal=self.get_object(), actor=self.acting_user, note=data["note"]
        )
        return Response(LabelProposalSerializer(proposal).data)

    @extend_schema(
        summary="Reject, saying why (platform staff)",
        request=DecisionSerializer,
        responses=LabelProposalSerializer,
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        self._staff_only()
        data = _validated(DecisionSerializer, request.data)
        proposal = services.label_proposal_reject(
            proposal=self.get_object(), actor=self.acting_user, note=data["note"]
        )
        return Response(LabelProposalSerializer(proposal).data)
