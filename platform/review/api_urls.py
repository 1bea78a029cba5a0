from django.urls import path

from review import api

app_name = "review-api"

urlpatterns = [
    path("needs/<slug:slug>/review-rounds", api.NeedRoundsView.as_view(), name="need-rounds"),
    path("needs/<slug:slug>/review-config", api.NeedReviewConfigView.as_view(), name="config"),
    path("needs/<slug:slug>/cases", api.NeedCasesView.as_view(), name="need-cases"),
    path("needs/<slug:slug>/label-gaps", api.NeedLabelGapsView.as_view(), name="label-gaps"),
    path("review-rounds/<int:pk>", api.RoundDetailView.as_view(), name="round"),
    path("review-rounds/<int:pk>/items", api.RoundItemsView.as_view(), name="round-items"),
    path("review-rounds/<int:pk>/claim", api.RoundClaimView.as_view(), name="round-claim"),
    path(
        "review-rounds/<int:pk>/items/<int:item_id>/verdict",
        api.ItemVerdictView.as_view(),
        name="item-verdict",
    ),
    path("review-rounds/<int:pk>/close", api.RoundCloseView.as_view(), name="round-close"),
    path("review-rounds/<int:pk>/sign-off", api.RoundSignOffView.as_view(), name="round-signoff"),
    path("cases/<int:pk>", api.CaseDetailView.as_view(), name="case"),
    path("cases/<int:pk>/triage", api.CaseTriageView.as_view(), name="case-triage"),
    path("cases/<int:pk>/accept", api.CaseAcceptView.as_view(), name="case-accept"),
    path("cases/<int:pk>/reject", api.CaseRejectView.as_view(), name="case-reject"),
]
