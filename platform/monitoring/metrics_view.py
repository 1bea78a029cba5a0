"""GET /metrics for Prometheus.

Outside DEBUG it needs METRICS_BEARER_TOKEN (METRICS_REQUIRE_TOKEN); METRICS_ALLOWED_IPS limits it
by client address too. nginx also denies it except from the scrape network.
"""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring import metrics


def _ip_allowed(remote: str, allowed: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def bearer_token_given(request) -> bool:
    """True when the request carries the configured metrics bearer token."""
    token = settings.METRICS_BEARER_TOKEN
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


@require_GET
@never_cache
def metrics_view(request):
    allowed = settings.METRICS_ALLOWED_IPS
    # REMOTE_ADDR, not X-Forwarded-For: a client could forge the header (nginx sets REMOTE_ADDR
    # to the scraper when Prometheus scrapes the replicas directly).
    if allowed and not _ip_allowed(request.META.get("REMOTE_ADDR", ""), allowed):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    token = settings.METRICS_BEARER_TOKEN
    if not token and settings.METRICS_REQUIRE_TOKEN:
        return HttpResponse(
            "Forbidden: set METRICS_BEARER_TOKEN to scrape /metrics\n",
            status=403,
            content_type="text/plain",
        )
    if token and not bearer_token_given(request):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
