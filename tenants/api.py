"""REST views for needs and API keys (tenant-scoped) and for tenants (platform staff)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.scoping import TenantScopedViewSet
from tenants import services
from tenants.models import ApiKey, ApiKeyScope, Membership, Need, NeedStatusChange, Role, Tenant
from tenants.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    MemberInvitedSerializer,
    MemberInviteSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    MembershipSerializer,
    NeedSerializer,
    NeedStatusChangeSerializer,
    NeedUpdateSerializer,
    NeedWriteSerializer,
    ReasonSerializer,
    TenantSerializer,
)


def _created_key_payload(api_key: ApiKey, plain: str) -> dict:
    api_key.key = plain
    return ApiKeyCreatedSerializer(api_key).data


@extend_schema_view(
    list=extend_schema(summary="Your tenant's needs"),
    retrieve=extend_schema(summary="One of your needs"),
)
class NeedViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Needs of the caller's tenant. Writes (create, change, go live, retire) need the
    `requester` role, or a key with the `needs` scope: a serving (`tag`) key cannot change them.
    What the registry offers a need (reuse suggestions, serving it with an existing model, model
    updates) has its own endpoints under the need's URL."""

    serializer_class = NeedSerializer
    lookup_field = "slug"
    write_scope = ApiKeyScope.NEEDS
    write_role = Role.REQUESTER
    http_method_names = ["get", "post", "patch", "head", "options"]

    def scoped_queryset(self):
        return Need.objects.select_related("label_set", "model").with_labels().order_by("slug")

    @extend_schema(
        summary="Register a need", request=NeedWriteSerializer, responses={201: NeedSerializer}
    )
    def create(self, request):
        serializer = NeedWriteSerializer(data=request.data, tenant=self.tenant)
        serializer.is_valid(raise_exception=True)
        need = services.need_create(
            tenant=self.tenant, created_by=self.acting_user, **serializer.validated_data
        )
        return Response(NeedSerializer(need).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Change a need", request=NeedUpdateSerializer, responses=NeedSerializer)
    def partial_update(self, request, slug=None):
        need = self.get_object()
        serializer = NeedUpdateSerializer(data=request.data, tenant=self.tenant, partial=True)
        serializer.is_valid(raise_exception=True)
        need = services.need_update(need=need, **serializer.validated_data)
        return Response(NeedSerializer(need).data)

    @extend_schema(
        summary="Retire a need (it stops serving; platform staff can reinstate it)",
        request=ReasonSerializer,
        responses=NeedSerializer,
    )
    @action(detail=True, methods=["post"])
    def retire(self, request, slug=None):
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        need = services.need_retire(
            need=self.get_object(), actor=self.actor, reason=body.validated_data["reason"]
        )
        return Response(NeedSerializer(need).data)

    @extend_schema(
        summary="The need's lifecycle history (who, when, why)",
        responses=NeedStatusChangeSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request, slug=None):
        need = self.get_object()
        changes = NeedStatusChange.objects.for_tenant(self.tenant).filter(need=need)
        return Response(NeedStatusChangeSerializer(changes.select_related("actor"), many=True).data)

    @extend_schema(
        summary="Put an approved need live (it must have a model with a production alias)",
        request=None,
        responses=NeedSerializer,
    )
    @action(detail=True, methods=["post"], url_path="go-live")
    def go_live(self, request, slug=None):
        need = services.need_go_live(need=self.get_object(), actor=self.actor)
        return Response(NeedSerializer(need).data)

    @extend_schema(
        summary="Keep the need's current model (answers the model-update question)",
        request=None,
        responses=NeedSerializer,
    )
    @action(detail=True, methods=["post"], url_path="keep-model")
    def keep_model(self, request, slug=None):
        need = services.need_keep_model(need=self.get_object(), actor=self.actor)
        return Response(NeedSerializer(need).data)


@extend_schema_view(
    list=extend_schema(summary="Your tenant's API keys (admins)"),
    retrieve=extend_schema(summary="One API key (never its secret)"),
)
class ApiKeyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Key management for tenant admins, signed in (a key can never manage keys)."""

    serializer_class = ApiKeySerializer
    lookup_field = "prefix"
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    allow_api_keys = False
    http_method_names = ["get", "post", "delete", "head", "options"]

    def scoped_queryset(self):
        return ApiKey.objects.select_related("created_by")

    @extend_schema(
        summary="Create a key; the plain key is in this response only",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
    )
    def create(self, request):
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, plain = services.api_key_create(
            tenant=self.tenant, created_by=self.acting_user, **serializer.validated_data
        )
        return Response(_created_key_payload(api_key, plain), status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke a key", request=None, responses=ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, prefix=None):
        api_key = services.api_key_revoke(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)

    @extend_schema(
        summary="Revoke a key (the row is kept for audit)", responses={200: ApiKeySerializer}
    )
    def destroy(self, request, prefix=None):
        api_key = services.api_key_revoke(api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)


@extend_schema_view(
    list=extend_schema(summary="Your tenant's members (admins)"),
    retrieve=extend_schema(summary="One member"),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Members of the caller's tenant: invite, change roles, remove. A tenant admin, signed in:
    an API key never adds people."""

    serializer_class = MemberSerializer
    lookup_field = "username"
    lookup_value_regex = r"[\w.@+-]+"
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    allow_api_keys = False
    pagination_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self):
        return Membership.objects.select_related("user").order_by("user__username")

    def get_scoped_object(self, queryset):
        return generics.get_object_or_404(queryset, user__username=self.kwargs["username"])

    @extend_schema(
        summary="Invite a person: a new username gets a one-time set-password link",
        request=MemberInviteSerializer,
        responses={201: MemberInvitedSerializer},
    )
    def create(self, request):
        body = MemberInviteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership, path = services.member_invite(
            tenant=self.tenant, invited_by=self.acting_user, **body.validated_data
        )
        membership.set_password_url = request.build_absolute_uri(path) if path else ""
        response = Response(
            MemberInvitedSerializer(membership).data, status=status.HTTP_201_CREATED
        )
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(
        summary="A new one-time set-password link for a member who has not set a password",
        request=None,
        responses=MemberInvitedSerializer,
    )
    @action(detail=True, methods=["post"], url_path="set-password-link")
    def set_password_link(self, request, username=None):
        membership = self.get_object()
        path = services.member_set_password_link(membership=membership)
        membership.set_password_url = request.build_absolute_uri(path)
        response = Response(MemberInvitedSerializer(membership).data)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(summary="Change a member's role", request=MemberRoleSerializer)
    def partial_update(self, request, username=None):
        membership = self.get_object()
        body = MemberRoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.member_role_set(
            membership=membership, role=body.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(summary="Remove a member from your tenant", responses={204: None})
    def destroy(self, request, username=None):
        services.member_remove(membership=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class IsPlatformStaff(permissions.BasePermission):
    """A signed-in staff user (API keys are never staff)."""

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_staff", False))


@extend_schema_view(
    list=extend_schema(summary="All tenants (platform staff)"),
    retrieve=extend_schema(summary="One tenant (platform staff)"),
    create=extend_schema(summary="Create a tenant (platform staff)"),
)
class TenantAdminViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Platform staff manage tenants across the company: deliberately unscoped."""

    queryset = Tenant.objects.order_by("slug")
    serializer_class = TenantSerializer
    permission_classes = [IsPlatformStaff]
    lookup_field = "slug"

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = services.tenant_create(**data)

    @extend_schema(
        methods=["get"], summary="Members of a tenant", responses=MembershipSerializer(many=True)
    )
    @extend_schema(
        methods=["post"],
        summary="Add a member or change their role",
        request=MembershipSerializer,
        responses={201: MembershipSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def memberships(self, request, slug=None):
        tenant = self.get_object()
        if request.method == "GET":
            members = Membership.objects.owned_by(tenant).select_related("user")
            return Response(MembershipSerializer(members, many=True).data)
        serializer = MembershipSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_by_username(serializer.validated_data["user"]["username"])
        membership = services.membership_set(
            tenant=tenant, user=user, role=serializer.validated_data["role"]
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Create an API key for a tenant (the plain key is in this response only)",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
    )
    @action(detail=True, methods=["post"])
    def keys(self, request, slug=None):
        tenant = self.get_object()
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, plain = services.api_key_create(
            tenant=tenant, created_by=request.user, **serializer.validated_data
        )
        return Response(_created_key_payload(api_key, plain), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve a tenant's requested need (platform staff)",
        request=None,
        responses=NeedSerializer,
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"needs/(?P<need_slug>[-a-zA-Z0-9_]+)/approve",
        url_name="approve-need",
    )
    def approve_need(self, request, slug=None, need_slug=None):
        tenant = self.get_object()
        need = Need.objects.owned_by(tenant).filter(slug=need_slug).first()
        if need is None:
            raise Http404
        need = services.need_approve(need=need, actor=request.user)
        return Response(NeedSerializer(need).data)

    @extend_schema(
        summary="Reinstate a retired need (platform staff; a reason is required)",
        request=ReasonSerializer,
        responses=NeedSerializer,
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"needs/(?P<need_slug>[-a-zA-Z0-9_]+)/reinstate",
        url_name="reinstate-need",
    )
    def reinstate_need(self, request, slug=None, need_slug=None):
        tenant = self.get_object()
        need = Need.objects.owned_by(tenant).filter(slug=need_slug).first()
        if need is None:
            raise Http404
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        need = services.need_reinstate(
            need=need, actor=request.user, reason=body.validated_data["reason"]
        )
        return Response(NeedSerializer(need).data)
