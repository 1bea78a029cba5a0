"""Portal pages of the review app: rounds (trend, result, sign-off), the reviewer's queue, cases
and their triage, reporting a wrong tag, and the per-label gaps."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _t
from django.views import View
from django.views.generic import TemplateView

from core.errors import DomainError
from core.scoping import TenantPortalMixin, role_at_least
from monitoring.evidence import label_names, name_of
from review import selectors, services
from review.models import (
    Case,
    CaseSource,
    CaseStatus,
    Cause,
    ReviewItem,
    ReviewRound,
    RoundStatus,
    SignOff,
)
from tenants.models import Need, Role


def _labels(need: Need) -> list[dict]:
    names = label_names(need)
    return [{"key": key, "name": name_of(key, names)} for key in services.need_label_keys(need)]


class OverviewView(TenantPortalMixin, TemplateView):
    template_name = "review/overview.html"

    def scoped_queryset(self):
        return Need.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        needs = list(self.get_queryset().filter(model__isnull=False).select_related("label_set"))
        context["needs"] = [
            {"need": need, "cases": selectors.case_counts(tenant=self.tenant, need=need)}
            for need in needs
        ]
        context["rounds"] = selectors.rounds_list(tenant=self.tenant)[:30]
        context["can_review"] = role_at_least(self.membership, Role.REVIEWER)
        return context


class NeedView(TenantPortalMixin, TemplateView):
    template_name = "review/need.html"

    def scoped_queryset(self):
        return Need.objects.select_related("label_set", "model")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        need = self.get_scoped_object_or_404(slug=self.kwargs["slug"])
        names = label_names(need)
        gaps = selectors.label_gaps(tenant=self.tenant, need=need)
        for row in gaps:
            row["name"] = name_of(row["label"], names)
        context.update(
            need=need,
            config=services.config_for(need),
            trend=selectors.need_trend(tenant=self.tenant, need=need),
            rounds=selectors.rounds_for_need(tenant=self.tenant, need=need).select_related(
                "model_version__registered_model"
            )[:50],
            gaps=gaps,
            cases=selectors.case_counts(tenant=self.tenant, need=need),
            can_review=role_at_least(self.membership, Role.REVIEWER),
            can_configure=role_at_least(self.membership, Role.ADMIN),
            sync_text_max_days=settings.SYNC_REVIEW_TEXT_MAX_DAYS,
        )
        return context


class _Action(TenantPortalMixin, View):
    http_method_names = ["post"]
    required_role = Role.REVIEWER

    def fail(self, request: HttpRequest, exc: DomainError) -> None:
        messages.error(request, f"{exc.message} ({exc.code})")


class RoundStartView(_Action):
    def scoped_queryset(self):
        return Need.objects.select_related("label_set")

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        need = self.get_scoped_object_or_404(slug=slug)
        try:
            size = int(request.POST.get("sample_size") or services.config_for(need).sample_size)
            days = int(request.POST.get("window_days") or services.config_for(need).window_days)
            share = float(request.POST.get("double_review_share") or 0)
        except ValueError:
            messages.error(request, _t("Numbers, please."))
            return redirect("review:need", slug=slug)
        try:
            review_round = services.round_start(
                need=need,
                actor=request.user,
                sample_size=size,
                window_days=days,
                double_review_share=share,
            )
        except DomainError as exc:
            self.fail(request, exc)
            return redirect("review:need", slug=slug)
        return redirect("review:round", pk=review_round.pk)


class ConfigView(_Action):
    required_role = Role.ADMIN

    def scoped_queryset(self):
        return Need.objects.select_related("label_set")

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        need = self.get_scoped_object_or_404(slug=slug)
        try:
            changes = {
                "accuracy_target": float(request.POST["accuracy_target"]),
                "sample_size": int(request.POST["sample_size"]),
                "window_days": int(request.POST["window_days"]),
                "double_review_share": float(request.POST["double_review_share"]),
                "held_out_share": float(request.POST["held_out_share"]),
                "schedule_crontab": request.POST.get("schedule_crontab", "").strip()[:100],
                "sync_review_share": float(request.POST.get("sync_review_share") or 0),
                "sync_text_retention_days": int(
                    request.POST.get("sync_text_retention_days")
                    or services.config_for(need).sync_text_retention_days
                ),
            }
        except (KeyError, ValueError):
            messages.error(request, _t("Every setting needs a number."))
            return redirect("review:need", slug=slug)
        bounds = {
            "accuracy_target": (0, 1),
            "double_review_share": (0, 1),
            "held_out_share": (0, 1),
            "sync_review_share": (0, 1),
            "sample_size": (1, 5000),
            "window_days": (1, 365),
        }
        for field, (low, high) in bounds.items():
            if not low <= changes[field] <= high:
                messages.error(
                    request,
                    _t("%(field)s must be between %(low)s and %(high)s.")
                    % {"field": field, "low": low, "high": high},
                )
                return redirect("review:need", slug=slug)
        try:
            services.config_update(need=need, **changes)
            messages.success(request, _t("Review settings saved."))
        except DomainError as exc:
            self.fail(request, exc)
        return redirect("review:need", slug=slug)


class RoundView(TenantPortalMixin, TemplateView):
    template_name = "review/round.html"

    def scoped_queryset(self):
        return ReviewRound.objects.select_related(
            "need__label_set", "model_version__registered_model", "signoff_by", "trigger_alert"
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        review_round = self.get_scoped_object_or_404(pk=self.kwargs["pk"])
        need = review_round.need
        names = label_names(need)
        result = selectors.result_of(review_round)
        precision = [
            {"label": key, "name": name_of(key, names), **value}
            for key, value in (result.get("per_label_precision") or {}).items()
        ]
        context.update(
            round=review_round,
            need=need,
            result=result,
            precision=precision,
            progress=selectors.round_progress(
                review_round=review_round, reviewer=self.request.user
            ),
            trend=selectors.need_trend(tenant=self.tenant, need=need),
            strata=[
                {"label": key, "name": name_of(key, names), "size": v[0], "drawn": v[1]}
                for key, v in (review_round.strata or {}).items()
            ],
            can_review=role_at_least(self.membership, Role.REVIEWER)
            and not self.membership.support,
            can_sign_off=services.can_sign_off(
                need=need, user=self.request.user, membership=self.membership
            ),
            signoff_choices=SignOff.choices,
        )
        return context


class RoundCloseView(_Action):
    def scoped_queryset(self):
        return ReviewRound.objects.select_related("need")

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        review_round = self.get_scoped_object_or_404(pk=pk)
        try:
            services.round_close(review_round=review_round)
        except DomainError as exc:
            self.fail(request, exc)
        return redirect("review:round", pk=pk)


class RoundSignOffView(_Action):
    required_role = Role.VIEWER  # the service checks business owner / admin

    def scoped_queryset(self):
        return ReviewRound.objects.select_related("need__label_set")

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        review_round = self.get_scoped_object_or_404(pk=pk)
        try:
            services.round_sign_off(
                review_round=review_round,
                decision=request.POST.get("decision", ""),
                note=request.POST.get("note", "")[:1000],
                user=request.user,
                membership=self.membership,
            )
            messages.success(request, _t("Sign-off recorded."))
        except DomainError as exc:
            self.fail(request, exc)
        return redirect("review:round", pk=pk)


class QueueView(TenantPortalMixin, TemplateView):
    """The reviewer's queue: one item at a time (claimed for them), keyboard-driven."""

    template_name = "review/queue.html"
    required_role = Role.REVIEWER

    def scoped_queryset(self):
        return ReviewRound.objects.select_related("need__label_set")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        review_round = self.get_scoped_object_or_404(pk=self.kwargs["pk"])
        need = review_round.need
        item = None
        if review_round.status == RoundStatus.OPEN and not self.membership.support:
            item = services.item_claim_next(review_round=review_round, reviewer=self.request.user)
        names = label_names(need)
        labels = _labels(need)
        predicted = set(item.predicted_labels) if item else set()
        for i, label in enumerate(labels):
            label["shortcut"] = str(i + 1) if i < 9 else ""
            label["predicted"] = label["key"] in predicted
        context.update(
            round=review_round,
            need=need,
            item=item,
            labels=labels,
            multilabel=services.is_multilabel(need),
            scores=[
                {"key": key, "name": name_of(key, names), "score": score}
                for key, score in (item.scores if item else [])[:10]
            ],
            predicted=[{"key": k, "name": name_of(k, names)} for k in sorted(predicted)],
            progress=selectors.round_progress(
                review_round=review_round, reviewer=self.request.user
            ),
        )
        return context


class VerdictView(_Action):
    def scoped_queryset(self):
        return ReviewItem.objects.select_related("round__need__label_set")

    def post(self, request: HttpRequest, pk: int, item_id: int) -> HttpResponse:
        item = self.get_scoped_object_or_404(pk=item_id, round_id=pk)
        try:
            services.verdict_record(
                item=item,
                decision=request.POST.get("decision", ""),
                labels=request.POST.getlist("labels"),
                reviewer=request.user,
            )
        except DomainError as exc:
            self.fail(request, exc)
        return redirect("review:queue", pk=pk)


class CaseListView(TenantPortalMixin, TemplateView):
    template_name = "review/cases.html"

    def scoped_queryset(self):
        return Case.objects.all()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        need = None
        if slug := self.request.GET.get("need"):
            need = Need.objects.for_tenant(self.tenant).filter(slug=slug).first()
            if need is None:
                raise Http404
        status = self.request.GET.get("status") or ""
        if status and status not in CaseStatus.values:
            status = ""
        context.update(
            need=need,
            status=status,
            statuses=CaseStatus.choices,
            cases=selectors.cases_list(tenant=self.tenant, need=need, status=status or None)[:200],
        )
        return context


class CaseView(TenantPortalMixin, TemplateView):
    """The triage page: the case, its signals and suggested cause (overridable), and the actions."""

    template_name = "review/case.html"

    def scoped_queryset(self):
        return Case.objects.select_related(
            "need__label_set", "model_version__registered_model", "reported_by", "sample"
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        case = self.get_scoped_object_or_404(pk=self.kwargs["pk"])
        need = case.need
        names = label_names(need)
        computed = dict(case.signals or selectors.case_signals(case=case))
        computed["nearest_names"] = [name_of(k, names) for k in computed.get("nearest_labels", [])]
        chosen = set(case.labels or case.suggested_labels)
        labels = _labels(need)
        for label in labels:
            label["checked"] = label["key"] in chosen
        context.update(
            case=case,
            need=need,
            signals=computed,
            suggested=computed.get("suggested_cause", ""),
            current_cause=case.cause or computed.get("suggested_cause", ""),
            causes=Cause.choices,
            labels=labels,
            multilabel=services.is_multilabel(need),
            predicted=[name_of(k, names) for k in case.predicted_labels],
            scores=[{"name": name_of(k, names), "key": k, "score": s} for k, s in case.scores[:5]],
            conflict=[name_of(k, names) for k in case.conflict_labels],
            can_triage=role_at_least(self.membership, Role.REVIEWER)
            and not self.membership.support,
        )
        return context


class CaseActionView(_Action):
    def scoped_queryset(self):
        return Case.objects.select_related("need__label_set", "model_version")

    def post(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        case = self.get_scoped_object_or_404(pk=pk)
        try:
            if action == "triage":
                services.case_triage(
                    case=case,
                    cause=request.POST.get("cause", ""),
                    labels=request.POST.getlist("labels"),
                    user=request.user,
                )
                if request.POST.get("then") == "accept":
                    case.refresh_from_db()
                    case = services.case_accept(case=case, user=request.user)
                    if case.conflict_labels:
                        messages.warning(
                            request,
                            _t(
                                "This text already is a training sample with other labels: "
                                "flagged, not overwritten."
                            ),
                        )
            elif action == "accept":
                case = services.case_accept(case=case, user=request.user)
            elif action == "reject":
                services.case_reject(
                    case=case, reason=request.POST.get("reason", "")[:500], user=request.user
                )
            else:
                raise Http404
        except DomainError as exc:
            self.fail(request, exc)
        return redirect("review:case", pk=pk)


class ReportView(TenantPortalMixin, TemplateView):
    """'Report a wrong tag' from the try-it page: a first POST (from the result) shows the text
    and the labels to pick the right ones from; the second (`confirm`) files the case."""

    template_name = "review/report.html"
    required_role = Role.REQUESTER

    def scoped_queryset(self):
        return Need.objects.select_related("label_set")

    def get(self, request, *args, **kwargs):
        raise Http404  # reached from a result's form only

    def post(self, request: HttpRequest) -> HttpResponse:
        if self.membership.support:
            raise PermissionDenied
        need = self.get_scoped_object_or_404(slug=request.POST.get("need", ""))
        text = request.POST.get("text", "")
        mapping = need.label_mapping
        predicted = [mapping.get(n, n) for n in request.POST.getlist("predicted")]
        if request.POST.get("confirm"):
            try:
                case = services.case_create(
                    need=need,
                    data={
                        "text": text,
                        "predicted_labels": predicted,
                        "suggested_labels": request.POST.getlist("labels"),
                        "note": request.POST.get("note", "")[:1000],
                    },
                    source=CaseSource.REPORT,
                    reported_by=request.user,
                )
            except DomainError as exc:
                messages.error(request, f"{exc.message} ({exc.code})")
            else:
                messages.success(request, _t("Thank you: case %(id)s filed.") % {"id": case.pk})
                return redirect(reverse("review:case", kwargs={"pk": case.pk}))
        labels = _labels(need)
        context = self.get_context_data(
            need=need,
            text=text,
            predicted=predicted,
            labels=labels,
            multilabel=services.is_multilabel(need),
        )
        return self.render_to_response(context)
