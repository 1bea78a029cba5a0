from django.urls import path

from optimisation import api

app_name = "optimisation-api"

urlpatterns = [
    path("needs/<slug:slug>/optimisation-runs", api.NeedRunsView.as_view(), name="need-runs"),
    path("optimisation-runs/<int:pk>", api.RunDetailView.as_view(), name="run"),
    path("optimisation-runs/<int:pk>/cancel", api.RunCancelView.as_view(), name="run-cancel"),
    path("optimisation-runs/<int:pk>/trials", api.RunTrialsView.as_view(), name="run-trials"),
    path("optimisation-runs/<int:pk>/front", api.RunFrontView.as_view(), name="run-front"),
]
