"""OpenAPI description of the Api-Key scheme, as a low-priority fallback.

`tenants.schema` owns this description (priority 0 wins over this one once it is present); this
copy only keeps the registry's endpoints documented, and `check --deploy` clean, without it.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class RegistryApiKeyAuthenticationFallback(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"
    priority = -1

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a tenant API key, shown once when it is created.",
        }
