"""API-key authentication with a short per-process cache, for the serving hot path.

The foundation's `ApiKeyAuthentication` costs one query per request. Serving endpoints remember a
verified key for API_KEY_CACHE_SECONDS (a few seconds), so a revoked key stops working within that
time on every process; expiry is still checked on every request.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication

from tenants.authentication import ApiKeyAuthentication, ApiKeyUser

_cache: dict[str, tuple[float, object]] = {}
_MAX_ENTRIES = 10_000


class CachedApiKeyAuthentication(ApiKeyAuthentication):
    def authenticate(self, request):
        ttl = settings.API_KEY_CACHE_SECONDS
        header = authentication.get_authorization_header(request)
        if not ttl or not header:
            return super().authenticate(request)
        digest = hashlib.sha256(header).hexdigest()
        hit = _cache.get(digest)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            api_key = hit[1]
            if api_key.expires_at is None or api_key.expires_at > timezone.now():
                return ApiKeyUser(api_key), api_key
        result = super().authenticate(request)
        if result is not None:
            if len(_cache) >= _MAX_ENTRIES:
                _cache.clear()
            _cache[digest] = (now + ttl, result[1])
        return result


def clear_cache() -> None:
    _cache.clear()


class CachedApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """OpenAPI: `Authorization: Api-Key tp_<prefix>_<secret>`."""

    target_class = "serving.authentication.CachedApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key tp_<prefix>_<secret>`; scopes: tag, batch, feedback, read.",
        }
