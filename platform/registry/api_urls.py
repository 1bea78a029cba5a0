from django.urls import path
from rest_framework.routers import SimpleRouter

from registry import api

app_name = "registry-api"

# Path converters (<int:pk>) give the OpenAPI schema typed ids without a request.
router = SimpleRouter(use_regex_path=False)
router.register("models", api.RegisteredModelViewSet, basename="model")
router.register("versions", api.VersionViewSet, basename="version")
router.register("training-runs", api.TrainingRunViewSet, basename="training-run")
router.register("snapshots", api.SnapshotViewSet, basename="snapshot")

# What the registry offers a need, under the need's own URLs (tenants-api has the need itself).
offers = api.NeedOfferViewSet
urlpatterns = [
    path(
        "needs/<str:slug>/subscribe/",
        offers.as_view({"post": "subscribe"}),
        name="need-subscribe",
    ),
    path(
        "needs/<str:slug>/model-update/",
        offers.as_view({"get": "model_update"}),
        name="need-model-update",
    ),
    path(
        "needs/<str:slug>/suggestions/",
        offers.as_view({"get": "suggestions"}),
        name="need-suggestions",
    ),
    path("datasets/upload/", api.DatasetUploadView.as_view(), name="dataset-upload"),
    path("reuse-suggestions/", api.ReuseSuggestionsView.as_view(), name="reuse-suggestions"),
    *router.urls,
]
