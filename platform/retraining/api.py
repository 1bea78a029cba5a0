"""Retraining REST API: policies per need, retrains (start, progress, comparison, guarded
promotion, rollback). Tenant-scoped by the base views: another tenant's need or retrain is a 404.

Reads need the `read` key scope (or any membership). Starting, re-comparing, promoting and
rolling back need a tenant admin or a key with the `batch` scope (like training runs); overriding
the promotion guard needs platform staff, so never an API key.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.scoping import TenantScopedGenericAPIView, TenantScopedViewSet
from registry.api import AliasSerializer
from retraining import services
from retraining.models import Retrain
from retraining.serializers import (
    PromoteSerializer,
    RetrainCreateSerializer,
    RetrainPolicySerializer,
    RetrainSerializer,
    RollbackSerializer,
)
from tenants.models import ApiKeyScope, Need, Role

TAGS = ["retraining"]


def _need(tenant, slug: str) -> Need:
    try:
        return Need.objects.for_tenant(tenant).get(slug=slug)
    except ObjectDoesNotExist:
        raise Http404 from None


class RetrainPolicyView(TenantScopedGenericAPIView):
    """A need's retrain policy: automatic triggers, the promotion guard, shadow mode."""

    serializer_class = RetrainPolicySerializer
    write_role = Role.ADMIN
    write_scope = ApiKeyScope.NEEDS

    def scoped_queryset(self):
        return Need.objects.all()

    @extend_schema(tags=TAGS, responses=RetrainPolicySerializer)
    def get(self, request, need: str):
        policy = services.retrain_policy_for(need=_need(self.tenant, need))
        return Response(RetrainPolicySerializer(policy).data)

    @extend_schema(tags=TAGS, request=RetrainPolicySerializer, responses=RetrainPolicySerializer)
    def put(self, request, need: str):
        target = _need(self.tenant, need)
        body = RetrainPolicySerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        policy = services.retrain_policy_update(
            need=target, actor=self.acting_user, **body.validated_data
        )
        return Response(RetrainPolicySerializer(policy).data)

    @extend_schema(tags=TAGS, request=RetrainPolicySerializer, responses=RetrainPolicySerializer)
    def patch(self, request, need: str):
        """The same as PUT: only the fields given change."""
        return self.put(request, need)


class RetrainViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, TenantScopedViewSet
):
    """Retrains: a challenger trained on the champion's data plus accepted samples, compared with
    the champion on its test set and on the fresh set, then promoted through the guard."""

    lookup_value_converter = "int"
    serializer_class = RetrainSerializer
    write_role = Role.ADMIN
    write_scope = ApiKeyScope.BATCH

    def scoped_queryset(self):
        queryset = Retrain.objects.select_related(
            "need",
            "champion__registered_model",
            "challenger__registered_model",
            "snapshot",
            "created_by",
            "promoted_by",
        )
        slug = self.request.query_params.get("need") if self.request else None
        if slug:
            queryset = queryset.filter(need__slug=slug[:80])
        return queryset

    def get_serializer_class(self):
        return RetrainCreateSerializer if self.action == "create" else RetrainSerializer

    @extend_schema(
        tags=TAGS,
        parameters=[OpenApiParameter("need", str, description="Only this need's retrains")],
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(tags=TAGS)
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        tags=TAGS,
        request=RetrainCreateSerializer,
        responses={201: RetrainSerializer, 200: RetrainSerializer},
    )
    def create(self, request, *args, **kwargs):
        """Start a retrain of the need's champion (200 with the one already in flight)."""
        body = RetrainCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        retrain, created = services.retrain_start_or_get(
            need=_need(self.tenant, data["need"]),
            actor=self.acting_user,
            reason=data["reason"],
            params=data.get("params"),
            algorithm=data.get("algorithm"),
        )
        return Response(
            RetrainSerializer(retrain).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(tags=TAGS, request=None, responses=RetrainSerializer)
    @action(detail=True, methods=["post"])
    def compare(self, request, pk=None):
        """Compare champion and challenger again (the fresh set grows); the guard is re-judged."""
        retrain = services.retrain_recompare(retrain=self.get_object())
        return Response(RetrainSerializer(retrain).data)

    @extend_schema(tags=TAGS, request=PromoteSerializer, responses=RetrainSerializer)
    @action(detail=True, methods=["post"], serializer_class=PromoteSerializer)
    def promote(self, request, pk=None):
        """Make the challenger the need's serving version, if the guard passes (409
        `promotion_refused` otherwise); staff may override with `override_reason`."""
        retrain = self.get_object()
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        retrain = services.retrain_promote(
            retrain=retrain,
            actor=self.acting_user,
            override_reason=body.validated_data["override_reason"],
        )
        return Response(RetrainSerializer(retrain).data)

    @extend_schema(tags=TAGS, request=RollbackSerializer, responses=AliasSerializer)
    @action(detail=True, methods=["post"], serializer_class=RollbackSerializer)
    def rollback(self, request, pk=None):
        """One action: the need's serving alias goes back to the version before the promotion."""
        retrain = self.get_object()
        body = RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alias = services.retrain_rollback(
            retrain=retrain, actor=self.acting_user, reason=body.validated_data["reason"]
        )
        return Response(AliasSerializer(alias).data)
