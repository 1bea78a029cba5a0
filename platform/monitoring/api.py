"""Monitoring REST API: feedback in; aggregates, drift, feedback rates and alerts out.

Everything is tenant-scoped by the base views: another tenant's need or alert answers 404, exactly
like a missing one. Reads need the `read` key scope (or any membership); acknowledging and
snoozing need a reviewer, or a key with the `feedback` scope (the tenant's monitoring loop).
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from core.scoping import TenantScopedAPIView, TenantScopedGenericAPIView
from monitoring import selectors, services
from monitoring.evidence import label_names, name_of, plain_sentence
from monitoring.models import Alert, FeedbackEvent
from monitoring.serializers import (
    AcknowledgeSerializer,
    AggregateSerializer,
    AlertQuerySerializer,
    AlertSerializer,
    DriftSerializer,
    FeedbackBatchSerializer,
    FeedbackRateSerializer,
    FeedbackResultSerializer,
    LabelResolver,
    PeriodQuerySerializer,
    SnoozeSerializer,
)
from tenants.models import ApiKeyScope, Need, Role


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


TAGS = ["monitoring"]


class _NeedSeries(TenantScopedAPIView):
    """Base of the per-need series: the need is looked up inside the caller's tenant."""

    def scoped_queryset(self):
        return Need.objects.select_related("tenant", "label_set")

    def need(self, slug: str) -> Need:
        try:
            return self.get_queryset().get(slug=slug)
        except ObjectDoesNotExist:
            raise Http404 from None

    def query(self, request) -> dict:
        serializer = PeriodQuerySerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class NeedAggregatesView(_NeedSeries):
    """Daily or weekly volume, confidence and label counts of one need (oldest first)."""

    @extend_schema(
        tags=TAGS, parameters=[PeriodQuerySerializer], responses=AggregateSerializer(many=True)
    )
    def get(self, request, slug: str):
        need, q = self.need(slug), self.query(request)
        names = label_names(need)
        rows = selectors.aggregates_series(need=need, period=q["period"], count=q["count"])
        for row in rows:
            for label in row["labels"]:
                label["name"] = name_of(label["label"], names)
        return Response(AggregateSerializer(rows, many=True).data)


class NeedDriftView(_NeedSeries):
    """PSI and JS distance against the baseline per day or week; small samples are
    `insufficient_data`."""

    @extend_schema(
        tags=TAGS, parameters=[PeriodQuerySerializer], responses=DriftSerializer(many=True)
    )
    def get(self, request, slug: str):
        need, q = self.need(slug), self.query(request)
        rows = selectors.drift_series(need=need, period=q["period"], count=q["count"])
        return Response(DriftSerializer(rows, many=True).data)


class NeedFeedbackView(_NeedSeries):
    """CTR and negative-feedback rate per label and day or week."""

    @extend_schema(
        tags=TAGS, parameters=[PeriodQuerySerializer], responses=FeedbackRateSerializer(many=True)
    )
    def get(self, request, slug: str):
        need, q = self.need(slug), self.query(request)
        names = label_names(need)
        rows = selectors.feedback_series(need=need, period=q["period"], count=q["count"])
        for row in rows:
            row["name"] = name_of(row["label"], names)
        return Response(FeedbackRateSerializer(rows, many=True).data)


def _decorate(alerts) -> list[Alert]:
    """Give each alert its tenant-named label and one-sentence summary for the serializer."""
    names_by_need: dict[int, dict[str, str]] = {}
    out = []
    for alert in alerts:
        names = names_by_need.setdefault(alert.need_id, label_names(alert.need))
        alert.label_name = name_of(alert.label, names) if alert.label else ""
        alert.summary = plain_sentence(alert, names)
        out.append(alert)
    return out


class AlertListView(TenantScopedGenericAPIView):
    """The tenant's open alerts (one per need, rule and label), or every recent one."""

    serializer_class = AlertSerializer

    def scoped_queryset(self):
        return Alert.objects.select_related("need__label_set", "tenant", "acknowledged_by")

    @extend_schema(
        tags=TAGS, parameters=[AlertQuerySerializer], responses=AlertSerializer(many=True)
    )
    def get(self, request):
        query = AlertQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        need = None
        if slug := query.validated_data.get("need"):
            need = Need.objects.for_tenant(self.tenant).filter(slug=slug).first()
            if need is None:
                raise Http404
        alerts = selectors.alerts_list(
            tenant=self.tenant, status=query.validated_data["status"], need=need
        ).select_related("need__label_set")
        page = self.paginate_queryset(alerts)
        return self.get_paginated_response(AlertSerializer(_decorate(page), many=True).data)


class _AlertAction(TenantScopedGenericAPIView):
    write_role = Role.REVIEWER
    write_scope = ApiKeyScope.FEEDBACK

    def scoped_queryset(self):
        return Alert.objects.select_related("need__label_set", "tenant", "acknowledged_by")

    def alert(self, pk: int) -> Alert:
        try:
            return self.get_queryset().get(pk=pk)
        except ObjectDoesNotExist:
            raise Http404 from None


class AlertDetailView(_AlertAction):
    """One alert with its evidence."""

    @extend_schema(tags=TAGS, responses=AlertSerializer)
    def get(self, request, pk: int):
        return Response(AlertSerializer(_decorate([self.alert(pk)])[0]).data)


class AlertAcknowledgeView(_AlertAction):
    """Someone is on it: no escalation notice goes out. The alert keeps updating and resolves
    itself after clean days."""

    @extend_schema(tags=TAGS, request=AcknowledgeSerializer, responses=AlertSerializer)
    def post(self, request, pk: int):
        alert = self.alert(pk)
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = services.alert_acknowledge(
            alert=alert, user=self.acting_user, note=body.validated_data["note"]
        )
        return Response(AlertSerializer(_decorate([alert])[0]).data)


class AlertSnoozeView(_AlertAction):
    """No notifications for this alert up to a day; it keeps collecting evidence."""

    @extend_schema(tags=TAGS, request=SnoozeSerializer, responses=AlertSerializer)
    def post(self, request, pk: int):
        alert = self.alert(pk)
        body = SnoozeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = services.alert_snooze(
            alert=alert,
            until=body.validated_data["until"],
            note=body.validated_data["note"],
            user=self.acting_user,
        )
        return Response(AlertSerializer(_decorate([alert])[0]).data)
