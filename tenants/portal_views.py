"""Portal pages for a tenant's needs and API keys. All derive from TenantPortalMixin."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import PasswordResetConfirmView
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from core.scoping import TenantPortalMixin, role_at_least
from records import selectors as records_selectors
from registry import selectors as registry_selectors
from taxonomy import selectors as taxonomy_selectors
from taxonomy.models import LabelSet
from tenants import services
from tenants.forms import (
    ApiKeyForm,
    MemberInviteForm,
    MemberRoleForm,
    NeedForm,
    add_service_errors,
)
from tenants.models import ApiKey, Membership, Need, Role


class NeedListView(TenantPortalMixin, TemplateView):
    template_name = "tenants/need_list.html"

    def scoped_queryset(self):
        return (
            Need.objects.select_related("label_set", "model")
            .with_labels()
            .order_by("status", "slug")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["needs"] = self.get_queryset()
        context["can_request"] = role_at_least(self.membership, Role.REQUESTER)
        return context


def _suggestion_terms(request, tenant) -> list[str]:
    """The labels to find reuse for: what was typed, else the chosen label set's labels."""
    terms = taxonomy_selectors.split_terms(request.GET.get("requested_labels", ""))
    if terms:
        return terms
    slug = request.GET.get("label_set", "")
    label_set = LabelSet.objects.for_tenant(tenant).filter(slug=slug).first() if slug else None
    if label_set and label_set.current_revision:
        return label_set.current_revision.label_keys()
    return []


class NeedSuggestionsView(TenantPortalMixin, View):
    """The htmx partial under the new-need form: reuse suggestions for the labels typed so far."""

    def scoped_queryset(self):
        return LabelSet.objects.all()

    def get(self, request):
        terms = _suggestion_terms(request, self.tenant)
        suggestions = (
            registry_selectors.reuse_suggestions(tenant=self.tenant, terms=terms) if terms else None
        )
        return render(
            request,
            "tenants/_suggestions.html",
            {
                "suggestions": suggestions,
                "terms": terms,
                "selectable": True,
                "related_lessons": records_selectors.related_lessons(
                    tenant=self.tenant, terms=terms
                ),
            },
        )


class NeedCreateView(TenantPortalMixin, View):
    required_role = Role.REQUESTER
    template_name = "tenants/need_form.html"

    def scoped_queryset(self):
        return Need.objects.all()

    def get(self, request):
        form = NeedForm(
            tenant=self.tenant, initial={"requested_labels": request.GET.get("labels", "")}
        )
        return render(request, self.template_name, {"form": form})

    def post(self, request):
        form = NeedForm(request.POST, tenant=self.tenant)
        if form.is_valid():
            model = form.cleaned_data.get("subscribe_model")
            try:
                # Creating and subscribing are one act: if either is refused, nothing is written.
                with transaction.atomic():
                    need = services.need_create(
                        tenant=self.tenant,
                        slug=form.cleaned_data.get("slug") or "",
                        created_by=request.user,
                        **form.service_fields(),
                    )
                    if model is not None:
                        need = services.need_subscribe_model(
                            need=need, model=model, actor=request.user
                        )
            except ValidationError as error:
                if "model" in error.message_dict:
                    form.add_error("subscribe_model", error.message_dict.pop("model"))
                add_service_errors(form, ValidationError(error.message_dict))
            else:
                messages.success(
                    request,
                    _("Need “%(name)s” registered; platform staff will review it.")
                    % {"name": need.name},
                )
                return redirect("tenants:need-detail", slug=need.slug)
        return render(request, self.template_name, {"form": form}, status=400)


class NeedDetailView(TenantPortalMixin, TemplateView):
    template_name = "tenants/need_detail.html"

    def scoped_queryset(self):
        return Need.objects.select_related(
            "label_set", "model", "created_by", "approved_by"
        ).with_labels()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        need = self.get_scoped_object_or_404(slug=self.kwargs["slug"])
        terms = need.requested_labels or (
            need.label_set.current_revision.label_keys()
            if need.label_set and need.label_set.current_revision
            else []
        )
        context.update(
            need=need,
            label_keys=terms,
            suggestions=registry_selectors.reuse_suggestions(tenant=self.tenant, terms=terms)
            if terms
            else None,
            can_edit=role_at_least(self.membership, Role.REQUESTER) and need.status != "retired",
            related_lessons=records_selectors.related_lessons(
                tenant=self.tenant, terms=terms, exclude_need=need
            ),
        )
        if need.status != "retired":
            context["model_update"] = registry_selectors.newer_model_for(need)
        if context["can_edit"]:
            context["subscribe_url"] = reverse("tenants:need-subscribe", args=[need.slug])
            context["current_model_id"] = need.model_id
        return context


class NeedEditView(TenantPortalMixin, View):
    required_role = Role.REQUESTER
    template_name = "tenants/need_form.html"

    def scoped_queryset(self):
        return Need.objects.select_related("label_set").with_labels()

    def _initial(self, need: Need) -> dict:
        return {
            "name": need.name,
            "goal": need.goal,
            "requested_labels": ", ".join(need.requested_labels),
            "label_set": need.label_set.slug if need.label_set else None,
            "label_mapping": "\n".join(f"{k} = {v}" for k, v in need.label_mapping.items()),
            "threshold": need.threshold,
            "top_k": need.top_k,
            "delivery": need.delivery,
            "latency_budget_ms": need.latency_budget_ms,
            "size_budget_kb": need.size_budget_kb,
            "target_requests_per_s": need.target_requests_per_s,
        }

    def get(self, request, slug):
        need = self.get_scoped_object_or_404(slug=slug)
        form = NeedForm(tenant=self.tenant, editing=True, initial=self._initial(need))
        return render(request, self.template_name, {"form": form, "need": need})

    def post(self, request, slug):
        need = self.get_scoped_object_or_404(slug=slug)
        form = NeedForm(request.POST, tenant=self.tenant, editing=True)
        if form.is_valid():
            try:
                services.need_update(need=need, **form.service_fields())
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(request, _("Need updated."))
                return redirect("tenants:need-detail", slug=need.slug)
        return render(request, self.template_name, {"form": form, "need": need}, status=400)


class NeedActionView(TenantPortalMixin, View):
    """POST-only lifecycle actions on one need: subscribe (or follow a newly promoted model),
    keep its model, retire, go live."""

    required_role = Role.REQUESTER
    action: str = ""

    def scoped_queryset(self):
        return Need.objects.select_related("label_set", "model")

    def post(self, request, slug):
        need = self.get_scoped_object_or_404(slug=slug)
        try:
            if self.action == "subscribe":
                model = (
                    registry_selectors.offered_models(tenant=self.tenant)
                    .filter(name=request.POST.get("model", ""))
                    .first()
                )
                if model is None:
                    raise ValidationError(
                        {"model": [_("Unknown model, or it has no production version.")]}
                    )
                services.need_subscribe_model(need=need, model=model, actor=request.user)
                messages.success(
                    request, _("This need is now served by %(model)s.") % {"model": model.name}
                )
            elif self.action == "keep-model":
                services.need_keep_model(need=need, actor=request.user)
                messages.success(
                    request, _("This need stays on %(model)s.") % {"model": need.model.name}
                )
            elif self.action == "retire":
                services.need_retire(
                    need=need, actor=request.user, reason=request.POST.get("reason", "")
                )
                messages.success(request, _("Need retired."))
            elif self.action == "go-live":
                services.need_go_live(need=need, actor=request.user)
                messages.success(request, _("Need is live."))
        except ValidationError as error:
            for field_messages in error.message_dict.values():
                for message in field_messages:
                    messages.error(request, message)
        return redirect("tenants:need-detail", slug=need.slug)


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
