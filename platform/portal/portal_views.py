from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from portal import selectors
from tenants.scoping import (
    SESSION_TENANT_KEY,
    portal_memberships_for,
    resolve_membership,
    support_access_record,
)


class HomeView(TemplateView):
    template_name = "portal/home.html"

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect("portal:login")
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        membership = resolve_membership(self.request, portal=True)
        if membership is not None and membership.support:
            support_access_record(self.request, membership)
        tenant = membership.tenant if membership else None
        context["overview"] = selectors.tenant_overview(tenant=tenant) if tenant else None
        return context


@login_required
@require_POST
def switch_tenant(request):
    slug = request.POST.get("tenant", "")
    membership = next(
        (m for m in portal_memberships_for(request.user) if m.tenant.slug == slug), None
    )
    if membership is None:
        messages.error(request, "You are not a member of that tenant.")
    else:
        request.session[SESSION_TENANT_KEY] = membership.tenant_id
        if membership.support:
            messages.info(
                request, f"Viewing {membership.tenant.name} read-only (support, audited)."
            )
        else:
            messages.success(request, f"Now working as {membership.tenant.name}.")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)
