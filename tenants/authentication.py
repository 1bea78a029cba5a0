"""`Authorization: Api-Key <key>` authentication. The key's tenant becomes the request's tenant."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from tenants import keys
from tenants.models import ApiKey

# last_used_at is a hint, not an audit log: write it at most once a minute per key.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


class ApiKeyUser:
    """The principal of an API-key request: not a Django user, but authenticated for DRF."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, plain = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        plain = plain.strip()
        prefix = keys.parse_prefix(plain)
        if not prefix:
            raise exceptions.AuthenticationFailed("Malformed API key.")
        api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
        if api_key is None or not keys.matches(plain, api_key.hashed_key):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        now = timezone.now()
        if api_key.expires_at is not None and api_key.expires_at <= now:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        if not api_key.tenant.is_active:
            raise exceptions.AuthenticationFailed("This tenant is not active.")
        if api_key.last_used_at is None or now - api_key.last_used_at > _LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword
