"""The serving REST API: sync tagging, the stream, batch jobs, dead letters and the prediction log.

Views stay thin: they resolve the tenant (TenantScopedAPIView), check the quota, validate, and
call serving.sync / services / selectors.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core.edge import query_datetime
from core.errors import DomainError
from core.scoping import TenantScopedAPIView, TenantScopedGenericAPIView
from serving import batch_io, quota, selectors, serializers, services, sync, validation, webhooks
from serving.models import BatchJob, BatchSource, Item, PredictionLog, WebhookDelivery
from tenants.models import ApiKeyScope, Role
from tenants.services import tenant_webhook_secret_rotate, tenant_webhook_set

_ERRORS = {
    400: OpenApiResponse(serializers.ErrorSerializer, description="Invalid input (see code)."),
    401: OpenApiResponse(serializers.ErrorSerializer, description="Missing or revoked key."),
    403: OpenApiResponse(serializers.ErrorSerializer, description="Key scope or role missing."),
    404: OpenApiResponse(
        serializers.ErrorSerializer, description="Unknown need (or another tenant's)."
    ),
    413: OpenApiResponse(
        serializers.ErrorSerializer, description="Too many items / too long / too large."
    ),
    429: OpenApiResponse(serializers.ErrorSerializer, description="Over quota; see Retry-After."),
}


class ServingMixin:
    """Serving endpoints: JSON only, quota counted in Redis."""

    renderer_classes = [JSONRenderer]
    throttle_classes: list = []

    def count_quota(self) -> None:
        quota.check_rate(self.tenant)


class BodyLeftToTheView(BaseParser):
    """Claims every media type and reads nothing: these views read and check their JSON body
    themselves, once (validation.read_json_body, 415 for anything but JSON).

    DRF parses on the first look at `request.POST`, which Django's CSRF check takes for every
    signed-in POST; with no parser at all that look answered 415 to every session caller.
    """

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


class JsonBodyMixin:
    parser_classes = [BodyLeftToTheView]


class TagView(JsonBodyMixin, ServingMixin, TenantScopedAPIView):
    """`POST /api/v1/needs/{need_slug}/tag`: the synchronous hot path."""

    write_scope = ApiKeyScope.TAG
    write_role = Role.REQUESTER

    @extend_schema(
        operation_id="needs_tag",
        summary="Tag up to TAG_MAX_ITEMS items synchronously",
        request={"application/json": serializers.ItemsInSerializer},
        responses={
            200: serializers.TagResponseSerializer,
            **_ERRORS,
            409: OpenApiResponse(serializers.ErrorSerializer, description="Need has no model."),
            503: OpenApiResponse(
                serializers.ErrorSerializer, description="Queue timeout/overload; see Retry-After."
            ),
        },
        tags=["serving"],
    )
    def post(self, request, need_slug: str):
        data = validation.read_json_body(request)
        ids, texts = validation.validate_items(data, max_items=settings.TAG_MAX_ITEMS)
        # The quota is counted inside, in the same Redis round trip as the result-cache lookup.
        body = sync.tag_sync(tenant=self.tenant, need_slug=need_slug, ids=ids, texts=texts)
        return HttpResponse(
            json.dumps(body, ensure_ascii=False, separators=(",", ":")),
            content_type="application/json",
        )


def _parse_since(value: str):
    return query_datetime(value, name="since")


def _need_or_404(tenant, slug: str):
    need = selectors.need_for(tenant=tenant, slug=slug)
    if need is None:
        raise DomainError(
            "need_not_found", _("No need '%(slug)s'.") % {"slug": slug}, status_code=404
        )
    return need


class StreamItemsView(JsonBodyMixin, ServingMixin, TenantScopedGenericAPIView):
    """`POST` ingests items for the online queue; `GET` reads them back with their results."""

    write_scope = ApiKeyScope.TAG
    write_role = Role.REQUESTER
    serializer_class = serializers.ItemOutSerializer

    def scoped_queryset(self):
        return Item.objects.all()

    @extend_schema(
        operation_id="needs_items_ingest",
        summary="Ingest items for near-real-time tagging (results by webhook and GET)",
        request={"application/json": serializers.ItemsInSerializer},
        responses={202: serializers.IngestResponseSerializer, **_ERRORS},
        tags=["serving"],
    )
    def post(self, request, need_slug: str):
        self.count_quota()
        data = validation.read_json_body(request)
        ids, texts = validation.validate_items(
            data, max_items=settings.STREAM_MAX_ITEMS, unique_ids=False
        )
        need = _need_or_404(self.tenant, need_slug)
        sync.check_servable(need=need)  # 409 if not servable: a database check, no model load
        body = services.stream_items_ingest(tenant=self.tenant, need=need, ids=ids, texts=texts)
        return Response(body, status=202)

    @extend_schema(
        operation_id="needs_items_list",
        summary="Read streamed items and their tags",
        parameters=[
            OpenApiParameter("since", str, description="ISO 8601; items received since then"),
            OpenApiParameter("ids", str, description="Comma-separated item ids"),
            OpenApiParameter("status", str, enum=["pending", "tagged", "failed"]),
        ],
        responses={200: serializers.ItemOutSerializer(many=True), **_ERRORS},
        tags=["serving"],
    )
    def get(self, request, need_slug: str):
        need = _need_or_404(self.tenant, need_slug)
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        items = selectors.items_for(
            tenant=self.tenant,
            need=need,
            since=_parse_since(request.query_params.get("since", "")),
            ids=ids,
            status=request.query_params.get("status", ""),
        )
        page = self.paginate_queryset(items)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class PredictionListView(ServingMixin, mixins.ListModelMixin, TenantScopedGenericAPIView):
    """`GET /api/v1/predictions/`: this tenant's prediction log (newest first)."""

    serializer_class = serializers.PredictionSerializer

    def scoped_queryset(self):
        return PredictionLog.objects.all()

    @extend_schema(
        operation_id="predictions_list",
        parameters=[
            OpenApiParameter("need", str, description="Need slug"),
            OpenApiParameter("channel", str, enum=["sync", "stream", "batch"]),
            OpenApiParameter("since", str, description="ISO 8601 date-time"),
        ],
        tags=["serving"],
    )
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    def filter_scoped_queryset(self, queryset):
        params = self.request.query_params
        return selectors.predictions_for(
            tenant=self.tenant,
            need_slug=params.get("need", ""),
            channel=params.get("channel", ""),
            since=_parse_since(params.get("since", "")),
        )


class DeadLetterListView(ServingMixin, mixins.ListModelMixin, TenantScopedGenericAPIView):
    """`GET /api/v1/dead-letters/`: webhook deliveries that ran out of attempts."""

    serializer_class = serializers.DeadLetterSerializer

    def scoped_queryset(self):
        return WebhookDelivery.objects.all()

    def filter_scoped_queryset(self, queryset):
        return selectors.dead_letters_for(tenant=self.tenant)

    @extend_schema(operation_id="dead_letters_list", tags=["serving"])
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)


class DeadLetterReplayView(ServingMixin, TenantScopedGenericAPIView):
    write_scope = ApiKeyScope.TAG
    write_role = Role.REQUESTER
    serializer_class = serializers.DeadLetterSerializer

    def scoped_queryset(self):
        return WebhookDelivery.objects.all()

    @extend_schema(
        operation_id="dead_letters_replay",
        request=None,
        responses={202: serializers.DeadLetterSerializer, **_ERRORS},
        tags=["serving"],
    )
    def post(self, request, pk: int):
        delivery = get_object_or_404(self.get_queryset(), pk=pk)
        if not webhooks.delivery_replay(delivery=delivery):
            raise DomainError("not_dead", _("Only dead letters can be replayed."), status_code=409)
        delivery.refresh_from_db()
        return Response(self.get_serializer(delivery).data, status=202)


class BatchJobListCreateView(ServingMixin, mixins.ListModelMixin, TenantScopedGenericAPIView):
    """`POST /api/v1/batch-jobs`: a CSV/JSONL upload (multipart) or a selection of stored items."""

    read_scope = ApiKeyScope.READ
    write_scope = ApiKeyScope.BATCH
    write_role = Role.REQUESTER
    serializer_class = serializers.BatchJobSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def scoped_queryset(self):
        return BatchJob.objects.select_related("need")

    @extend_schema(operation_id="batch_jobs_list", tags=["batch"])
    def get(self, request, *args, **kwargs):
        return self.list(request, *args, **kwargs)

    @extend_schema(
        operation_id="batch_jobs_create",
        request={
            "multipart/form-data": serializers.BatchCreateUploadSerializer,
            "application/json": serializers.BatchCreateItemsSerializer,
        },
        responses={
            201: serializers.BatchJobSerializer,
            **_ERRORS,
            413: OpenApiResponse(serializers.ErrorSerializer, description="Upload too large."),
        },
        tags=["batch"],
    )
    def post(self, request):
        self.count_quota()
        try:
            data = request.data
        except RequestDataTooBig:
            raise DomainError(
                "upload_too_large", _("The upload is too large."), status_code=413
            ) from None
        except UnicodeDecodeError:
            raise DomainError("invalid_utf8", _("The request body is not valid UTF-8.")) from None
        need_slug = data.get("need") if hasattr(data, "get") else None
        if not isinstance(need_slug, str) or not need_slug:
            raise DomainError(
                "invalid", _("Name the need."), fields={"need": [_("This field is required.")]}
            )
        need = _need_or_404(self.tenant, need_slug)
        sync.check_servable(need=need)
        upload = request.FILES.get("file")
        if upload is not None:
            rows = batch_io.parse_upload(upload)
            source, filename = BatchSource.UPLOAD, upload.name or ""
        else:
            item_ids = data.get("item_ids")
            if item_ids is not None and (
                not isinstance(item_ids, list) or not all(isinstance(i, str) for i in item_ids)
            ):
                raise DomainError(
                    "invalid",
                    _("`item_ids` must be a list of strings."),
                    fields={"item_ids": [_("Expected a list of strings.")]},
                )
            since = (
                _parse_since(data.get("since") or "")
                if isinstance(data.get("since", ""), str)
                else None
            )
            if item_ids is None and since is None:
                raise DomainError(
                    "invalid",
                    _("Upload a `file`, or select stored items with `item_ids` or `since`."),
                    fields={"file": [_("Required unless item_ids/since is given.")]},
                )
            rows, _skipped = services.batch_rows_from_items(
                tenant=self.tenant, need=need, item_ids=item_ids, since=since
            )
            if not rows:
                raise DomainError(
                    "invalid",
                    _("No stored items match the selection."),
                    fields={"item_ids": [_("No match.")]},
                )
            source, filename = BatchSource.ITEMS, ""
        job = services.batch_job_create(
            tenant=self.tenant,
            need=need,
            rows=rows,
            source=source,
            filename=filename,
            user=self.acting_user,
        )
        return Response(self.get_serializer(job).data, status=201)


class BatchJobDetailView(ServingMixin, mixins.RetrieveModelMixin, TenantScopedGenericAPIView):
    serializer_class = serializers.BatchJobSerializer

    def scoped_queryset(self):
        return BatchJob.objects.select_related("need")

    @extend_schema(operation_id="batch_jobs_retrieve", tags=["batch"])
    def get(self, request, *args, **kwargs):
        return self.retrieve(request, *args, **kwargs)


class BatchJobCancelView(ServingMixin, TenantScopedGenericAPIView):
    write_scope = ApiKeyScope.BATCH
    write_role = Role.REQUESTER
    serializer_class = serializers.BatchJobSerializer

    def scoped_queryset(self):
        return BatchJob.objects.select_related("need")

    @extend_schema(
        operation_id="batch_jobs_cancel",
        request=None,
        responses={200: serializers.BatchJobSerializer, **_ERRORS},
        tags=["batch"],
    )
    def post(self, request, pk: int):
        job = get_object_or_404(self.get_queryset(), pk=pk)
        if not services.batch_job_cancel(job=job):
            raise DomainError(
                "not_active",
                _("The job is already %(status)s.") % {"status": job.status},
                status_code=409,
            )
        return Response(self.get_serializer(job).data)


class _JsonOnlyNegotiation(BaseContentNegotiation):
    """`?format=` picks the download format here, not a DRF renderer; errors stay JSON."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class BatchJobResultsView(ServingMixin, TenantScopedGenericAPIView):
    """`GET /api/v1/batch-jobs/{id}/results?format=csv|jsonl`, streamed in position order."""

    serializer_class = serializers.BatchJobSerializer
    content_negotiation_class = _JsonOnlyNegotiation

    def scoped_queryset(self):
        return BatchJob.objects.all()

    @extend_schema(
        operation_id="batch_jobs_results",
        parameters=[
            OpenApiParameter("format", str, enum=["csv", "jsonl"], default="csv"),
            OpenApiParameter(
                "include_text",
                str,
                enum=["1", "0"],
                default="1",
                description="Include each item's text (the last CSV column; `text` in JSONL).",
            ),
            OpenApiParameter(
                "label_names",
                str,
                enum=[code for code, _name in settings.LANGUAGES],
                description=(
                    "Also give each assigned label's taxonomy name in this language (CSV column "
                    "`label_names`, JSONL `label_names`); keys and your names are unchanged."
                ),
            ),
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
        },
        tags=["batch"],
    )
    def get(self, request, pk: int):
        job = get_object_or_404(self.get_queryset(), pk=pk)
        params = request.query_params
        return results_download(
            job,
            params.get("format", "csv"),
            params.get("include_text"),
            label_names=params.get("label_names"),
        )


def _include_text(value: str | None) -> bool:
    if value is None or value == "":
        return True
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise DomainError(
        "invalid", _("include_text must be 1 or 0."), fields={"include_text": [_("1 or 0")]}
    )


def _names_language(value: str | None) -> str | None:
    if not value:
        return None
    codes = [code for code, _name in settings.LANGUAGES]
    if value.lower() not in codes:
        raise DomainError(
            "invalid",
            _("label_names must be one of: %(codes)s.") % {"codes": ", ".join(codes)},
            fields={"label_names": codes},
        )
    return value.lower()


def results_download(
    job, fmt: str, include_text: str | None = None, *, label_names: str | None = None
) -> StreamingHttpResponse:
    """A job's results as CSV or JSONL; the item texts are included unless include_text=0, the
    labels' taxonomy names in a language when `label_names` names one."""
    if fmt not in ("csv", "jsonl"):
        raise DomainError(
            "invalid", _("format must be csv or jsonl."), fields={"format": [_("csv or jsonl")]}
        )
    with_text = _include_text(include_text)
    language = _names_language(label_names)
    rows = selectors.batch_result_rows(job=job, include_text=with_text)
    if language is not None:
        rows = selectors.with_localized_label_names(rows, need=job.need, language=language)
    with_names = language is not None
    if fmt == "jsonl":
        response = StreamingHttpResponse(
            batch_io.render_jsonl(rows, include_text=with_text, with_names=with_names),
            content_type="application/x-ndjson",
        )
    else:
        response = StreamingHttpResponse(
            batch_io.render_csv(rows, include_text=with_text, with_names=with_names),
            content_type="text/csv; charset=utf-8",
        )
    response["Content-Disposition"] = f'attachment; filename="batch-{job.pk}-results.{fmt}"'
    return response


# --- Webhook settings (tenant admins, signed in: a key never changes where results go) --------
class _WebhookSettingsBase(TenantScopedAPIView):
    read_role = Role.ADMIN
    write_role = Role.ADMIN
    allow_api_keys = False

    def scoped_queryset(self):
        return WebhookDelivery.objects.all()

    def settings_payload(self) -> dict:
        return {"url": self.tenant.webhook_url, "has_secret": bool(self.tenant.webhook_secret)}


class WebhookSettingsView(_WebhookSettingsBase):
    """`GET/PATCH /api/v1/webhook/`: the tenant's webhook URL."""

    @extend_schema(
        operation_id="webhook_retrieve",
        summary="Your webhook settings",
        responses=serializers.WebhookSettingsSerializer,
        tags=["webhook"],
    )
    def get(self, request):
        return Response(self.settings_payload())

    @extend_schema(
        operation_id="webhook_update",
        summary="Set the webhook URL (a first URL gets a signing secret: rotate it to read it)",
        request=serializers.WebhookSettingsSerializer,
        responses=serializers.WebhookSettingsSerializer,
        tags=["webhook"],
    )
    def patch(self, request):
        body = serializers.WebhookSettingsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant_webhook_set(tenant=self.tenant, url=body.validated_data["url"])
        return Response(self.settings_payload())


class WebhookRotateSecretView(_WebhookSettingsBase):
    @extend_schema(
        operation_id="webhook_rotate_secret",
        summary="Rotate the signing secret; the new one is in this response only",
        request=None,
        responses=serializers.WebhookSecretSerializer,
        tags=["webhook"],
    )
    def post(self, request):
        secret = tenant_webhook_secret_rotate(tenant=self.tenant)
        response = Response({"secret": secret})
        response["Cache-Control"] = "no-store"
        return response


class WebhookTestView(_WebhookSettingsBase):
    @extend_schema(
        operation_id="webhook_test",
        summary="Send one signed test delivery now and see what the receiver answered",
        request=None,
        responses=serializers.WebhookTestSerializer,
        tags=["webhook"],
    )
    def post(self, request):
        if not self.tenant.webhook_url:
            raise DomainError("no_webhook", _("Set a webhook URL first."), status_code=409)
        return Response(webhooks.webhook_test_send(tenant=self.tenant))
