from django.urls import path

from monitoring import api

app_name = "monitoring-api"

urlpatterns = [
    path("feedback", api.FeedbackView.as_view(), name="feedback"),
]
