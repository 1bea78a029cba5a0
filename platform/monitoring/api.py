"""Monitoring REST API: the feedback endpoint."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from monitoring import services
from monitoring.models import FeedbackEvent
from monitoring.serializers import (
    FeedbackBatchSerializer,
    FeedbackResultSerializer,
    LabelResolver,
)
from tenants.models import ApiKeyScope, Role
from tenants.scoping import TenantScopedAPIView


class FeedbackView(TenantScopedAPIView):
    """Bulk impressions, clicks and negative feedback per item and label, from the tenant's app.

    Duplicate event ids (per tenant) are counted once. Any invalid event rejects the whole request
    (400, errors per event index) and nothing is written.
    """

    write_scope = ApiKeyScope.FEEDBACK
    write_role = Role.REQUESTER

    def scoped_queryset(self):
        return FeedbackEvent.objects.all()

    @extend_schema(request=FeedbackBatchSerializer, responses=FeedbackResultSerializer)
    def post(self, request):
        serializer = FeedbackBatchSerializer(
            data=request.data, context={"resolver": LabelResolver(self.tenant)}
        )
        serializer.is_valid(raise_exception=True)
        result = services.feedback_record(
            tenant=self.tenant, events=serializer.validated_data["events"]
        )
        return Response(FeedbackResultSerializer(result).data)
