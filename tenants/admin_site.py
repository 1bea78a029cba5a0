"""The admin site: platform staff, who work across tenants.

Every admin view runs inside `dangerously_unscoped_block()`, so the changelists, forms, raw-id
widgets and unique checks of tenant-owned models (all through their default managers) see every
tenant's rows, as the admin always has. Template responses are rendered inside the block too:
their querysets are evaluated while rendering.
"""

from __future__ import annotations

from functools import wraps

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

from core.querysets import dangerously_unscoped_block


class PlatformAdminSite(admin.AdminSite):
    def admin_view(self, view, cacheable=False):
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def unscoped_view(request, *args, **kwargs):
            with dangerously_unscoped_block():
                response = inner(request, *args, **kwargs)
                if callable(getattr(response, "render", None)) and not response.is_rendered:
                    response.render()
                return response

        return unscoped_view


class PlatformAdminConfig(AdminConfig):
    default_site = "tenants.admin_site.PlatformAdminSite"
