"""Portal pages: the tenant's monitoring overview, one need's dashboard, acknowledging alerts."""

from __future__ import annotations

from datetime import date, timedelta

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from core.localtime import tenant_today
from core.scoping import TenantPortalMixin, role_at_least
from monitoring import selectors, services
from monitoring.evidence import alert_cards, label_names, name_of
from monitoring.models import Alert
from tenants.models import Need, Role


class OverviewView(TenantPortalMixin, TemplateView):
    template_name = "monitoring/overview.html"

    def scoped_queryset(self):
        return Need.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["needs"] = selectors.needs_overview(tenant=self.tenant)
        context["cards"] = alert_cards(selectors.open_alerts(tenant=self.tenant))
        context["can_ack"] = role_at_least(self.membership, Role.REVIEWER)
        return context


class NeedDashboardView(TenantPortalMixin, TemplateView):
    template_name = "monitoring/need.html"

    def scoped_queryset(self):
        return Need.objects.select_related("tenant", "label_set", "model")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        need = self.get_scoped_object_or_404(slug=self.kwargs["slug"])
        names = label_names(need)
        wow = selectors.week_over_week(need=need)
        for row in wow["rows"]:
            row["name"] = name_of(row["label"], names)
        context.update(
            need=need,
            config=services.config_for(need),
            chart_data=selectors.need_dashboard(need=need, names=names),
            chart_text=chart_text(zone=need.tenant.time_zone),
            wow=wow,
            cards=alert_cards(selectors.recent_alerts(need=need)),
            can_ack=role_at_least(self.membership, Role.REVIEWER),
        )
        return context


def chart_text(*, zone: str) -> dict[str, str]:
    """The charts' titles, axes and series names in the reader's language (dashboard.js is
    static: it reads them from the page, as it reads the data)."""
    return {
        "x_axis": _("day (%(zone)s)") % {"zone": zone},
        "baseline_suffix": _("(baseline)"),
        "share_axis": _("share of predictions (in %)"),
        "psi_threshold": _("PSI threshold"),
        "js": _("JS distance"),
        "js_threshold": _("JS threshold"),
        "drift_axis": _("PSI / JS distance"),
        "mean_confidence": _("mean confidence"),
        "low_confidence_rate": _("low-confidence rate"),
        "no_label_rate": _("no label above threshold"),
        "predictions": _("predictions"),
        "volume_axis": _("predictions per day"),
        "rate_axis": _("confidence / rate (0–1)"),
        "ctr_axis": _("CTR: clicks per 100 impressions"),
        "negative_axis": _("negative feedback per 100 impressions"),
    }


class _AlertActionView(TenantPortalMixin, View):
    """POST only. htmx swaps the returned row in place; a plain form post is redirected back."""

    required_role = Role.REVIEWER
    http_method_names = ["post"]

    def scoped_queryset(self):
        return Alert.objects.select_related("need__label_set", "tenant", "acknowledged_by")

    def act(self, request: HttpRequest, alert: Alert) -> Alert:
        raise NotImplementedError

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        alert = self.get_scoped_object_or_404(pk=pk)
        error = ""
        try:
            alert = self.act(request, alert)
        except ValidationError as exc:
            error = "; ".join(exc.messages)
        if request.headers.get("HX-Request"):
            return render(
                request,
                "monitoring/_alert_row.html",
                {
                    "card": alert_cards([alert])[0],
                    "can_ack": True,
                    "show_need": request.POST.get("show_need"),
                    "error": error,
                    "today": tenant_today(self.tenant),
                },
            )
        target = request.POST.get("next") or "/monitoring/"
        if not target.startswith("/monitoring/"):
            raise Http404
        return redirect(target)


class AlertAcknowledgeView(_AlertActionView):
    def act(self, request: HttpRequest, alert: Alert) -> Alert:
        return services.alert_acknowledge(
            alert=alert, user=request.user, note=request.POST.get("note", "")
        )


class AlertSnoozeView(_AlertActionView):
    def act(self, request: HttpRequest, alert: Alert) -> Alert:
        try:
            days = int(request.POST.get("days", "7"))
        except ValueError:
            raise ValidationError(_("Snooze for a number of days.")) from None
        if not 1 <= days <= 90:
            raise ValidationError(_("Snooze for 1 to 90 days."))
        until: date = tenant_today(self.tenant) + timedelta(days=days)
        return services.alert_snooze(
            alert=alert, until=until, note=request.POST.get("note", ""), user=request.user
        )
