"""Tenant scoping for querysets.

Every tenant-owned model uses `TenantQuerySet`. Scoped code calls `.for_tenant(tenant)`; code that
really means "all tenants" (admin, beat tasks, migrations) says so with `.unscoped()`, so a grep for
`unscoped(` lists every place tenancy is deliberately crossed.
"""

from __future__ import annotations

from django.db import models


class TenantQuerySet(models.QuerySet):
    #: The field linking a row to its tenant; override for rows owned through a relation.
    tenant_field = "tenant"
    #: Shared rows (tenant IS NULL) are visible to every tenant for models that allow them.
    include_shared = False

    def for_tenant(self, tenant):
        if tenant is None:
            raise ValueError(
                "for_tenant() needs a tenant; use .unscoped() to cross tenants on purpose."
            )
        condition = models.Q(**{self.tenant_field: tenant})
        if self.include_shared:
            condition |= models.Q(**{f"{self.tenant_field}__isnull": True})
        return self.filter(condition)

    def owned_by(self, tenant):
        """Only rows the tenant owns (never shared rows): the set a tenant may change."""
        return self.filter(**{self.tenant_field: tenant})

    def unscoped(self):
        return self.all()


class SharedOrTenantQuerySet(TenantQuerySet):
    include_shared = True
