from django.urls import path

from registry import portal_views as views

app_name = "registry"

urlpatterns = [
    path("", views.ModelListView.as_view(), name="list"),
    path("train/", views.TrainView.as_view(), name="train"),
    path("compare/", views.CompareView.as_view(), name="compare"),
    path("datasets/upload/", views.DatasetUploadView.as_view(), name="upload"),
    path("runs/<int:run_id>/", views.RunDetailView.as_view(), name="run"),
    path("snapshots/", views.SnapshotListView.as_view(), name="snapshots"),
    path("snapshots/<str:content_hash>/", views.SnapshotDetailView.as_view(), name="snapshot"),
    path("<int:pk>/", views.ModelDetailView.as_view(), name="model"),
    path("<int:pk>/versions/<int:number>/", views.VersionCardView.as_view(), name="card"),
    path(
        "<int:pk>/versions/<int:number>/card.md",
        views.VersionCardMarkdownView.as_view(),
        name="card-md",
    ),
    path(
        "<int:pk>/versions/<int:number>/confusion.svg",
        views.ConfusionSvgView.as_view(),
        name="confusion",
    ),
]
