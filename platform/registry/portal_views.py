"""Portal pages of the registry: models, versions and cards, compare, runs, uploads, training."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView, View

from core.scoping import TenantPortalMixin, role_at_least
from registry import evaluation, model_card, selectors
from registry.errors import ROW_ERRORS_SHOWN, DatasetImportError, RegistryError
from registry.ml import ALGORITHMS
from registry.models import (
    AliasName,
    DatasetSnapshot,
    ModelVersion,
    RegisteredModel,
    RunStatus,
    TrainingRun,
)
from registry.services.aliases import alias_rollback, alias_set
from registry.services.datasets import current_revision, dataset_file_upload, snapshot_create
from registry.services.offers import model_offer, model_offer_withdraw
from registry.services.training import training_run_create
from registry.services.versions import versions_compare
from taxonomy.models import LabelSet
from taxonomy.selectors import visible_label_set
from tenants.models import Need, Role


class ModelListView(TenantPortalMixin, TemplateView):
    template_name = "registry/model_list.html"

    def scoped_queryset(self):
        return RegisteredModel.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        models = list(selectors.models_for_tenant(self.tenant))
        latest = {}
        for version in selectors.versions_for_tenant(self.tenant).filter(
            registered_model__in=models
        ):
            latest.setdefault(version.registered_model_id, version)
        context["rows"] = [
            {
                "model": m,
                "aliases": {a.name: a.version for a in m.aliases.all()},
                "latest": latest.get(m.pk),
            }
            for m in models
        ]
        context["runs"] = selectors.runs_for_tenant(self.tenant)[:10]
        context["can_train"] = role_at_least(self.membership, Role.ADMIN)
        context["label_sets"] = LabelSet.objects.for_tenant(self.tenant).order_by("slug")
        context["algorithms"] = ALGORITHMS
        return context


class ModelDetailView(TenantPortalMixin, TemplateView):
    template_name = "registry/model_detail.html"

    def scoped_queryset(self):
        return RegisteredModel.objects.select_related("label_set", "tenant")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        model = self.get_scoped_object_or_404(pk=self.kwargs["pk"])
        versions = list(selectors.versions_for_tenant(self.tenant).filter(registered_model=model))
        aliases = {a.name: a.version for a in model.aliases.select_related("version")}
        context.update(
            model=model,
            versions=versions,
            aliases=aliases,
            events=selectors.alias_history(model, limit=20),
            runs=selectors.runs_for_tenant(self.tenant).filter(registered_model=model)[:10],
            can_manage=selectors.can_manage_model(
                user=self.request.user, membership=self.membership, registered_model=model
            ),
            alias_names=AliasName.values,
            alias_rows=[(name, aliases.get(name)) for name in AliasName.values],
            needs=list(selectors.needs_using(model, tenant=self.tenant)),
            is_owner=self.tenant is not None and model.tenant_id == self.tenant.pk,
        )
        if context["is_owner"]:
            context["subscriptions"] = selectors.model_subscriptions(
                registered_model=model, tenant=self.tenant
            )
            context["keep_until_default"] = (timezone.now() + timedelta(days=30)).strftime(
                "%Y-%m-%d"
            )
        return context

    def post(self, request, *args, **kwargs):
        """Promote (alias + version) or roll back (alias) from the detail page."""
        model = self.get_scoped_object_or_404(pk=self.kwargs["pk"])
        if not selectors.can_manage_model(
            user=request.user, membership=self.membership, registered_model=model
        ):
            messages.error(
                request, _("Only the model's owner admins (or platform staff) may do that.")
            )
            return redirect("registry:model", pk=model.pk)
        alias = request.POST.get("alias", AliasName.PRODUCTION)
        reason = request.POST.get("reason", "")[:300]
        if request.POST.get("action") in {"offer", "withdraw-offer"}:
            return self._offer(request, model)
        try:
            if request.POST.get("action") == "rollback":
                moved = alias_rollback(
                    registered_model=model, alias=alias, actor=request.user, reason=reason
                )
            else:
                version = model.versions.filter(version=request.POST.get("version") or 0).first()
                if version is None:
                    raise RegistryError("no_version", _("Choose a version."))
                moved = alias_set(
                    registered_model=model,
                    alias=alias,
                    version=version,
                    actor=request.user,
                    reason=reason,
                )
        except RegistryError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                _("%(alias)s now points at v%(version)s.")
                % {"alias": alias, "version": moved.version.version},
            )
        return redirect("registry:model", pk=model.pk)

    def _offer(self, request, model: RegisteredModel):
        try:
            if request.POST.get("action") == "offer":
                model_offer(
                    registered_model=model,
                    tenant=self.tenant,
                    description=request.POST.get("description", ""),
                )
                messages.success(request, _("The model is now offered to other units."))
            else:
                keep = parse_date(request.POST.get("keep_until", "") or "")
                if keep is None:
                    raise RegistryError("bad_keep_until", _("Give the date subscribers keep it."))
                model_offer_withdraw(
                    registered_model=model,
                    tenant=self.tenant,
                    keep_until=timezone.make_aware(datetime.combine(keep, time(23, 59))),
                )
                messages.success(
                    request, _("Offer withdrawn; subscribers keep the model until the date given.")
                )
        except RegistryError as exc:
            messages.error(request, exc.message)
        return redirect("registry:model", pk=model.pk)


class _VersionMixin(TenantPortalMixin):
    def scoped_queryset(self):
        return ModelVersion.objects.select_related(
            "registered_model__label_set", "registered_model__tenant", "snapshot", "revision",
            "parent", "created_by", "training_run",
        )  # fmt: skip

    def version(self) -> ModelVersion:
        return self.get_scoped_object_or_404(
            registered_model_id=self.kwargs["pk"], version=self.kwargs["number"]
        )


class VersionCardView(_VersionMixin, TemplateView):
    template_name = "registry/model_card.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        version = self.version()
        context.update(model_card.card_data(version, viewer_tenant=self.tenant))
        context["others"] = list(
            selectors.versions_for_tenant(self.tenant)
            .filter(registered_model__label_set=version.registered_model.label_set)
            .exclude(pk=version.pk)[:20]
        )
        return context


class VersionCardMarkdownView(_VersionMixin, View):
    def get(self, request, *args, **kwargs):
        version = self.version()
        response = HttpResponse(
            model_card.card_markdown(version, viewer_tenant=self.tenant),
            content_type="text/markdown; charset=utf-8",
        )
        name = f"{version.registered_model.name.replace('/', '_')}-v{version.version}.md"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class ConfusionSvgView(_VersionMixin, View):
    def get(self, request, *args, **kwargs):
        version = self.version()
        svg = evaluation.confusion_svg(version.metrics, title=str(version))
        return HttpResponse(svg, content_type="image/svg+xml")


class CompareView(TenantPortalMixin, TemplateView):
    template_name = "registry/compare.html"

    def scoped_queryset(self):
        return ModelVersion.objects.select_related("registered_model", "snapshot")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        a = self.get_scoped_object_or_404(pk=self.request.GET.get("a", ""))
        b = self.get_scoped_object_or_404(pk=self.request.GET.get("b", ""))
        context.update(a=a, b=b)
        try:
            result = versions_compare(a=a, b=b)
        except RegistryError as exc:
            context["error"] = exc.message
            return context
        context["result"] = result
        context["overall"] = [
            {"key": key.replace("_", " "), **values} for key, values in result["overall"].items()
        ]
        context["per_label"] = [{"label": k, **v} for k, v in result["per_label"].items()]
        context["svg_a"] = evaluation.confusion_svg(result["a"]["metrics"], title=f"A: {a}")
        context["svg_b"] = evaluation.confusion_svg(result["b"]["metrics"], title=f"B: {b}")
        return context


class RunDetailView(TenantPortalMixin, TemplateView):
    template_name = "registry/run_detail.html"

    def scoped_queryset(self):
        return TrainingRun.objects.select_related("registered_model", "snapshot", "created_by")

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["registry/_run_progress.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        run = self.get_scoped_object_or_404(pk=self.kwargs["run_id"])
        context["run"] = run
        context["finished"] = run.status in {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        }
        context["version"] = (
            ModelVersion.objects.for_tenant(self.tenant).filter(training_run=run).first()
        )
        return context


class TrainView(TenantPortalMixin, View):
    """POST: queue a training run of a visible label set for this tenant (tenant admins)."""

    required_role = Role.ADMIN

    def scoped_queryset(self):
        return LabelSet.objects.all()

    def post(self, request, *args, **kwargs):
        label_set = visible_label_set(tenant=self.tenant, slug=request.POST.get("label_set", ""))
        if label_set is None:
            messages.error(request, _("Choose a label set."))
            return redirect("registry:list")
        snapshot = None
        if request.POST.get("snapshot"):
            snapshot = (
                DatasetSnapshot.objects.owned_by(self.tenant)
                .filter(content_hash=request.POST["snapshot"])
                .first()
            )
            if snapshot is None:
                messages.error(request, _("Unknown snapshot."))
                return redirect("registry:snapshots")
        try:
            run = training_run_create(
                label_set=label_set,
                tenant=self.tenant,
                algorithm=request.POST.get("algorithm", "tfidf-logreg"),
                promote_to=request.POST.get("promote_to", ""),
                snapshot=snapshot,
                # An unticked box sends nothing: the hidden field says the choice was offered.
                refit_on_all=(
                    "refit_on_all" in request.POST if "refit_choice" in request.POST else True
                ),
                actor=request.user,
            )
        except RegistryError as exc:
            messages.error(request, exc.message)
            return redirect("registry:list")
        messages.success(request, _("Training run #%(run)s queued.") % {"run": run.pk})
        return redirect("registry:run", run_id=run.pk)


class UploadForm(forms.Form):
    label_set = forms.ChoiceField(label=gettext_lazy("Label set"), required=False)
    need = forms.ChoiceField(
        label=gettext_lazy("Need"),
        required=False,
        help_text=gettext_lazy(
            "Or one of your needs: its label set, and your own label names resolve too."
        ),
    )
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy("CSV with text,labels columns (labels separated by |) or JSONL."),
    )

    def __init__(self, *args, label_sets=(), needs=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label_set"].choices = [
            (ls.slug, f"{ls.name} ({ls.slug})") for ls in label_sets
        ]
        self.fields["need"].choices = [("", "—")] + [
            (need.slug, f"{need.name} ({need.slug})") for need in needs
        ]

    def clean(self):
        data = super().clean()
        if not data.get("label_set") and not data.get("need"):
            raise forms.ValidationError(gettext_lazy("Choose a label set or one of your needs."))
        return data


class DatasetUploadView(TenantPortalMixin, TemplateView):
    template_name = "registry/upload.html"
    required_role = Role.REVIEWER

    def scoped_queryset(self):
        return LabelSet.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("form", UploadForm(label_sets=self.get_queryset(), needs=self._needs()))
        return context

    def _needs(self):
        return (
            Need.objects.for_tenant(self.tenant)
            .filter(label_set__isnull=False)
            .select_related("label_set")
        )

    def post(self, request, *args, **kwargs):
        form = UploadForm(
            request.POST, request.FILES, label_sets=self.get_queryset(), needs=self._needs()
        )
        context = {"form": form}
        if form.is_valid():
            need = (
                self._needs().filter(slug=form.cleaned_data["need"]).first()
                if form.cleaned_data.get("need")
                else None
            )
            try:
                label_set, report = dataset_file_upload(
                    tenant=self.tenant,
                    # A need names its own label set.
                    label_set_slug="" if need else form.cleaned_data.get("label_set") or "",
                    need=need,
                    upload=form.cleaned_data["file"],
                )
            except DatasetImportError as exc:
                context["row_errors"] = exc.errors[:ROW_ERRORS_SHOWN]
                context["error_counts"] = exc.counts()
                context["error_total"] = len(exc.errors)
                context["error"] = exc.message
            except RegistryError as exc:
                context["error"] = exc.message
            else:
                context["report"] = report
                context["label_set"] = label_set
        status = 400 if "error" in context else 200
        return self.render_to_response(self.get_context_data(**context), status=status)


class SnapshotListView(TenantPortalMixin, TemplateView):
    """The tenant's snapshots, and a form to make one explicitly before training (admins)."""

    template_name = "registry/snapshots.html"

    def scoped_queryset(self):
        return LabelSet.objects.select_related("tenant").order_by("slug")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["snapshots"] = (
            DatasetSnapshot.objects.owned_by(self.tenant)
            .select_related("revision__label_set", "created_by")
            .order_by("-created_at")[:100]
        )
        context["label_sets"] = self.get_queryset()
        context["can_snapshot"] = role_at_least(self.membership, Role.ADMIN)
        return context

    def post(self, request, *args, **kwargs):
        if not role_at_least(self.membership, Role.ADMIN):
            raise PermissionDenied(_("Making snapshots needs the admin role."))
        label_set = visible_label_set(tenant=self.tenant, slug=request.POST.get("label_set", ""))
        try:
            seed = int(request.POST.get("seed") or 42)
            test_fraction = float(request.POST.get("test_fraction") or 0.2)
        except ValueError:
            seed, test_fraction = -1, 0.0
        if label_set is None:
            messages.error(request, _("Choose a label set."))
        elif not (0 <= seed <= 2_147_483_647 and 0.05 <= test_fraction <= 0.5):
            messages.error(request, _("Give a seed ≥ 0 and a test share between 0.05 and 0.5."))
        else:
            try:
                snapshot = snapshot_create(
                    revision=current_revision(label_set),
                    tenant=self.tenant,
                    seed=seed,
                    test_fraction=test_fraction,
                    actor=request.user,
                )
            except RegistryError as exc:
                messages.error(request, exc.message)
            else:
                return redirect("registry:snapshot", content_hash=snapshot.content_hash)
        return self.render_to_response(self.get_context_data(), status=400)


class SnapshotDetailView(TenantPortalMixin, TemplateView):
    """A snapshot's split and label distribution, with the button to train on it."""

    template_name = "registry/snapshot_detail.html"

    def scoped_queryset(self):
        return DatasetSnapshot.objects.select_related("revision__label_set", "created_by")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        snapshot = self.get_scoped_object_or_404(
            queryset=DatasetSnapshot.objects.owned_by(self.tenant).select_related(
                "revision__label_set", "created_by"
            ),
            content_hash=self.kwargs["content_hash"],
        )
        summary = selectors.snapshot_summary(snapshot)
        context.update(
            peak=max((row["total"] for row in summary["labels"]), default=0) or 1,
            snapshot=snapshot,
            summary=summary,
            empty_labels=[row["label"] for row in summary["labels"] if row["total"] == 0],
            algorithms=sorted(ALGORITHMS),
            can_train=role_at_least(self.membership, Role.ADMIN),
        )
        return context
