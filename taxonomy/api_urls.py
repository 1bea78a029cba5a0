from django.urls import path
from rest_framework.routers import SimpleRouter

from taxonomy import api as api_views

app_name = "taxonomy-api"

router = SimpleRouter()
router.register("taxonomy/labels", api_views.LabelViewSet, basename="label")
router.register("label-sets", api_views.LabelSetViewSet, basename="label-set")
router.register("label-proposals", api_views.LabelProposalViewSet, basename="label-proposal")

urlpatterns = [
    path("taxonomy/tree/", api_views.LabelTreeView.as_view(), name="tree"),
    *router.urls,
]
