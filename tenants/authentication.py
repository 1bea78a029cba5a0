"""`Authorization: Api-Key <key>` authentication. The key's tenant becomes the request's tenant."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import HTTP_HEADER_ENCODING, authentication, exceptions

from core.authentication import ApiKeyUser
from tenants import keys
from tenants.models import ApiKey

# last_used_at is a hint, not an audit log: write it at most once a minute per key.
_LAST_USED_RESOLUTION = timedelta(seconds=60)

# Verified keys are remembered per process for API_KEY_CACHE_SECONDS (a few seconds), which keeps
# the serving hot path free of a key query. A revocation therefore reaches other processes within
# that time; expiry is still checked on every request.
_verified: dict[str, tuple[float, ApiKey]] = {}
_MAX_CACHED_KEYS = 10_000


def clear_key_cache() -> None:
    _verified.clear()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        # DRF's get_authorization_header(), read from META: it reads `request.headers`, which
        # copies every header of the request on first use (nothing else on the hot path needs it).
        raw = request.META.get("HTTP_AUTHORIZATION", b"")
        if isinstance(raw, str):
            raw = raw.encode(HTTP_HEADER_ENCODING)
        if not raw:
            return None
        ttl = settings.API_KEY_CACHE_SECONDS
        digest = hashlib.sha256(raw).hexdigest() if ttl else ""
        if ttl:
            hit = _verified.get(digest)
            if hit is not None and hit[0] > time.monotonic():
                api_key = hit[1]
                if api_key.expires_at is None or api_key.expires_at > timezone.now():
                    return ApiKeyUser(api_key), api_key
        result = self._authenticate_uncached(raw.decode("latin-1"))
        if ttl and result is not None:
            if len(_verified) >= _MAX_CACHED_KEYS:
                _verified.clear()
            _verified[digest] = (time.monotonic() + ttl, result[1])
        return result

    def _authenticate_uncached(self, header: str):
        scheme, _sep, plain = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        plain = plain.strip()
        prefix = keys.parse_prefix(plain)
        if not prefix:
            raise exceptions.AuthenticationFailed(_("Malformed API key."))
        api_key = (
            ApiKey.objects.dangerously_unscoped()  # no tenant is known before the key is
            .select_related("tenant")
            .filter(prefix=prefix)
            .first()
        )
        if api_key is None or not keys.matches(plain, api_key.hashed_key):
            raise exceptions.AuthenticationFailed(_("Invalid API key."))
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This API key has been revoked."))
        now = timezone.now()
        if api_key.expires_at is not None and api_key.expires_at <= now:
            raise exceptions.AuthenticationFailed(_("This API key has expired."))
        if not api_key.tenant.is_active:
            raise exceptions.AuthenticationFailed(_("This tenant is not active."))
        if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
            ApiKey.objects.owned_by(api_key.tenant_id).filter(pk=api_key.pk).update(
                last_used_at=now
            )
            api_key.last_used_at = now
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword
