from django.urls import path
from rest_framework.routers import SimpleRouter

from retraining import api

app_name = "retraining-api"

router = SimpleRouter(use_regex_path=False)
router.register("retraining/retrains", api.RetrainViewSet, basename="retrain")

urlpatterns = [
    path(
        "retraining/policies/<slug:need>/", api.RetrainPolicyView.as_view(), name="retrain-policy"
    ),
    *router.urls,
]
