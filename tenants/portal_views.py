"""Portal pages for a tenant's API keys and members. All derive from TenantPortalMixin. (The need
pages compose registry and records too: they are `portal.need_views`.)"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.views import View

from core.scoping import TenantPortalMixin
from tenants import services
from tenants.forms import (
    ApiKeyForm,
    MemberInviteForm,
    MemberRoleForm,
    add_service_errors,
)
from tenants.models import ApiKey, Membership, Role


class ApiKeyListView(TenantPortalMixin, View):
    """List, create and revoke keys. A new key is rendered once in the POST response, never
    stored in the session or a message, so reloading the page cannot show it again."""

    required_role = Role.ADMIN
    template_name = "tenants/keys.html"

    def scoped_queryset(self):
        return ApiKey.objects.select_related("created_by")

    def _render(self, request, form, *, new_key=None, plain_key=None, status=200):
        return render(
            request,
            self.template_name,
            {"keys": self.get_queryset(), "form": form, "new_key": new_key, "plain_key": plain_key},
            status=status,
        )

    def get(self, request):
        return self._render(request, ApiKeyForm())

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            try:
                api_key, plain = services.api_key_create(
                    tenant=self.tenant, created_by=request.user, **form.cleaned_data
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                response = self._render(request, ApiKeyForm(), new_key=api_key, plain_key=plain)
                response["Cache-Control"] = "no-store"
                return response
        return self._render(request, form, status=400)


class ApiKeyRevokeView(TenantPortalMixin, View):
    required_role = Role.ADMIN

    def scoped_queryset(self):
        return ApiKey.objects.all()

    def post(self, request, prefix):
        api_key = self.get_scoped_object_or_404(prefix=prefix)
        services.api_key_revoke(api_key=api_key)
        messages.success(request, _("Key “%(name)s” revoked.") % {"name": api_key.name})
        return redirect("tenants:keys")


class MemberListView(TenantPortalMixin, View):
    """The tenant's members: invite (a new user gets a one-time set-password link, shown once on
    the page that answers the invitation), change roles, remove. Admins only."""

    required_role = Role.ADMIN
    template_name = "tenants/members.html"

    def scoped_queryset(self):
        return Membership.objects.select_related("user").order_by("user__username")

    def _render(self, request, form, *, invited=None, link="", status=200):
        return render(
            request,
            self.template_name,
            {
                "members": self.get_queryset(),
                "form": form,
                "roles": Role.choices,
                "invited": invited,
                "link": link,
            },
            status=status,
        )

    def get(self, request):
        return self._render(request, MemberInviteForm())

    def post(self, request):
        if request.POST.get("action") == "link":  # a new link for an invitation not yet used
            membership = self.get_scoped_object_or_404(user__username=request.POST.get("username"))
            try:
                path = services.member_set_password_link(membership=membership)
            except ValidationError as error:
                messages.error(request, error.messages[0])
                return redirect("tenants:members")
            response = self._render(
                request,
                MemberInviteForm(),
                invited=membership,
                link=request.build_absolute_uri(path),
            )
            response["Cache-Control"] = "no-store"
            return response
        form = MemberInviteForm(request.POST)
        if form.is_valid():
            try:
                membership, path = services.member_invite(
                    tenant=self.tenant, invited_by=request.user, **form.cleaned_data
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                link = request.build_absolute_uri(path) if path else ""
                response = self._render(request, MemberInviteForm(), invited=membership, link=link)
                response["Cache-Control"] = "no-store"
                return response
        return self._render(request, form, status=400)


class MemberChangeView(TenantPortalMixin, View):
    """POST-only: change a member's role, or remove them."""

    required_role = Role.ADMIN
    action: str = ""

    def scoped_queryset(self):
        return Membership.objects.select_related("user")

    def post(self, request, username):
        membership = self.get_scoped_object_or_404(user__username=username)
        try:
            if self.action == "remove":
                services.member_remove(membership=membership)
                messages.success(request, _("%(user)s removed.") % {"user": username})
            else:
                form = MemberRoleForm(request.POST)
                if not form.is_valid():
                    raise ValidationError({"role": [_("Choose a role.")]})
                services.member_role_set(membership=membership, role=form.cleaned_data["role"])
                messages.success(
                    request,
                    _("%(user)s is now %(role)s.") % {"user": username, "role": membership.role},
                )
        except ValidationError as error:
            for field_messages in error.message_dict.values():
                for message in field_messages:
                    messages.error(request, message)
        return redirect("tenants:members")


class SetPasswordView(PasswordResetConfirmView):
    """The one-time link an invited person opens: Django's password-reset confirmation."""

    template_name = "tenants/set_password.html"
    success_url = reverse_lazy("portal:login")
    post_reset_login = False

    def form_valid(self, form):
        messages.success(self.request, _("Password set. Log in with it now."))
        return super().form_valid(form)
