"""Everything under /api/v1/, each domain app contributing its own routes."""

from django.urls import include, path

# Serving first: its routes are the hot path, and URL resolution tries includes in order.
urlpatterns = [
    path("", include("serving.api_urls")),
    path("", include("tenants.api_urls")),
    path("", include("taxonomy.api_urls")),
    path("", include("registry.api_urls")),
    path("", include("monitoring.api_urls")),
    path("", include("retraining.api_urls")),
    path("", include("review.api_urls")),
    path("", include("optimisation.api_urls")),
    path("", include("records.api_urls")),
]
