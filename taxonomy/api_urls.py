from django.urls import path
from rest_framework.routers import SimpleRouter

from taxonomy import api as api_views

app_name = "taxonomy-api"

router = SimpleRouter()
router.register("taxonomy/labels", api_views.LabelViewSet, basename="label")
router.register("label-sets", api_views.LabelSetViewSet, basename="label-set")

urlpatterns = [
    path("taxonomy/tree/", api_views.LabelTreeView.as_view(), name="tree"),
    *router.urls,
]
