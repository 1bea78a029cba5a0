"""Read-only queries for the portal home page."""

from __future__ import annotations

from registry.models import RegisteredModel
from tenants.models import ApiKey, Need, NeedStatus, Tenant


def tenant_overview(*, tenant: Tenant) -> dict:
    needs = Need.objects.for_tenant(tenant)
    return {
        "needs_total": needs.count(),
        "needs_live": needs.filter(status=NeedStatus.LIVE).count(),
        "needs_requested": needs.filter(status=NeedStatus.REQUESTED).count(),
        "keys_active": ApiKey.objects.for_tenant(tenant).filter(revoked_at__isnull=True).count(),
        "models_visible": RegisteredModel.objects.for_tenant(tenant).count(),
        "recent_needs": list(needs.select_related("label_set").order_by("-created_at")[:5]),
    }
