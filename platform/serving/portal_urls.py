from django.urls import path

from serving import portal_views as views

app_name = "serving"

urlpatterns = [
    path("try/", views.TryView.as_view(), name="try"),
    path("batches/", views.BatchListView.as_view(), name="batches"),
    path("batches/<int:pk>/row/", views.BatchRowView.as_view(), name="batch-row"),
    path("batches/<int:pk>/cancel/", views.BatchCancelView.as_view(), name="batch-cancel"),
    path(
        "batches/<int:pk>/results.<str:fmt>",
        views.BatchDownloadView.as_view(),
        name="batch-download",
    ),
    path("dead-letters/", views.DeadLetterListView.as_view(), name="dead-letters"),
    path("schedules/", views.ScheduleListView.as_view(), name="schedules"),
    path("schedules/<int:pk>/", views.ScheduleDetailView.as_view(), name="schedule"),
    path("webhook/", views.WebhookSettingsView.as_view(), name="webhook"),
    path(
        "dead-letters/<int:pk>/replay/",
        views.DeadLetterReplayView.as_view(),
        name="dead-letter-replay",
    ),
]
