from django.urls import path

from retraining import portal_views as views

app_name = "retraining"

urlpatterns = [
    path("", views.RetrainListView.as_view(), name="list"),
    path("start/", views.RetrainStartView.as_view(), name="start"),
    path("<int:pk>/", views.RetrainDetailView.as_view(), name="detail"),
    path("<int:pk>/promote/", views.RetrainPromoteView.as_view(), name="promote"),
    path("<int:pk>/rollback/", views.RetrainRollbackView.as_view(), name="rollback"),
    path("<int:pk>/compare/", views.RetrainCompareView.as_view(), name="compare"),
]
