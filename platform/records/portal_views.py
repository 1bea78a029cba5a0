"""Portal pages of project records: the list and search, one record with its timeline, editing
sections and items (with their revisions), and the Markdown export."""

from __future__ import annotations

import difflib

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from core.errors import DomainError
from core.scoping import TenantPortalMixin, role_at_least
from records import export, selectors, services
from records.forms import ItemForm, SectionForm
from records.models import SINGLE_KINDS, Milestone, Section, SectionKind
from tenants.models import Need, Role

_ITEM_KINDS = (SectionKind.PROBLEM, SectionKind.LESSON, SectionKind.RETROSPECTIVE)


class _RecordPage(TenantPortalMixin):
    def scoped_queryset(self):
        return Need.objects.select_related(
            "tenant", "label_set", "model", "created_by", "approved_by"
        )

    def need(self) -> Need:
        return self.get_scoped_object_or_404(slug=self.kwargs["slug"])

    def section(self, need: Need) -> Section:
        try:
            return selectors.section_for(tenant=self.tenant, need=need, pk=self.kwargs["pk"])
        except Section.DoesNotExist:
            raise Http404 from None

    def can_edit(self) -> bool:
        return not self.membership.support and role_at_least(self.membership, Role.REQUESTER)


class RecordListView(_RecordPage, TemplateView):
    template_name = "records/record_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()[:200]
        context.update(
            needs=selectors.needs_with_records(tenant=self.tenant),
            query=query,
            hits=selectors.record_search(tenant=self.tenant, query=query) if query else None,
        )
        return context


class RecordView(_RecordPage, TemplateView):
    template_name = "records/record.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        need = self.need()
        context.update(
            view=selectors.record_view(tenant=self.tenant, need=need),
            need=need,
            can_edit=self.can_edit(),
            milestones=Milestone.choices,
        )
        return context


class SectionEditView(_RecordPage, View):
    required_role = Role.REQUESTER
    template_name = "records/section_form.html"

    def _kind(self) -> str:
        kind = self.kwargs["kind"]
        if kind not in SINGLE_KINDS:
            raise Http404
        return kind

    def _render(self, request, need, form, *, status=200, current=None, mine=""):
        kind = SectionKind(self._kind())
        conflict_diff = ""
        if current is not None:
            conflict_diff = "\n".join(
                difflib.unified_diff(
                    current.body.splitlines(),
                    mine.splitlines(),
                    fromfile=_("saved (revision %(n)s)") % {"n": current.revision},
                    tofile=_("yours"),
                    lineterm="",
                )
            )
        return render(
            request,
            self.template_name,
            {
                "need": need,
                "kind": kind,
                "form": form,
                "current": current,
                "conflict_diff": conflict_diff,
            },
            status=status,
        )

    def get(self, request, slug, kind):
        need = self.need()
        section = selectors.single_section(tenant=self.tenant, need=need, kind=self._kind())
        form = SectionForm(
            initial={
                "body": section.body if section else "",
                "base_revision": section.revision if section else 0,
            }
        )
        return self._render(request, need, form)

    def post(self, request, slug, kind):
        need = self.need()
        form = SectionForm(request.POST)
        if not form.is_valid():
            return self._render(request, need, form, status=400)
        try:
            services.section_save(
                need=need, kind=self._kind(), author=request.user, **form.cleaned_data
            )
        except services.StaleRevision as stale:
            # Keep their text; base it on the saved revision so a deliberate second save wins.
            data = request.POST.copy()
            data["base_revision"] = str(stale.current.revision)
            form = SectionForm(data)
            form.is_valid()
            form.add_error(None, stale.message)
            return self._render(
                request,
                need,
                form,
                status=409,
                current=stale.current,
                mine=form.cleaned_data.get("body", ""),
            )
        except DomainError as error:
            form.add_error(None, error.message)
            return self._render(request, need, form, status=error.status_code)
        messages.success(request, _("Section saved."))
        return redirect("records:record", slug=need.slug)


class ItemEditView(_RecordPage, View):
    """New (no pk) or existing problem, lesson or retrospective."""

    required_role = Role.REQUESTER
    template_name = "records/item_form.html"

    def _form(self, need, kind, *args, **kwargs) -> ItemForm:
        versions = selectors.linkable_versions(tenant=self.tenant, need=need)
        return ItemForm(*args, kind=kind, versions=versions, **kwargs)

    def _render(self, request, need, form, *, section=None, status=200, current=None):
        return render(
            request,
            self.template_name,
            {
                "need": need,
                "form": form,
                "kind": SectionKind(form.kind),
                "section": section,
                "current": current,
            },
            status=status,
        )

    def _new_kind(self, request) -> str:
        kind = request.GET.get("kind") or request.POST.get("kind") or ""
        if kind not in _ITEM_KINDS:
            raise Http404
        return kind

    def get(self, request, slug, pk=None):
        need = self.need()
        if pk is None:
            kind = self._new_kind(request)
            initial = {"base_revision": 0}
            if kind == SectionKind.PROBLEM:
                initial["status"] = "open"
            if kind == SectionKind.RETROSPECTIVE:
                milestone = request.GET.get("milestone", Milestone.LAUNCH)
                if milestone not in Milestone.values:
                    raise Http404
                draft = selectors.retrospective_draft(
                    tenant=self.tenant, need=need, milestone=milestone
                )
                initial.update(title=draft["title"], body=draft["body"], milestone=milestone)
            return self._render(request, need, self._form(need, kind, initial=initial))
        section = self.section(need)
        if section.kind not in _ITEM_KINDS:
            raise Http404
        initial = {
            "title": section.title,
            "body": section.body,
            "status": section.status,
            "model_version": section.model_version_id,
            "label": section.label.key if section.label else "",
            "case": section.case_id,
            "labels": ", ".join(label.key for label in section.labels.all()),
            "tags": ", ".join(section.tags),
            "shareable": section.shareable,
            "milestone": section.milestone,
            "base_revision": section.revision,
        }
        form = self._form(need, section.kind, initial=initial)
        return self._render(request, need, form, section=section)

    def post(self, request, slug, pk=None):
        need = self.need()
        section = None
        if pk is None:
            kind = self._new_kind(request)
        else:
            section = self.section(need)
            kind = section.kind
            if kind not in _ITEM_KINDS:
                raise Http404
        form = self._form(need, kind, request.POST)
        if not form.is_valid():
            return self._render(request, need, form, section=section, status=400)
        fields = form.service_fields()
        try:
            if section is None:
                if kind == SectionKind.RETROSPECTIVE:
                    fields["since"] = selectors.retrospective_draft(
                        tenant=self.tenant, need=need, milestone=fields.get("milestone", "launch")
                    )["since"]
                created = services.item_create(need=need, kind=kind, author=request.user, **fields)
                anchor = created.pk
            else:
                services.item_update(
                    section=section,
                    base_revision=form.cleaned_data["base_revision"],
                    author=request.user,
                    **fields,
                )
                anchor = section.pk
        except services.StaleRevision as stale:
            data = request.POST.copy()
            data["base_revision"] = str(stale.current.revision)
            form = self._form(need, kind, data)
            form.is_valid()
            form.add_error(None, stale.message)
            return self._render(
                request, need, form, section=section, status=409, current=stale.current
            )
        except DomainError as error:
            for field, problems in (error.fields or {}).items():
                target = field if field in form.fields else None
                for problem in problems:
                    form.add_error(target, problem)
            if not error.fields:
                form.add_error(None, error.message)
            return self._render(request, need, form, section=section, status=error.status_code)
        messages.success(request, _("Saved."))
        return redirect(f"/records/{need.slug}/#section-{anchor}")


class HistoryView(_RecordPage, TemplateView):
    template_name = "records/history.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        need = self.need()
        section = self.section(need)
        context.update(
            need=need,
            section=section,
            revisions=selectors.section_history(tenant=self.tenant, section=section),
        )
        return context


class ExportView(_RecordPage, View):
    def get(self, request, slug):
        need = self.need()
        response = HttpResponse(
            export.record_markdown(tenant=self.tenant, need=need),
            content_type="text/markdown; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="record-{need.slug}.md"'
        return response
