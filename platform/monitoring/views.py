"""Portal pages: the tenant's monitoring overview, one need's dashboard, acknowledging alerts."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View
from django.views.generic import TemplateView

from monitoring import selectors, services
from monitoring.models import Alert
from tenants.models import Need, Role
from tenants.scoping import TenantPortalMixin, role_at_least


class OverviewView(TenantPortalMixin, TemplateView):
    template_name = "monitoring/overview.html"

    def scoped_queryset(self):
        return Need.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["needs"] = selectors.needs_overview(tenant=self.tenant)
        context["alerts"] = selectors.open_alerts(tenant=self.tenant)
        context["can_ack"] = role_at_least(self.membership, Role.REVIEWER)
        return context


class NeedDashboardView(TenantPortalMixin, TemplateView):
    template_name = "monitoring/need.html"

    def scoped_queryset(self):
        return Need.objects.select_related("tenant", "label_set", "model")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        need = self.get_scoped_object_or_404(slug=self.kwargs["slug"])
        context.update(
            need=need,
            config=services.config_for(need),
            chart_data=selectors.need_dashboard(need=need),
            wow=selectors.week_over_week(need=need),
            alerts=selectors.recent_alerts(need=need),
            can_ack=role_at_least(self.membership, Role.REVIEWER),
        )
        return context


class AlertAcknowledgeView(TenantPortalMixin, View):
    """POST only. htmx swaps the returned row in place; a plain form post is redirected back."""

    required_role = Role.REVIEWER
    http_method_names = ["post"]

    def scoped_queryset(self):
        return Alert.objects.select_related("need", "tenant", "acknowledged_by")

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        alert = self.get_scoped_object_or_404(pk=pk)
        services.alert_acknowledge(alert=alert, user=request.user)
        if request.headers.get("HX-Request"):
            return render(
                request,
                "monitoring/_alert_row.html",
                {"alert": alert, "can_ack": True, "show_need": request.POST.get("show_need")},
            )
        target = request.POST.get("next") or "/monitoring/"
        if not target.startswith("/monitoring/"):
            raise Http404
        return redirect(target)
