"""Reads of optimisation runs (a tenant is always a required argument)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from optimisation.models import OptimisationRun, OptimisationTrial, TrialState


def runs_for_need(*, tenant, need) -> QuerySet[OptimisationRun]:
    return (
        OptimisationRun.objects.for_tenant(tenant)
        .filter(need=need)
        .select_related("need", "registered_version__registered_model", "chosen_trial")
    )


def run_trials(*, tenant, run: OptimisationRun) -> QuerySet[OptimisationTrial]:
    return OptimisationTrial.objects.for_tenant(tenant).filter(run=run).order_by("number")


def front_trials(*, tenant, run: OptimisationRun) -> QuerySet[OptimisationTrial]:
    """The Pareto front (measured F1, p99, size), best F1 first."""
    return run_trials(tenant=tenant, run=run).filter(pareto=True).order_by("-macro_f1", "p99_ms")


def chart_data(*, tenant, run: OptimisationRun) -> dict[str, Any]:
    """What the portal's trade-off charts draw: every measured trial, the front, the budgets and
    the chosen variant."""
    points = []
    for trial in run_trials(tenant=tenant, run=run).filter(
        state=TrialState.COMPLETE, p99_ms__isnull=False
    ):
        points.append(
            {
                "trial": trial.number,
                "f1": trial.macro_f1,
                "p99_ms": trial.p99_ms,
                "size_kb": round((trial.size_bytes or 0) / 1024, 1),
                "pareto": trial.pareto,
                "fits": trial.fits,
                "default": trial.is_default,
                "chosen": trial.pk == run.chosen_trial_id,
                "path": trial.scorer_path,
            }
        )
    return {
        "has_data": bool(points),
        "points": points,
        "latency_budget_ms": run.latency_budget_ms,
        "size_budget_kb": run.size_budget_kb,
    }
