"""Optimisation REST API: start a run for a need, follow it, read its trials and Pareto front,
cancel it. Tenant-scoped by the base views: another tenant's need or run is a 404. Starting and
cancelling need an admin (or a key with the `batch` scope), as training does."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from core.scoping import TenantScopedAPIView
from optimisation import selectors, services
from optimisation.models import OptimisationRun
from optimisation.serializers import RunSerializer, RunStartSerializer, TrialSerializer
from tenants.models import ApiKeyScope, Need, Role

TAGS = ["optimisation"]


class _Base(TenantScopedAPIView):
    write_role = Role.ADMIN
    write_scope = ApiKeyScope.BATCH


class NeedRunsView(_Base):
    """A need's optimisation runs (newest first), and starting one."""

    def scoped_queryset(self):
        return Need.objects.select_related("tenant", "label_set", "model")

    def _need(self, slug: str) -> Need:
        try:
            return self.get_queryset().get(slug=slug)
        except ObjectDoesNotExist:
            raise Http404 from None

    @extend_schema(tags=TAGS, responses=RunSerializer(many=True))
    def get(self, request, slug: str):
        need = self._need(slug)
        runs = selectors.runs_for_need(tenant=self.tenant, need=need)[:50]
        return Response(RunSerializer(runs, many=True).data)

    @extend_schema(tags=TAGS, request=RunStartSerializer, responses={201: RunSerializer})
    def post(self, request, slug: str):
        need = self._need(slug)
        body = RunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = services.optimisation_run_start(
            need=need, actor=self.acting_user, **body.validated_data
        )
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class _RunView(_Base):
    def scoped_queryset(self):
        return OptimisationRun.objects.select_related(
            "need", "chosen_trial", "registered_version__registered_model"
        )

    def run(self, pk: int) -> OptimisationRun:
        try:
            return self.get_queryset().get(pk=pk)
        except ObjectDoesNotExist:
            raise Http404 from None


class RunDetailView(_RunView):
    """One run: status, progress, budgets, measurement conditions and result."""

    @extend_schema(tags=TAGS, responses=RunSerializer)
    def get(self, request, pk: int):
        return Response(RunSerializer(self.run(pk)).data)


class RunCancelView(_RunView):
    """Cancel a queued run at once, or ask a running one to stop (nothing gets registered)."""

    @extend_schema(tags=TAGS, request=None, responses=RunSerializer)
    def post(self, request, pk: int):
        run = services.optimisation_run_cancel(run=self.run(pk), actor=self.acting_user)
        return Response(RunSerializer(run).data)


class RunTrialsView(_RunView):
    """Every trial of a run: its variant, measured F1, p50/p99, throughput and size."""

    @extend_schema(tags=TAGS, responses=TrialSerializer(many=True))
    def get(self, request, pk: int):
        trials = selectors.run_trials(tenant=self.tenant, run=self.run(pk))
        return Response(TrialSerializer(trials, many=True).data)


class RunFrontView(_RunView):
    """The run's Pareto front over measured macro-F1, p99 latency and size, best F1 first."""

    @extend_schema(tags=TAGS, responses=TrialSerializer(many=True))
    def get(self, request, pk: int):
        trials = selectors.front_trials(tenant=self.tenant, run=self.run(pk))
        return Response(TrialSerializer(trials, many=True).data)
