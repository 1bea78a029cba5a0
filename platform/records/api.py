"""Project records REST API: read a record (with its derived timeline), write its sections,
problems, lessons and retrospectives, read revisions, search, export as Markdown.

Reads need a member (any role) or a key with the `read` scope. Writes are made by people: a
revision names its author, so an API key never writes (403), and a viewer never does either.
Another tenant's need, section or linked object answers 404 / 400, exactly like a missing one.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from core.scoping import TenantScopedAPIView
from records import export, selectors, services
from records.models import SINGLE_KINDS, Milestone, Section
from records.serializers import (
    DraftSerializer,
    ItemCreateSerializer,
    ItemUpdateSerializer,
    LessonSerializer,
    RecordSerializer,
    RecordSummarySerializer,
    RevisionSerializer,
    SearchHitSerializer,
    SectionSerializer,
    SectionWriteSerializer,
)
from tenants.models import ApiKeyScope, Need, Role

TAGS = ["records"]


class _RecordAPI(TenantScopedAPIView):
    read_scope = ApiKeyScope.READ
    write_scope = ApiKeyScope.NEEDS
    read_role = Role.VIEWER
    write_role = Role.REQUESTER

    def resolve_tenant(self, request) -> None:
        super().resolve_tenant(request)
        if self.api_key is not None and request.method not in SAFE_METHODS:
            raise exceptions.PermissionDenied(
                _("Records are written by people (each revision names its author), not API keys.")
            )

    def scoped_queryset(self):
        return Need.objects.select_related(
            "tenant", "label_set", "model", "created_by", "approved_by"
        )

    def need(self, slug: str) -> Need:
        try:
            return self.get_queryset().get(slug=slug)
        except Need.DoesNotExist:
            raise Http404 from None

    def section(self, need: Need, pk: int) -> Section:
        try:
            return selectors.section_for(tenant=self.tenant, need=need, pk=pk)
        except Section.DoesNotExist:
            raise Http404 from None


class RecordListView(_RecordAPI):
    @extend_schema(
        tags=TAGS, summary="Your needs' records", responses=RecordSummarySerializer(many=True)
    )
    def get(self, request):
        needs = selectors.needs_with_records(tenant=self.tenant)
        return Response(RecordSummarySerializer(needs, many=True).data)


class RecordDetailView(_RecordAPI):
    @extend_schema(
        tags=TAGS,
        summary="One need's record: sections, problems, lessons, retrospectives and timeline",
        responses=RecordSerializer,
    )
    def get(self, request, slug: str):
        view = selectors.record_view(tenant=self.tenant, need=self.need(slug))
        return Response(RecordSerializer(view).data)


class RecordExportView(_RecordAPI):
    @extend_schema(
        tags=TAGS,
        summary="The record as one Markdown document (with timeline and model cards)",
        responses={(200, "text/markdown"): OpenApiTypes.STR},
    )
    def get(self, request, slug: str):
        need = self.need(slug)
        response = HttpResponse(
            export.record_markdown(tenant=self.tenant, need=need),
            content_type="text/markdown; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="record-{need.slug}.md"'
        return response


class SectionView(_RecordAPI):
    """The single sections: goal, data, tried, next."""

    def _kind(self, kind: str) -> str:
        if kind not in SINGLE_KINDS:
            raise Http404
        return kind

    @extend_schema(
        tags=TAGS,
        summary="A single section (revision 0 and an empty body when not written yet)",
        responses=SectionSerializer,
    )
    def get(self, request, slug: str, kind: str):
        kind = self._kind(kind)
        section = selectors.single_section(tenant=self.tenant, need=self.need(slug), kind=kind)
        if section is None:
            section = Section(kind=kind, revision=0)
        return Response(SectionSerializer(section).data)

    @extend_schema(
        tags=TAGS,
        summary="Write a single section; 409 when someone saved since `base_revision`",
        request=SectionWriteSerializer,
        responses=SectionSerializer,
    )
    def put(self, request, slug: str, kind: str):
        kind = self._kind(kind)
        need = self.need(slug)
        body = SectionWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        section = services.section_save(
            need=need, kind=kind, author=self.acting_user, **body.validated_data
        )
        section = selectors.section_for(tenant=self.tenant, need=need, pk=section.pk)
        return Response(SectionSerializer(section).data)


class ItemListView(_RecordAPI):
    @extend_schema(
        tags=TAGS,
        summary="Add a problem, lesson or retrospective",
        request=ItemCreateSerializer,
        responses={201: SectionSerializer},
    )
    def post(self, request, slug: str):
        need = self.need(slug)
        body = ItemCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        section = services.item_create(
            need=need,
            kind=data.pop("kind"),
            title=data.pop("title"),
            body=data.pop("body", ""),
            author=self.acting_user,
            **data,
        )
        section = selectors.section_for(tenant=self.tenant, need=need, pk=section.pk)
        return Response(SectionSerializer(section).data, status=status.HTTP_201_CREATED)


class ItemDetailView(_RecordAPI):
    @extend_schema(tags=TAGS, summary="One section of the record", responses=SectionSerializer)
    def get(self, request, slug: str, pk: int):
        return Response(SectionSerializer(self.section(self.need(slug), pk)).data)

    @extend_schema(
        tags=TAGS,
        summary="Change a problem, lesson or retrospective; 409 on a stale `base_revision`",
        request=ItemUpdateSerializer,
        responses=SectionSerializer,
    )
    def patch(self, request, slug: str, pk: int):
        need = self.need(slug)
        section = self.section(need, pk)
        body = ItemUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        updated = services.item_update(
            section=section,
            base_revision=data.pop("base_revision"),
            author=self.acting_user,
            **data,
        )
        return Response(
            SectionSerializer(
                selectors.section_for(tenant=self.tenant, need=need, pk=updated.pk)
            ).data
        )


class RevisionListView(_RecordAPI):
    @extend_schema(
        tags=TAGS,
        summary="Every revision of a section: who, when, the text and the diff",
        responses=RevisionSerializer(many=True),
    )
    def get(self, request, slug: str, pk: int):
        section = self.section(self.need(slug), pk)
        revisions = selectors.section_history(tenant=self.tenant, section=section)
        return Response(RevisionSerializer(revisions, many=True).data)


class DraftView(_RecordAPI):
    @extend_schema(
        tags=TAGS,
        summary="A retrospective pre-filled with what changed since the last one",
        parameters=[
            OpenApiParameter("milestone", str, enum=Milestone.values, description="Default launch")
        ],
        responses=DraftSerializer,
    )
    def get(self, request, slug: str):
        milestone = request.query_params.get("milestone", Milestone.LAUNCH)
        if milestone not in Milestone.values:
            raise exceptions.ValidationError({"milestone": [_("launch, retrain or incident.")]})
        draft = selectors.retrospective_draft(
            tenant=self.tenant, need=self.need(slug), milestone=milestone
        )
        return Response(DraftSerializer(draft).data)


class SearchView(_RecordAPI):
    @extend_schema(
        tags=TAGS,
        summary="Search your records (full-text on PostgreSQL)",
        parameters=[OpenApiParameter("q", str, required=True)],
        responses=SearchHitSerializer(many=True),
    )
    def get(self, request):
        query = request.query_params.get("q", "")
        if not query.strip() or len(query) > 200:
            raise exceptions.ValidationError({"q": [_("Give 1 to 200 characters to search for.")]})
        hits = selectors.record_search(tenant=self.tenant, query=query)
        return Response(SearchHitSerializer(hits, many=True).data)


class RelatedLessonsView(_RecordAPI):
    @extend_schema(
        tags=TAGS,
        summary="Lessons learned on needs with these labels (yours, and others' shareable ones)",
        parameters=[
            OpenApiParameter(
                "labels", str, required=True, description="Comma-separated keys or names"
            )
        ],
        responses=LessonSerializer(many=True),
    )
    def get(self, request):
        raw = request.query_params.get("labels", "")
        terms = [t.strip() for t in raw.split(",") if t.strip()][:50]
        if not terms or len(raw) > 2000:
            raise exceptions.ValidationError({"labels": [_("Give 1 to 50 labels.")]})
        rows = selectors.related_lessons(tenant=self.tenant, terms=terms)
        return Response(LessonSerializer(rows, many=True).data)
