"""Review REST API: rounds, their items and verdicts, sign-off, per-need settings, cases (single or
bulk), triage, acceptance and the per-label gaps.

Scoping is the base views': another tenant's need, round, item or case answers 404, and so does
an item asked for under another round. Reads need the `read` scope (or any membership); review
work needs the `reviewer` role, or a key with the `feedback` scope (a labelling tool or the
tenant's services); reporting cases needs `requester`. Sign-off needs a person.
"""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.response import Response

from core.scoping import TenantScopedGenericAPIView
from review import selectors, services
from review.models import Case, CaseSource, ReviewItem, ReviewRound, Trigger
from review.serializers import (
    CaseBulkResultSerializer,
    CaseBulkSerializer,
    CaseInSerializer,
    CaseQuerySerializer,
    CaseSerializer,
    ConfigSerializer,
    GapSerializer,
    ItemSerializer,
    RejectSerializer,
    RoundSerializer,
    RoundStartSerializer,
    SignOffSerializer,
    TriageSerializer,
    VerdictResultSerializer,
    VerdictSerializer,
)
from tenants.models import ApiKeyScope, Need, Role

TAGS = ["review"]


class _Base(TenantScopedGenericAPIView):
    write_scope = ApiKeyScope.FEEDBACK
    write_role = Role.REVIEWER

    def _get(self, queryset, **lookup):
        try:
            return queryset.get(**lookup)
        except (ObjectDoesNotExist, ValueError):
            raise Http404 from None

    def need(self, slug: str) -> Need:
        return self._get(
            Need.objects.for_tenant(self.tenant).select_related("label_set", "tenant"), slug=slug
        )

    def review_round(self, pk: int) -> ReviewRound:
        return self._get(
            ReviewRound.objects.for_tenant(self.tenant).select_related(
                "need__label_set", "model_version__registered_model"
            ),
            pk=pk,
        )

    def case(self, pk: int) -> Case:
        return self._get(
            Case.objects.for_tenant(self.tenant).select_related(
                "need__label_set", "model_version__registered_model"
            ),
            pk=pk,
        )

    def check_paging(self, request) -> None:
        """Bad `limit`/`offset` are a 400 before the parent is even looked up (as on every list)."""
        if self.paginator is not None:
            self.paginator.get_limit(request)
            self.paginator.get_offset(request)

    @property
    def key_prefix(self) -> str:
        return self.api_key.prefix if self.api_key is not None else ""

    def round_data(self, review_round: ReviewRound) -> dict:
        context = {
            "progress": {review_round.pk: selectors.round_progress(review_round=review_round)},
            "results": {review_round.pk: selectors.result_of(review_round)},
        }
        return RoundSerializer(review_round, context=context).data


class NeedRoundsView(_Base):
    """A need's review rounds (newest first); POST starts one on demand and samples it."""

    serializer_class = RoundSerializer

    def scoped_queryset(self):
        return ReviewRound.objects.all()

    @extend_schema(tags=TAGS, responses=RoundSerializer(many=True))
    def get(self, request, slug: str):
        self.check_paging(request)
        need = self.need(slug)
        rounds = selectors.rounds_for_need(tenant=self.tenant, need=need).select_related(
            "need", "model_version__registered_model"
        )
        page = self.paginate_queryset(rounds)
        return self.get_paginated_response(RoundSerializer(page, many=True).data)

    @extend_schema(
        tags=TAGS,
        request=RoundStartSerializer,
        responses={201: RoundSerializer, 409: OpenApiResponse(description="no_predictions")},
    )
    def post(self, request, slug: str):
        need = self.need(slug)
        body = RoundStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review_round = services.round_start(
            need=need, trigger=Trigger.MANUAL, actor=self.acting_user, **body.validated_data
        )
        return Response(self.round_data(self.review_round(review_round.pk)), status=201)


class RoundDetailView(_Base):
    """One round with its progress and (live or frozen) result."""

    serializer_class = RoundSerializer

    def scoped_queryset(self):
        return ReviewRound.objects.all()

    @extend_schema(tags=TAGS, responses=RoundSerializer)
    def get(self, request, pk: int):
        return Response(self.round_data(self.review_round(pk)))


class RoundItemsView(_Base):
    """The round's sampled items, in review order."""

    serializer_class = ItemSerializer

    def scoped_queryset(self):
        return ReviewItem.objects.all()

    @extend_schema(tags=TAGS, responses=ItemSerializer(many=True))
    def get(self, request, pk: int):
        self.check_paging(request)
        review_round = self.review_round(pk)
        items = (
            ReviewItem.objects.for_tenant(self.tenant)
            .filter(round=review_round)
            .select_related("model_version__registered_model")
            .order_by("position")
        )
        page = self.paginate_queryset(items)
        return self.get_paginated_response(ItemSerializer(page, many=True).data)


class RoundClaimView(_Base):
    """The caller's next item: the one they hold, else the next free one (claimed for them).
    204 when nothing is left for them."""

    serializer_class = ItemSerializer

    def scoped_queryset(self):
        return ReviewItem.objects.all()

    @extend_schema(tags=TAGS, request=None, responses={200: ItemSerializer, 204: None})
    def post(self, request, pk: int):
        review_round = self.review_round(pk)
        item = services.item_claim_next(
            review_round=review_round, reviewer=self.acting_user, api_key_prefix=self.key_prefix
        )
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(ItemSerializer(item).data)


class ItemVerdictView(_Base):
    """Answer one item of this round: confirm, correct (labels), unsure or skip."""

    serializer_class = VerdictSerializer

    def scoped_queryset(self):
        return ReviewItem.objects.all()

    @extend_schema(tags=TAGS, request=VerdictSerializer, responses=VerdictResultSerializer)
    def post(self, request, pk: int, item_id: int):
        review_round = self.review_round(pk)
        item = self._get(
            ReviewItem.objects.for_tenant(self.tenant)
            .filter(round=review_round)
            .select_related("round__need__label_set"),
            pk=item_id,
        )
        body = VerdictSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        verdict = services.verdict_record(
            item=item,
            decision=body.validated_data["decision"],
            labels=body.validated_data["labels"],
            reviewer=self.acting_user,
            api_key_prefix=self.key_prefix,
        )
        return Response(VerdictResultSerializer(verdict).data)


class RoundCloseView(_Base):
    """Freeze the estimate (alerting when its interval lies below the need's target)."""

    serializer_class = RoundSerializer

    def scoped_queryset(self):
        return ReviewRound.objects.all()

    @extend_schema(tags=TAGS, request=None, responses=RoundSerializer)
    def post(self, request, pk: int):
        review_round = services.round_close(review_round=self.review_round(pk))
        return Response(self.round_data(self.review_round(review_round.pk)))


class RoundSignOffView(_Base):
    """The need's business owner decides: still meets the need, retrain, or re-scope."""

    serializer_class = SignOffSerializer
    allow_api_keys = False
    write_role = Role.VIEWER  # the service checks business owner / admin

    def scoped_queryset(self):
        return ReviewRound.objects.all()

    @extend_schema(tags=TAGS, request=SignOffSerializer, responses=RoundSerializer)
    def post(self, request, pk: int):
        review_round = self.review_round(pk)
        body = SignOffSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.round_sign_off(
            review_round=review_round,
            decision=body.validated_data["decision"],
            note=body.validated_data["note"],
            user=self.acting_user,
            membership=self.membership,
        )
        return Response(self.round_data(self.review_round(pk)))


class NeedReviewConfigView(_Base):
    """A need's review settings: accuracy target, round defaults, schedule, held-out share."""

    serializer_class = ConfigSerializer
    write_scope = ApiKeyScope.NEEDS
    write_role = Role.ADMIN

    def scoped_queryset(self):
        return Need.objects.all()

    def _data(self, need: Need) -> dict:
        config = services.config_for(need)
        return ConfigSerializer(config).data

    @extend_schema(tags=TAGS, responses=ConfigSerializer)
    def get(self, request, slug: str):
        return Response(self._data(self.need(slug)))

    @extend_schema(tags=TAGS, request=ConfigSerializer, responses=ConfigSerializer)
    def patch(self, request, slug: str):
        need = self.need(slug)
        body = ConfigSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.config_update(need=need, **body.validated_data)
        return Response(self._data(need))


_CASE_REQUEST = PolymorphicProxySerializer(
    component_name="CaseCreate",
    serializers=[CaseInSerializer, CaseBulkSerializer],
    resource_type_field_name=None,
)


class NeedCasesView(_Base):
    """A need's cases; POST reports one case, or many as {"cases": [...]} (all or nothing). A text
    already reported for the need is refused with 409 `duplicate_case`."""

    serializer_class = CaseSerializer
    write_role = Role.REQUESTER

    def scoped_queryset(self):
        return Case.objects.all()

    @extend_schema(tags=TAGS, parameters=[CaseQuerySerializer], responses=CaseSerializer(many=True))
    def get(self, request, slug: str):
        self.check_paging(request)
        need = self.need(slug)
        query = CaseQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        cases = selectors.cases_list(
            tenant=self.tenant, need=need, status=query.validated_data.get("status")
        )
        if source := query.validated_data.get("source"):
            cases = cases.filter(source=source)
        page = self.paginate_queryset(cases)
        return self.get_paginated_response(CaseSerializer(page, many=True).data)

    @extend_schema(
        tags=TAGS,
        request=_CASE_REQUEST,
        responses={
            201: PolymorphicProxySerializer(
                component_name="CaseCreated",
                serializers=[CaseSerializer, CaseBulkResultSerializer],
                resource_type_field_name=None,
            ),
            409: OpenApiResponse(description="duplicate_case"),
        },
    )
    def post(self, request, slug: str):
        need = self.need(slug)
        bulk = isinstance(request.data, dict) and "cases" in request.data
        body = (CaseBulkSerializer if bulk else CaseInSerializer)(data=request.data)
        body.is_valid(raise_exception=True)
        items = body.validated_data["cases"] if bulk else [body.validated_data]
        cases = services.cases_create(
            need=need,
            items=items,
            source=CaseSource.API,
            reported_by=self.acting_user,
            reported_by_key=self.key_prefix,
        )
        data = CaseSerializer(cases, many=True).data
        return Response({"cases": data} if bulk else data[0], status=201)


class CaseDetailView(_Base):
    """One case, with the triage signals and the cause they suggest."""

    serializer_class = CaseSerializer

    def scoped_queryset(self):
        return Case.objects.all()

    @extend_schema(tags=TAGS, responses=CaseSerializer)
    def get(self, request, pk: int):
        case = self.case(pk)
        data = CaseSerializer(case).data
        if not case.signals:
            computed = selectors.case_signals(case=case)
            data["signals"] = computed
            data["suggested_cause"] = computed["suggested_cause"]
        return Response(data)


class CaseTriageView(_Base):
    """Record the cause (the suggestion may be overridden) and optionally the right labels."""

    serializer_class = TriageSerializer

    def scoped_queryset(self):
        return Case.objects.all()

    @extend_schema(tags=TAGS, request=TriageSerializer, responses=CaseSerializer)
    def post(self, request, pk: int):
        case = self.case(pk)
        body = TriageSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = services.case_triage(
            case=case,
            cause=body.validated_data["cause"],
            labels=body.validated_data.get("labels"),
            user=self.acting_user,
        )
        return Response(CaseSerializer(case).data)


class CaseAcceptView(_Base):
    """Make a triaged case a training sample (idempotent; conflicts are flagged)."""

    serializer_class = CaseSerializer

    def scoped_queryset(self):
        return Case.objects.all()

    @extend_schema(tags=TAGS, request=None, responses=CaseSerializer)
    def post(self, request, pk: int):
        case = services.case_accept(case=self.case(pk), user=self.acting_user)
        return Response(CaseSerializer(case).data)


class CaseRejectView(_Base):
    serializer_class = RejectSerializer

    def scoped_queryset(self):
        return Case.objects.all()

    @extend_schema(tags=TAGS, request=RejectSerializer, responses=CaseSerializer)
    def post(self, request, pk: int):
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = services.case_reject(
            case=self.case(pk), reason=body.validated_data["reason"], user=self.acting_user
        )
        return Response(CaseSerializer(case).data)


class NeedLabelGapsView(_Base):
    """Per label: training samples, recent errors, accepted cases since the last training."""

    serializer_class = GapSerializer
    pagination_class = None  # one row per label of the need

    def scoped_queryset(self):
        return Need.objects.all()

    @extend_schema(tags=TAGS, responses=GapSerializer(many=True))
    def get(self, request, slug: str):
        need = self.need(slug)
        return Response(
            GapSerializer(selectors.label_gaps(tenant=self.tenant, need=need), many=True).data
        )
