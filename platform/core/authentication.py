"""The principal of a request made with an API key (tenants' `ApiKeyAuthentication` finds the key;
every view checks for this principal the same way)."""

from __future__ import annotations

from typing import Any


class ApiKeyUser:
    """The principal of an API-key request: not a Django user, but authenticated for DRF. The
    request's `auth` is the key itself (its tenant and scopes)."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None
    id = None

    def __init__(self, api_key: Any):
        self.api_key = api_key
        self.username = f"api-key:{api_key.prefix}"

    def __str__(self) -> str:
        return self.username
