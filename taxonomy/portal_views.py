"""Portal pages for the taxonomy: browse and search the tree, one label with its history."""

from __future__ import annotations

from django.http import Http404
from django.views.generic import TemplateView

from taxonomy import selectors
from taxonomy.models import Label, LabelSet
from tenants.scoping import TenantPortalMixin


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
