from django.urls import path

from optimisation import portal_views as views

app_name = "optimisation"

urlpatterns = [
    path("needs/<slug:slug>/", views.NeedOptimiseView.as_view(), name="need"),
    path("runs/<int:pk>/", views.RunView.as_view(), name="run"),
    path("runs/<int:pk>/progress/", views.RunProgressView.as_view(), name="run-progress"),
    path("runs/<int:pk>/cancel/", views.RunCancelView.as_view(), name="run-cancel"),
]
