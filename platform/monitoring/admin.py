"""Admin for platform staff: settings per need, alerts, reports, and the all-needs dashboard."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from core.queues import task_send
from monitoring import selectors, services
from monitoring.evidence import label_names, plain_sentence
from monitoring.models import (
    Alert,
    DriftReport,
    FeedbackAggregate,
    FeedbackEvent,
    LabelAggregate,
    MonitoringDashboard,
    NeedMonitoringConfig,
    PredictionAggregate,
)


@admin.register(NeedMonitoringConfig)
class NeedMonitoringConfigAdmin(admin.ModelAdmin):
    list_display = (
        "need",
        "baseline_source",
        "psi_threshold",
        "js_threshold",
        "rare_min_expected",
        "ctr_drop_pct",
        "negative_rise_pct",
        "volume_collapse_pct",
    )
    list_select_related = ("need__tenant",)
    list_filter = ("baseline_source", "tenant")
    raw_id_fields = ("need", "tenant")
    search_fields = ("need__slug", "need__name", "tenant__slug")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = (
        "last_seen",
        "status",
        "severity",
        "kind",
        "label",
        "need",
        "first_seen",
        "days_active",
        "summary",
        "acknowledged_at",
        "snoozed_until",
        "delivered_at",
    )
    list_select_related = ("need__tenant", "tenant")
    list_filter = (
        "status",
        "severity",
        "kind",
        ("acknowledged_at", admin.EmptyFieldListFilter),
    )
    raw_id_fields = ("need", "tenant", "acknowledged_by")
    search_fields = ("need__slug", "tenant__slug", "label", "message")
    date_hierarchy = "last_seen"
    readonly_fields = (
        "created_at",
        "updated_at",
        "escalated_at",
        "resolved_at",
        "notifications_sent",
        "delivered_at",
        "delivery_error",
    )
    actions = ("acknowledge", "redeliver")

    @admin.display(description=_("summary"))
    def summary(self, obj: Alert) -> str:
        # `message` is stored in the language of the worker that wrote it (English); the
        # sentence is rebuilt from the evidence in the reader's language, as the portal does.
        return plain_sentence(obj, label_names(obj.need))

    @admin.action(description=_("Acknowledge the selected alerts"))
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        count = 0
        for alert in queryset.filter(acknowledged_at__isnull=True).select_related("need"):
            services.alert_acknowledge(alert=alert, user=request.user)
            count += 1
        self.message_user(
            request, _("Acknowledged %(count)s alert(s).") % {"count": count}, messages.SUCCESS
        )

    @admin.action(description=_("Deliver again (webhook / email)"))
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        for alert in queryset:
            # Staff asked for it: a reminder goes out even though nothing is due.
            Alert.objects.dangerously_unscoped().filter(pk=alert.pk).update(
                notification_pending="reminder"
            )
            task_send("workers.tasks.monitoring.deliver_alert", alert.pk)
        self.message_user(
            request,
            _("Queued %(count)s deliveries.") % {"count": queryset.count()},
            messages.SUCCESS,
        )


@admin.register(DriftReport)
class DriftReportAdmin(admin.ModelAdmin):
    list_display = (
        "need",
        "period",
        "period_start",
        "volume",
        "psi",
        "js_distance",
        "chi2_p_value",
    )
    list_select_related = ("need__tenant",)
    list_filter = ("period", "baseline_source", "tenant")
    raw_id_fields = ("need", "tenant")
    date_hierarchy = "period_start"


class _AggregateAdmin(admin.ModelAdmin):
    list_select_related = ("need__tenant",)
    list_filter = ("period", "tenant")
    raw_id_fields = ("need", "tenant")
    date_hierarchy = "period_start"


@admin.register(PredictionAggregate)
class PredictionAggregateAdmin(_AggregateAdmin):
    list_display = ("need", "model_version", "period", "period_start", "volume", "mean_confidence")
    list_select_related = ("need__tenant", "model_version__registered_model")
    raw_id_fields = ("need", "tenant", "model_version")


@admin.register(LabelAggregate)
class LabelAggregateAdmin(_AggregateAdmin):
    list_display = ("need", "model_version", "period", "period_start", "label", "count")
    list_select_related = ("need__tenant", "model_version__registered_model")
    raw_id_fields = ("need", "tenant", "model_version")


@admin.register(FeedbackAggregate)
class FeedbackAggregateAdmin(_AggregateAdmin):
    list_display = ("need", "period", "period_start", "label", "impressions", "clicks", "ctr")


@admin.register(FeedbackEvent)
class FeedbackEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "tenant", "need", "type", "label", "at")
    list_select_related = ("tenant", "need")
    list_filter = ("type", "tenant")
    raw_id_fields = ("tenant", "need")
    search_fields = ("event_id", "item_id")
    date_hierarchy = "day"


@admin.register(MonitoringDashboard)
class MonitoringDashboardAdmin(admin.ModelAdmin):
    """Replaces the changelist with the all-needs dashboard; the admin index links to it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return request.user.is_active and request.user.is_staff

    def changelist_view(self, request: HttpRequest, extra_context=None) -> TemplateResponse:
        alerts = selectors.open_alerts_all_tenants(limit=100)
        names: dict[int, dict[str, str]] = {}
        for alert in alerts:
            if alert.need_id not in names:
                names[alert.need_id] = label_names(alert.need)
            alert.summary = plain_sentence(alert, names[alert.need_id])
        context = {
            **self.admin_site.each_context(request),
            "title": _("Monitoring dashboard: all needs"),
            "opts": self.model._meta,
            "needs": [row for row in selectors.needs_overview_all_tenants() if row["last_day"]],
            "alerts": alerts,
            "psi_chart": selectors.psi_series_all_tenants(),
        }
        return TemplateResponse(request, "admin/monitoring/dashboard.html", context)
