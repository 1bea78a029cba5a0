"""GET /metrics for Prometheus. Open unless METRICS_ALLOWED_IPS and/or METRICS_BEARER_TOKEN are set."""

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


@require_GET
@never_cache
def metrics_view(request):
    allowed = settings.METRICS_ALLOWED_IPS
    # REMOTE_ADDR, not X-Forwarded-For: a client could forge the header (nginx sets REMOTE_ADDR
    # to the scraper when Prometheus scrapes the replicas directly).
    if allowed and not _ip_allowed(request.META.get("REMOTE_ADDR", ""), allowed):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    token = settings.METRICS_BEARER_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = "Bearer"
            return response
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
