"""The pages of a tenant's needs: the list, registering one (with reuse suggestions as the labels
are typed), its page and its lifecycle actions. They sit in the portal, above every app, because
a need's page composes several apps: the need (tenants), its reuse suggestions, offered models
and model updates (registry) and the lessons of related records (records)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from core.scoping import TenantPortalMixin, role_at_least
from records import selectors as records_selectors
from registry import selectors as registry_selectors
from taxonomy import selectors as taxonomy_selectors
from taxonomy.models import LabelSet
from tenants import services
from tenants.forms import NeedForm, add_service_errors
from tenants.models import Need, Role


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
            tenant=self.tenant,
            subscribable=registry_selectors.offered_models(tenant=self.tenant),
            initial={"requested_labels": request.GET.get("labels", "")},
        )
        return render(request, self.template_name, {"form": form})

    def post(self, request):
        form = NeedForm(
            request.POST,
            tenant=self.tenant,
            subscribable=registry_selectors.offered_models(tenant=self.tenant),
        )
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
        terms = need.wanted_label_keys()
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
