from tenants.scoping import memberships_for, resolve_membership


def tenancy(request):
    """The current tenant and the user's other tenants, for the switcher in the base template."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = memberships_for(user)
    current = resolve_membership(request) if memberships else None
    return {
        "memberships": memberships,
        "current_membership": current,
        "current_tenant": current.tenant if current else None,
    }
