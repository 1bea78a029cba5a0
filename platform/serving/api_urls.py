from django.urls import path, re_path

from serving import api

app_name = "serving-api"

# Trailing slashes are optional on POST targets: APPEND_SLASH cannot redirect a POST.
urlpatterns = [
    re_path(r"^needs/(?P<need_slug>[-\w]+)/tag/?$", api.TagView.as_view(), name="tag"),
    re_path(r"^needs/(?P<need_slug>[-\w]+)/items/?$", api.StreamItemsView.as_view(), name="items"),
    path("predictions/", api.PredictionListView.as_view(), name="predictions"),
    path("dead-letters/", api.DeadLetterListView.as_view(), name="dead-letters"),
    re_path(
        r"^dead-letters/(?P<pk>\d+)/replay/?$",
        api.DeadLetterReplayView.as_view(),
        name="dead-letter-replay",
    ),
    re_path(r"^batch-jobs/?$", api.BatchJobListCreateView.as_view(), name="batch-jobs"),
    path("batch-jobs/<int:pk>/", api.BatchJobDetailView.as_view(), name="batch-job"),
    re_path(
        r"^batch-jobs/(?P<pk>\d+)/cancel/?$",
        api.BatchJobCancelView.as_view(),
        name="batch-job-cancel",
    ),
    re_path(
        r"^batch-jobs/(?P<pk>\d+)/results/?$",
        api.BatchJobResultsView.as_view(),
        name="batch-job-results",
    ),
    path("webhook/", api.WebhookSettingsView.as_view(), name="webhook"),
    re_path(
        r"^webhook/rotate-secret/?$", api.WebhookRotateSecretView.as_view(), name="webhook-rotate"
    ),
    re_path(r"^webhook/test/?$", api.WebhookTestView.as_view(), name="webhook-test"),
]
