from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)

from monitoring.metrics_view import metrics_view
from tagging_platform import health

urlpatterns = [
    # First: the API is the hot path, and resolution tries the patterns in order (no other
    # pattern starts with "api/v1/", so the order decides nothing else).
    path("api/v1/", include("tagging_platform.api_urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script (CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # Portal sections, each owned by its domain app.
    path("taxonomy/", include("taxonomy.portal_urls")),
    path("tenant/", include("portal.tenant_urls")),
    path("models/", include("registry.portal_urls")),
    path("serving/", include("serving.portal_urls")),
    path("monitoring/", include("monitoring.portal_urls")),
    path("retraining/", include("retraining.portal_urls")),
    path("review/", include("review.portal_urls")),
    path("optimisation/", include("optimisation.portal_urls")),
    path("records/", include("records.portal_urls")),
    path("", include("portal.portal_urls")),
]
