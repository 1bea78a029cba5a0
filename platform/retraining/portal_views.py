"""Portal pages: a tenant's retrains, and the champion/challenger comparison with its actions."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import TemplateView

from core.errors import DomainError
from core.scoping import TenantPortalMixin, role_at_least
from monitoring.evidence import label_names
from registry.models import Algorithm
from retraining import selectors, services
from retraining.models import Retrain, RetrainStatus
from retraining.shadow import retrain_shadow_summary
from tenants.models import Need, Role


class RetrainListView(TenantPortalMixin, TemplateView):
    template_name = "retraining/list.html"

    def scoped_queryset(self):
        return Need.objects.select_related("model")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            retrains=selectors.retrains_for_tenant(self.tenant)[:100],
            needs=self.get_queryset().filter(model__isnull=False).order_by("slug"),
            can_manage=role_at_least(self.membership, Role.ADMIN),
            algorithms=Algorithm.choices,
        )
        return context


def _rows(result: dict, names: dict[str, str]) -> list[dict]:
    return [
        {"key": key, "name": names.get(key, key), **row}
        for key, row in (result.get("per_label") or {}).items()
    ]


class RetrainDetailView(TenantPortalMixin, TemplateView):
    """The comparison page: overall and per-label deltas on both sets, flips, the guard."""

    template_name = "retraining/detail.html"

    def scoped_queryset(self):
        return Retrain.objects.select_related(
            "need", "champion__registered_model", "challenger__registered_model", "snapshot"
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        retrain = self.get_scoped_object_or_404(pk=self.kwargs["pk"])
        names = label_names(retrain.need)
        comparison = retrain.comparison or {}
        sets = []
        for key, title in (
            ("test", _("Champion's held-out test set")),
            ("fresh", _("Fresh set (reviewed cases held back from training)")),
        ):
            result = comparison.get(key) or {"n": 0}
            sets.append(
                {"key": key, "title": title, "result": result, "rows": _rows(result, names)}
            )
        challenger_algorithm = retrain.algorithm or retrain.champion.algorithm
        context.update(
            retrain=retrain,
            challenger_algorithm=challenger_algorithm,
            algorithm_changed=challenger_algorithm != retrain.champion.algorithm,
            params_json=json.dumps(retrain.params, sort_keys=True)[:500],
            sets=sets,
            guard=retrain.guard,
            shadow=retrain_shadow_summary(retrain),
            chart_data=selectors.comparison_chart_data(retrain, names),
            can_manage=role_at_least(self.membership, Role.ADMIN)
            and not getattr(self.membership, "support", False),
            is_staff=getattr(self.request.user, "is_staff", False),
            ready=retrain.status == RetrainStatus.READY,
            promoted=retrain.status == RetrainStatus.PROMOTED,
        )
        return context


class _RetrainAction(TenantPortalMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def scoped_queryset(self):
        return Retrain.objects.select_related("need")

    def act(self, request: HttpRequest, retrain: Retrain) -> str:
        raise NotImplementedError

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        retrain = self.get_scoped_object_or_404(pk=pk)
        try:
            messages.success(request, self.act(request, retrain))
        except DomainError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")
        return redirect("retraining:detail", pk=retrain.pk)


class RetrainPromoteView(_RetrainAction):
    def act(self, request: HttpRequest, retrain: Retrain) -> str:
        services.retrain_promote(
            retrain=retrain,
            actor=request.user,
            override_reason=request.POST.get("override_reason", "")[:280],
        )
        return _("The challenger is now the production version.")


class RetrainRollbackView(_RetrainAction):
    def act(self, request: HttpRequest, retrain: Retrain) -> str:
        alias = services.retrain_rollback(retrain=retrain, actor=request.user)
        return _("Rolled back to version %(v)s.") % {"v": alias.version.version}


class RetrainCompareView(_RetrainAction):
    def act(self, request: HttpRequest, retrain: Retrain) -> str:
        services.retrain_recompare(retrain=retrain)
        return _("Compared again.")


class RetrainStartView(TenantPortalMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def scoped_queryset(self):
        return Need.objects.all()

    def post(self, request: HttpRequest) -> HttpResponse:
        need = self.get_scoped_object_or_404(slug=request.POST.get("need", "")[:80])
        algorithm = request.POST.get("algorithm", "").strip()[:32] or None
        raw = request.POST.get("params", "").strip()[:2000]
        try:
            params = json.loads(raw) if raw else None
        except ValueError:
            messages.error(request, _("Params must be a JSON object."))
            return redirect("retraining:list")
        try:
            retrain, created = services.retrain_start_or_get(
                need=need,
                actor=request.user,
                reason=request.POST.get("reason", "")[:300],
                algorithm=algorithm,
                params=params,
            )
        except DomainError as exc:
            messages.error(request, f"{exc.message} ({exc.code})")
            return redirect("retraining:list")
        if created:
            messages.success(request, _("Retrain queued."))
        else:
            messages.info(request, _("A retrain of this need is already in progress."))
        return redirect("retraining:detail", pk=retrain.pk)
