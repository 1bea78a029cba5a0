from core.scoping import resolve_membership
from tenants.memberships import portal_memberships_for


def tenancy(request):
    """The current tenant and the user's other tenants, for the switcher in the base template.
    Platform staff also get every other tenant, read-only (support mode)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = portal_memberships_for(user)
    current = resolve_membership(request, portal=True) if memberships else None
    return {
        "memberships": memberships,
        "current_membership": current,
        "current_tenant": current.tenant if current else None,
        "support_mode": bool(current and current.support),
    }
