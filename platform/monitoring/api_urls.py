from django.urls import path

from monitoring import api

app_name = "monitoring-api"

urlpatterns = [
    path("feedback", api.FeedbackView.as_view(), name="feedback"),
    path(
        "monitoring/needs/<slug:slug>/aggregates",
        api.NeedAggregatesView.as_view(),
        name="need-aggregates",
    ),
    path("monitoring/needs/<slug:slug>/drift", api.NeedDriftView.as_view(), name="need-drift"),
    path(
        "monitoring/needs/<slug:slug>/feedback",
        api.NeedFeedbackView.as_view(),
        name="need-feedback",
    ),
    path("monitoring/alerts", api.AlertListView.as_view(), name="alerts"),
    path("monitoring/alerts/<int:pk>", api.AlertDetailView.as_view(), name="alert"),
    path(
        "monitoring/alerts/<int:pk>/acknowledge",
        api.AlertAcknowledgeView.as_view(),
        name="alert-acknowledge",
    ),
    path("monitoring/alerts/<int:pk>/snooze", api.AlertSnoozeView.as_view(), name="alert-snooze"),
]
