"""Where the tenancy base views (`core.scoping`) find a request's memberships: the concrete
lookups over tenants' models, named by the setting TENANCY_MEMBERSHIPS. Platform staff get
unsaved stand-ins (support mode in the portal, acting for a named tenant in the API), every use
of which is audited."""

from __future__ import annotations

from core.authentication import ApiKeyUser
from tenants.models import Membership, Role, Tenant
from tenants.services import support_access_record as support_access_record_create


def support_access_record(request, membership: Membership) -> None:
    """Audit one page a staff user read in support mode."""
    support_access_record_create(
        user=request.user, tenant=membership.tenant, method=request.method, path=request.path
    )


def memberships_for(user) -> list[Membership]:
    if not getattr(user, "is_authenticated", False) or isinstance(user, ApiKeyUser):
        return []
    return list(
        Membership.objects.dangerously_unscoped()  # a user's own memberships, in every tenant
        .filter(user=user, tenant__is_active=True)
        .select_related("tenant")
        .order_by("tenant__slug")
    )


def support_memberships_for(user) -> list[Membership]:
    """Read-only stand-ins (role viewer, `support=True`, never saved) for every active tenant a
    platform staff user is not a member of: their way into a tenant's portal for support. Every
    page they open that way is audited (`SupportAccess`) and every write is refused."""
    if not getattr(user, "is_staff", False) or isinstance(user, ApiKeyUser):
        return []
    own = (
        Membership.objects.dangerously_unscoped()
        .filter(user=user)
        .values_list("tenant_id", flat=True)
    )
    stand_ins = []
    for tenant in Tenant.objects.filter(is_active=True).exclude(pk__in=own).order_by("slug"):
        membership = Membership(user=user, tenant=tenant, role=Role.VIEWER)
        membership.support = True
        stand_ins.append(membership)
    return stand_ins


def portal_memberships_for(user) -> list[Membership]:
    """The tenants a user can open in the portal: their memberships, then (staff) support ones."""
    return memberships_for(user) + support_memberships_for(user)


def staff_membership_for(request, slug: str) -> Membership | None:
    """Platform staff acting for the tenant they name (`X-Tenant: <slug>`) in the API: an
    unsaved admin stand-in, and every request made that way is audited (`SupportAccess`). This
    is how staff do a tenant's onboarding steps for it; the portal's support mode stays
    read-only."""
    tenant = Tenant.objects.filter(slug=slug, is_active=True).first()
    if tenant is None:
        return None
    membership = Membership(user=request.user, tenant=tenant, role=Role.ADMIN)
    support_access_record(request, membership)
    return membership
