"""Portal pages for the taxonomy: browse and search the tree, one label with its history."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from core.roles import Role
from core.scoping import TenantPortalMixin, role_at_least
from taxonomy import selectors, services
from taxonomy.forms import LabelProposalForm, LabelSetForm
from taxonomy.models import Label, LabelProposal, LabelSet

ADMIN, REQUESTER = Role.ADMIN, Role.REQUESTER


class TaxonomyBrowseView(TenantPortalMixin, TemplateView):
    """The tree (or search results) and the label sets this tenant can use."""

    template_name = "taxonomy/browse.html"

    def scoped_queryset(self):
        return LabelSet.objects.select_related("tenant").order_by("slug")

    def get_template_names(self) -> list[str]:
        if self.request.headers.get("HX-Request") and self.request.GET.get("partial") == "results":
            return ["taxonomy/_results.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()
        context["q"] = query
        if query:
            context["results"] = list(selectors.label_list(query=query).order_by("key")[:200])
        else:
            context["tree"] = selectors.label_tree(
                labels=Label.objects.select_related("replaced_by").order_by("key")
            )
        label_sets = list(self.get_queryset())
        for label_set in label_sets:
            revision = label_set.current_revision
            label_set.current = revision
            label_set.keys = revision.label_keys() if revision else []
        context["label_sets"] = label_sets
        context["can_edit_sets"] = role_at_least(self.membership, ADMIN) and not (
            self.membership.support
        )
        return context


class LabelDetailView(TenantPortalMixin, TemplateView):
    template_name = "taxonomy/label_detail.html"

    def scoped_queryset(self):
        return LabelSet.objects.select_related("tenant")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        label = (
            Label.objects.select_related("parent", "replaced_by")
            .filter(key=self.kwargs["key"])
            .first()
        )
        if label is None:
            raise Http404
        context["label"] = label
        context["children"] = label.children.order_by("key")
        context["history"] = label.history.select_related("actor")[:100]
        # Only the label sets this tenant can see (shared or its own) that use the label now.
        context["used_in"] = [
            label_set
            for label_set in self.get_queryset().order_by("slug")
            if label_set.current_revision and label.key in label_set.current_revision.label_keys()
        ]
        return context


def _add_errors(form, error: ValidationError) -> None:
    for field, field_messages in error.message_dict.items():
        field = {"labels": "labels", "label_keys": "labels"}.get(field, field)
        form.add_error(field if field in form.fields else None, field_messages)


class LabelSetCreateView(TenantPortalMixin, View):
    """Create the tenant's own label set from taxonomy labels (tenant admins)."""

    required_role = ADMIN
    template_name = "taxonomy/label_set_form.html"

    def scoped_queryset(self):
        return LabelSet.objects.all()

    def get(self, request):
        form = LabelSetForm(initial={"labels": request.GET.get("labels", "")})
        return render(request, self.template_name, {"form": form})

    def post(self, request):
        form = LabelSetForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                label_set = services.label_set_create(
                    tenant=self.tenant,
                    slug=data["slug"],
                    name=data["name"],
                    description=data["description"],
                    kind=data["kind"],
                    label_keys=data["labels"],
                    actor=request.user,
                )
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(
                    request, _("Label set %(slug)s created.") % {"slug": label_set.slug}
                )
                return redirect(reverse("taxonomy:browse") + f"#set-{label_set.slug}")
        return render(request, self.template_name, {"form": form}, status=400)


class LabelSetEditView(TenantPortalMixin, View):
    """Revise one of the tenant's own label sets: a new revision (trained models keep theirs)."""

    required_role = ADMIN
    template_name = "taxonomy/label_set_form.html"

    def scoped_queryset(self):
        return LabelSet.objects.all()

    def _own(self, slug: str) -> LabelSet:
        return self.get_scoped_object_or_404(
            queryset=LabelSet.objects.owned_by(self.tenant), slug=slug
        )

    def get(self, request, slug):
        label_set = self._own(slug)
        revision = label_set.current_revision
        form = LabelSetForm(
            editing=True,
            initial={
                "name": label_set.name,
                "description": label_set.description,
                "kind": label_set.kind,
                "labels": ", ".join(revision.label_keys() if revision else []),
            },
        )
        return render(request, self.template_name, {"form": form, "label_set": label_set})

    def post(self, request, slug):
        label_set = self._own(slug)
        form = LabelSetForm(request.POST, editing=True)
        if form.is_valid():
            data = form.cleaned_data
            try:
                revision = services.label_set_revise(
                    label_set=label_set,
                    label_keys=data["labels"],
                    kind=data["kind"],
                    name=data["name"],
                    description=data["description"],
                    note=data["note"],
                    actor=request.user,
                )
            except ValidationError as error:
                _add_errors(form, error)
            else:
                if revision is None:
                    messages.info(request, _("Nothing changed."))
                else:
                    messages.success(
                        request,
                        _("%(slug)s is now at revision %(number)s.")
                        % {"slug": label_set.slug, "number": revision.number},
                    )
                return redirect(reverse("taxonomy:browse") + f"#set-{label_set.slug}")
        return render(
            request, self.template_name, {"form": form, "label_set": label_set}, status=400
        )


class LabelProposalListView(TenantPortalMixin, View):
    """The tenant's label proposals with their status, and the form to propose one."""

    template_name = "taxonomy/proposals.html"

    def scoped_queryset(self):
        return LabelProposal.objects.select_related("parent", "proposed_by", "label")

    def _render(self, request, form, status=200):
        return render(
            request,
            self.template_name,
            {
                "proposals": self.get_queryset()[:200],
                "form": form,
                "can_propose": role_at_least(self.membership, REQUESTER)
                and not self.membership.support,
            },
            status=status,
        )

    def get(self, request):
        return self._render(request, LabelProposalForm(initial={"key": request.GET.get("key", "")}))

    def post(self, request):
        if not role_at_least(self.membership, REQUESTER):
            raise PermissionDenied(_("Proposing labels needs the requester role."))
        form = LabelProposalForm(request.POST)
        if form.is_valid():
            try:
                proposal = services.label_proposal_create(
                    tenant=self.tenant, proposed_by=request.user, **form.cleaned_data
                )
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(
                    request,
                    _("Proposed %(key)s; platform staff will decide.") % {"key": proposal.key},
                )
                return redirect("taxonomy:proposals")
        return self._render(request, form, status=400)
