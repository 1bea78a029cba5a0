"""Portal pages: "try it", batch jobs (upload, live progress, download) and dead letters."""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from core.errors import DomainError
from core.scoping import TenantPortalMixin
from serving import batch_io, selectors, services, sync, validation, webhooks
from serving.api import results_download
from serving.forms import ScheduleForm, TenantLanguageForm, WebhookForm
from serving.models import BatchJob, BatchSource, BatchStatus, ScheduledBatch, WebhookDelivery
from serving.ranked import ranked_scores
from tenants.models import Need, Role
from tenants.services import (
    tenant_language_set,
    tenant_webhook_secret_rotate,
    tenant_webhook_set,
)


def _servable_needs(tenant):
    return Need.objects.for_tenant(tenant).filter(model__isnull=False).order_by("slug")


class TryView(TenantPortalMixin, TemplateView):
    """Paste text, pick a need, see tags and scores (htmx swaps in the result)."""

    template_name = "serving/try.html"

    def scoped_queryset(self):
        return Need.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["needs"] = _servable_needs(self.tenant)
        context["max_chars"] = settings.TAG_MAX_TEXT_CHARS
        return context

    def post(self, request):
        slug = request.POST.get("need", "")
        text = request.POST.get("text", "")
        context = {"text": text}
        try:
            ids, texts = validation.validate_items(
                {"items": [{"id": "try", "text": text}]}, max_items=1
            )
            served = sync.resolve_need(tenant_id=self.tenant.pk, need_slug=slug)
            # A preview, not production traffic: kept out of the prediction log and monitoring.
            result = sync.tag_inline(served, ids, texts, log=False)[0]
            # The tenant's names come back; the page shows each with its global key (tooltip).
            need = Need.objects.for_tenant(self.tenant).filter(slug=served.slug).first()
            keys = need.label_mapping if need is not None else {}
            context["result"] = result
            context["tags"] = [(keys.get(name, name), name) for name in result["labels"]]
            context["ranked"] = [
                (keys.get(name, name), name, score)
                for name, score in ranked_scores(result["scores"])
            ]
            context["label_names"] = {key: name for name, key in keys.items()}
            context["model"] = served.model.ref
            context["need"] = served.slug
        except DomainError as exc:
            context["error"] = _error_text(exc)
        return render(request, "serving/_try_result.html", context)


def _plain(text: str) -> str:
    """API messages quote names in `backticks`; the portal shows plain quotes instead."""
    return re.sub(r"`([^`]*)`", r"'\1'", text)


def _error_text(exc: DomainError) -> str:
    """The API's message and its per-field details, keeping the file's line numbers."""
    message = exc.message
    details = []
    for key, msgs in (getattr(exc, "fields", None) or {}).items():
        for msg in msgs:
            if msg in message:
                continue  # already said in the message itself
            details.append(f"{key.capitalize()}: {msg}" if key.startswith("line ") else msg)
    return _plain(" ".join([message, *details]))


def _with_chunk_status(jobs) -> list[BatchJob]:
    """Jobs with `chunk_status` for the row template (chunks waiting on a lease, failed ones);
    only jobs that are running or failed need it."""
    jobs = list(jobs)
    for job in jobs:
        if job.is_active or job.status == BatchStatus.FAILED:
            job.chunk_status = selectors.batch_chunk_status(job=job)
    return jobs


class BatchListView(TenantPortalMixin, TemplateView):
    template_name = "serving/batches.html"

    def scoped_queryset(self):
        return BatchJob.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["jobs"] = _with_chunk_status(selectors.batch_jobs_for(tenant=self.tenant)[:50])
        context["needs"] = _servable_needs(self.tenant)
        context["can_upload"] = self.membership.has_role(Role.REQUESTER)
        context["max_mb"] = round(settings.UPLOAD_MAX_BYTES / 1024 / 1024, 1)
        return context

    def post(self, request):
        if not self.membership.has_role(Role.REQUESTER):
            messages.error(request, _("Uploading a batch needs the requester role."))
            return redirect("serving:batches")
        need = selectors.need_for(tenant=self.tenant, slug=request.POST.get("need", ""))
        upload = request.FILES.get("file")
        try:
            if need is None:
                raise DomainError("need_not_found", _("Pick one of your needs."))
            if upload is None:
                raise DomainError("invalid", _("Choose a CSV or JSONL file."))
            sync.check_servable(need=need)
            rows = batch_io.parse_upload(upload)
            job = services.batch_job_create(
                tenant=self.tenant,
                need=need,
                rows=rows,
                source=BatchSource.UPLOAD,
                filename=upload.name or "",
                user=request.user,
            )
        except DomainError as exc:
            messages.error(request, _("Upload refused: %(error)s") % {"error": _error_text(exc)})
        else:
            messages.success(
                request,
                _("Batch #%(job)s queued: %(count)s items.")
                % {"job": job.pk, "count": job.total_items},
            )
        return redirect("serving:batches")


class BatchRowView(TenantPortalMixin, View):
    """The htmx fragment of one job's row; it re-polls itself while the job is active."""

    def scoped_queryset(self):
        return BatchJob.objects.select_related("need")

    def get(self, request, pk: int):
        (job,) = _with_chunk_status([self.get_scoped_object_or_404(pk=pk)])
        return render(request, "serving/_batch_row.html", {"job": job})


class BatchCancelView(TenantPortalMixin, View):
    required_role = Role.REQUESTER

    def scoped_queryset(self):
        return BatchJob.objects.select_related("need")

    def post(self, request, pk: int):
        job = self.get_scoped_object_or_404(pk=pk)
        services.batch_job_cancel(job=job)
        if request.headers.get("HX-Request"):
            return render(request, "serving/_batch_row.html", {"job": job})
        return redirect("serving:batches")


class BatchDownloadView(TenantPortalMixin, View):
    def scoped_queryset(self):
        return BatchJob.objects.all()

    def get(self, request, pk: int, fmt: str):
        job = self.get_scoped_object_or_404(pk=pk)
        if fmt not in ("csv", "jsonl"):
            raise Http404(_("Results come as .csv or .jsonl."))
        try:
            return results_download(
                job,
                fmt,
                request.GET.get("include_text"),
                label_names=request.GET.get("label_names"),
            )
        except DomainError as exc:
            return HttpResponse(
                _error_text(exc), status=exc.status_code, content_type="text/plain; charset=utf-8"
            )


class DeadLetterListView(TenantPortalMixin, TemplateView):
    template_name = "serving/dead_letters.html"

    def scoped_queryset(self):
        return WebhookDelivery.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["dead_letters"] = selectors.dead_letters_for(tenant=self.tenant)[:100]
        context["webhook_url"] = self.tenant.webhook_url
        context["can_replay"] = self.membership.has_role(Role.REQUESTER)
        return context


class DeadLetterReplayView(TenantPortalMixin, View):
    required_role = Role.REQUESTER

    def scoped_queryset(self):
        return WebhookDelivery.objects.all()

    def post(self, request, pk: int):
        delivery = self.get_scoped_object_or_404(pk=pk)
        if webhooks.delivery_replay(delivery=delivery):
            messages.success(
                request, _("Delivery #%(delivery)s queued again.") % {"delivery": delivery.pk}
            )
        else:
            messages.error(
                request,
                _("Delivery #%(delivery)s is not a dead letter.") % {"delivery": delivery.pk},
            )
        return redirect("serving:dead-letters")


def _domain_error_to_form(form, exc: DomainError) -> None:
    fields = exc.fields if isinstance(exc.fields, dict) else {}
    for field, field_messages in fields.items():
        form.add_error(field if field in form.fields else None, field_messages)
    if not fields:
        form.add_error(None, exc.message)


class ScheduleListView(TenantPortalMixin, View):
    """Scheduled batches: "tag everything new since the last run" on a crontab. Requesters
    create and change them; everyone sees them and their runs."""

    template_name = "serving/schedules.html"

    def scoped_queryset(self):
        return ScheduledBatch.objects.select_related("need", "last_job").order_by("name")

    def _render(self, request, form, status=200):
        return render(
            request,
            self.template_name,
            {
                "schedules": self.get_queryset(),
                "form": form,
                "can_edit": self.membership.has_role(Role.REQUESTER)
                and not self.membership.support,
            },
            status=status,
        )

    def get(self, request):
        return self._render(request, ScheduleForm(tenant=self.tenant))

    def post(self, request):
        if not self.membership.has_role(Role.REQUESTER):
            raise PermissionDenied(_("Scheduling batches needs the requester role."))
        form = ScheduleForm(request.POST, tenant=self.tenant)
        if form.is_valid():
            try:
                scheduled = services.scheduled_batch_create(tenant=self.tenant, **form.cleaned_data)
            except DomainError as exc:
                _domain_error_to_form(form, exc)
            else:
                messages.success(
                    request, _("Schedule “%(name)s” created.") % {"name": scheduled.name}
                )
                return redirect("serving:schedule", pk=scheduled.pk)
        return self._render(request, form, status=400)


class ScheduleDetailView(TenantPortalMixin, View):
    """One schedule: edit it, pause or resume it, delete it, and see the batches it ran."""

    template_name = "serving/schedule_detail.html"

    def scoped_queryset(self):
        return ScheduledBatch.objects.select_related("need", "tenant")

    def _render(self, request, scheduled, form, status=200):
        return render(
            request,
            self.template_name,
            {
                "scheduled": scheduled,
                "form": form,
                "jobs": _with_chunk_status(
                    BatchJob.objects.for_tenant(self.tenant)
                    .filter(scheduled=scheduled)
                    .select_related("need")[:50]
                ),
                "can_edit": self.membership.has_role(Role.REQUESTER)
                and not self.membership.support,
            },
            status=status,
        )

    def get(self, request, pk: int):
        scheduled = self.get_scoped_object_or_404(pk=pk)
        form = ScheduleForm(
            tenant=self.tenant,
            initial={
                "name": scheduled.name,
                "need": scheduled.need.slug,
                "crontab": scheduled.crontab,
                "enabled": scheduled.enabled,
            },
        )
        return self._render(request, scheduled, form)

    def post(self, request, pk: int):
        if not self.membership.has_role(Role.REQUESTER):
            raise PermissionDenied(_("Changing schedules needs the requester role."))
        scheduled = self.get_scoped_object_or_404(pk=pk)
        action = request.POST.get("action", "save")
        if action == "delete":
            services.scheduled_batch_delete(scheduled=scheduled)
            messages.success(request, _("Schedule “%(name)s” deleted.") % {"name": scheduled.name})
            return redirect("serving:schedules")
        if action in ("pause", "resume"):
            services.scheduled_batch_update(scheduled=scheduled, enabled=action == "resume")
            messages.success(
                request,
                _("Schedule paused.") if action == "pause" else _("Schedule resumed."),
            )
            return redirect("serving:schedule", pk=scheduled.pk)
        form = ScheduleForm(request.POST, tenant=self.tenant)
        if form.is_valid():
            try:
                services.scheduled_batch_update(scheduled=scheduled, **form.cleaned_data)
            except DomainError as exc:
                _domain_error_to_form(form, exc)
            else:
                messages.success(request, _("Schedule saved."))
                return redirect("serving:schedule", pk=scheduled.pk)
        return self._render(request, scheduled, form, status=400)


class WebhookSettingsView(TenantPortalMixin, View):
    """The tenant's webhook: URL, rotate the signing secret (shown once), send a test."""

    required_role = Role.ADMIN
    template_name = "serving/webhook.html"

    def scoped_queryset(self):
        return WebhookDelivery.objects.all()

    def _render(self, request, form, *, secret="", test=None, status=200, language_form=None):
        language_form = language_form or TenantLanguageForm(
            initial={"language": self.tenant.language}
        )
        context = {"form": form, "secret": secret, "test": test, "tenant": self.tenant}
        context["language_form"] = language_form
        response = render(request, self.template_name, context, status=status)
        if secret:
            response["Cache-Control"] = "no-store"
        return response

    def get(self, request):
        return self._render(request, WebhookForm(initial={"url": self.tenant.webhook_url}))

    def post(self, request):
        action = request.POST.get("action", "save")
        form = WebhookForm(initial={"url": self.tenant.webhook_url})
        if action == "rotate":
            secret = tenant_webhook_secret_rotate(tenant=self.tenant)
            return self._render(request, form, secret=secret)
        if action == "test":
            result = webhooks.webhook_test_send(tenant=self.tenant)
            return self._render(request, form, test=result)
        if action == "language":
            language_form = TenantLanguageForm(request.POST)
            if language_form.is_valid():
                tenant_language_set(
                    tenant=self.tenant, language=language_form.cleaned_data["language"]
                )
                messages.success(request, _("Language of alert summaries saved."))
                return redirect("serving:webhook")
            return self._render(request, form, status=400, language_form=language_form)
        form = WebhookForm(request.POST)
        if form.is_valid():
            try:
                tenant_webhook_set(tenant=self.tenant, url=form.cleaned_data["url"])
            except ValidationError as error:
                form.add_error("url", error.message_dict.get("url", error.messages))
            else:
                messages.success(request, _("Webhook saved."))
                return redirect("serving:webhook")
        return self._render(request, form, status=400)
