"""Portal pages: a need's optimisation (start a run, past runs) and one run (progress, trade-off
charts, the Pareto front, the choice or why nothing fits, capacity planning)."""

from __future__ import annotations

import contextlib

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from core.scoping import TenantPortalMixin, role_at_least
from optimisation import selectors, services
from optimisation.forms import OptimiseForm
from optimisation.models import OptimisationRun
from tenants.models import Need, Role

DEFAULT_TIME_LIMIT_SECONDS = 120


class NeedOptimiseView(TenantPortalMixin, View):
    """GET: the start form and the need's runs. POST (admin): start a run."""

    def scoped_queryset(self):
        return Need.objects.select_related("tenant", "label_set", "model")

    def _render(self, request, need: Need, form: OptimiseForm, status: int = 200) -> HttpResponse:
        runs = list(selectors.runs_for_need(tenant=self.tenant, need=need)[:20])
        return render(
            request,
            "optimisation/need.html",
            {
                "need": need,
                "form": form,
                "runs": runs,
                "can_start": role_at_least(self.membership, Role.ADMIN)
                and not self.membership.support,
            },
            status=status,
        )

    def get(self, request, slug: str):
        need = self.get_scoped_object_or_404(slug=slug)
        form = OptimiseForm(
            initial={
                "latency_budget_ms": need.latency_budget_ms,
                "size_budget_kb": need.size_budget_kb,
                "time_limit_seconds": DEFAULT_TIME_LIMIT_SECONDS,
                "seed": 42,
                "target_requests_per_s": need.target_requests_per_s,
            }
        )
        return self._render(request, need, form)

    def post(self, request, slug: str):
        need = self.get_scoped_object_or_404(slug=slug)
        if not role_at_least(self.membership, Role.ADMIN):
            return HttpResponse(status=403)
        form = OptimiseForm(request.POST)
        if not form.is_valid():
            return self._render(request, need, form, status=400)
        try:
            run = services.optimisation_run_start(
                need=need, actor=request.user, **{k: v for k, v in form.cleaned_data.items()}
            )
        except services.OptimisationError as exc:
            form.add_error(None, exc.message)
            return self._render(request, need, form, status=exc.status_code)
        return redirect("optimisation:run", pk=run.pk)


class _RunMixin(TenantPortalMixin):
    def scoped_queryset(self):
        return OptimisationRun.objects.select_related(
            "need", "chosen_trial", "registered_version__registered_model"
        )


class RunView(_RunMixin, View):
    def get(self, request, pk: int):
        run = self.get_scoped_object_or_404(pk=pk)
        trials = list(selectors.run_trials(tenant=self.tenant, run=run))
        return render(
            request,
            "optimisation/run.html",
            {
                "run": run,
                "need": run.need,
                "front": [t for t in sorted(trials, key=_front_order) if t.pareto],
                "trials": trials,
                "chosen": run.chosen_trial,
                "chart_data": selectors.chart_data(tenant=self.tenant, run=run),
                "misses": run.result.get("nothing_fits"),
                "capacity": run.result.get("capacity", {}),
                "can_cancel": role_at_least(self.membership, Role.ADMIN)
                and not self.membership.support,
            },
        )


def _front_order(trial) -> tuple:
    return (-(trial.macro_f1 or 0), trial.p99_ms or 0)


class RunProgressView(_RunMixin, View):
    """The htmx-polled progress box; when the run has finished the page reloads itself."""

    def get(self, request, pk: int):
        run = self.get_scoped_object_or_404(pk=pk)
        response = render(request, "optimisation/_progress.html", {"run": run})
        if not run.is_active and request.GET.get("was_active"):
            response["HX-Refresh"] = "true"
        return response


class RunCancelView(_RunMixin, View):
    required_role = Role.ADMIN
    http_method_names = ["post"]

    def post(self, request, pk: int):
        run = self.get_scoped_object_or_404(pk=pk)
        # Already finished: the page shows how.
        with contextlib.suppress(services.OptimisationError):
            services.optimisation_run_cancel(run=run, actor=request.user)
        return redirect("optimisation:run", pk=run.pk)
