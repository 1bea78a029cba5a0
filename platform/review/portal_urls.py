from django.urls import path

from review import portal_views as views

app_name = "review"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("needs/<slug:slug>/", views.NeedView.as_view(), name="need"),
    path("needs/<slug:slug>/start/", views.RoundStartView.as_view(), name="round-start"),
    path("needs/<slug:slug>/settings/", views.ConfigView.as_view(), name="config"),
    path("rounds/<int:pk>/", views.RoundView.as_view(), name="round"),
    path("rounds/<int:pk>/close/", views.RoundCloseView.as_view(), name="round-close"),
    path("rounds/<int:pk>/sign-off/", views.RoundSignOffView.as_view(), name="round-signoff"),
    path("rounds/<int:pk>/queue/", views.QueueView.as_view(), name="queue"),
    path(
        "rounds/<int:pk>/items/<int:item_id>/verdict/",
        views.VerdictView.as_view(),
        name="verdict",
    ),
    path("cases/", views.CaseListView.as_view(), name="cases"),
    path("cases/report/", views.ReportView.as_view(), name="report"),
    path("cases/<int:pk>/", views.CaseView.as_view(), name="case"),
    path("cases/<int:pk>/<str:action>/", views.CaseActionView.as_view(), name="case-action"),
]
