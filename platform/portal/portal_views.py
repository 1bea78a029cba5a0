from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.generic import TemplateView

from core.scoping import SESSION_TENANT_KEY, resolve_membership
from portal import selectors
from tenants.memberships import portal_memberships_for, support_access_record
from tenants.services import user_language_set


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
        messages.error(request, _("You are not a member of that tenant."))
    else:
        request.session[SESSION_TENANT_KEY] = membership.tenant_id
        if membership.support:
            messages.info(
                request,
                _("Viewing %(tenant)s read-only (support, audited).")
                % {"tenant": membership.tenant.name},
            )
        else:
            messages.success(
                request, _("Now working as %(tenant)s.") % {"tenant": membership.tenant.name}
            )
    return redirect(_safe_next(request))


def _safe_next(request) -> str:
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/"
    return target


@require_POST
def set_language(request):
    """The language switcher: kept on the user's profile (and in a cookie, for the login page);
    an empty choice goes back to following the browser's Accept-Language."""
    language = request.POST.get("language", "")
    if language and language not in {code for code, _name in settings.LANGUAGES}:
        language = ""
    if request.user.is_authenticated:
        user_language_set(user=request.user, language=language)
    response = redirect(_safe_next(request))
    if language:
        response.set_cookie(
            settings.LANGUAGE_COOKIE_NAME,
            language,
            max_age=settings.LANGUAGE_COOKIE_AGE,
            samesite="Lax",
            secure=request.is_secure(),
        )
        translation.activate(language)
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response
