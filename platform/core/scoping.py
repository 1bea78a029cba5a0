"""Tenancy enforced in one place, below every app.

Every tenant-facing API view and portal view derives from `TenantScopedAPIView`/`TenantScopedViewSet`
or `TenantPortalMixin`. They resolve the tenant once (from the API key, or from the session's chosen
membership), check the caller's role or key scope, and build every queryset as
`scoped_queryset().for_tenant(tenant)`. Subclasses cannot override `get_queryset` (it raises at
class creation), so scoping cannot be forgotten; another tenant's object is simply not found (404).

Core imports no app: a request's memberships come from the module the setting
TENANCY_MEMBERSHIPS names (tenants.memberships), which provides `memberships_for(user)`,
`portal_memberships_for(user)`, `staff_membership_for(request, slug)` and
`support_access_record(request, membership)`. A membership has `tenant`, `tenant_id`, `role`,
`support` and `has_role(role)`; `request.auth` of an API-key request has `tenant` and `scopes`.
"""

from __future__ import annotations

import functools
from importlib import import_module
from types import ModuleType
from typing import Any

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, generics, viewsets
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.views import APIView

from core.authentication import ApiKeyUser
from core.roles import ApiKeyScope, Role, role_outranks

SESSION_TENANT_KEY = "tenant_id"
TENANT_HEADER = "X-Tenant"
AS_TENANT_PARAM = "as_tenant"

Membership = Any  # tenants.models.Membership, or an unsaved staff stand-in of it
Tenant = Any  # tenants.models.Tenant


@functools.cache
def memberships() -> ModuleType:
    """The membership lookups (settings.TENANCY_MEMBERSHIPS)."""
    return import_module(settings.TENANCY_MEMBERSHIPS)


def resolve_membership(
    request, *, wanted_slug: str | None = None, portal: bool = False
) -> Membership | None:
    """The session user's current membership: the requested tenant, the chosen one, or the only one.
    `portal=True` includes the read-only support memberships of platform staff."""
    source = memberships()
    found = (source.portal_memberships_for if portal else source.memberships_for)(request.user)
    if not found:
        return None
    if wanted_slug:
        return next((m for m in found if m.tenant.slug == wanted_slug), None)
    chosen = request.session.get(SESSION_TENANT_KEY) if hasattr(request, "session") else None
    for membership in found:
        if membership.tenant_id == chosen:
            return membership
    return found[0]


def _check_not_overridden(cls, guarded=(("get_queryset", "scoped_queryset"),)) -> None:
    for method, hook in guarded:
        if method in cls.__dict__:
            raise TypeError(
                f"{cls.__qualname__} overrides {method}(); override {hook}() instead so the "
                "tenant filter is always applied."
            )


#: The API base view's guard (PostHog `routing.py`): what a subclass may not override, and the
#: hook it overrides instead.
_API_GUARDED = (
    ("get_queryset", "scoped_queryset"),
    ("filter_queryset", "filter_scoped_queryset"),
    ("get_object", "get_scoped_object"),
)


class TenantScopedAPIMixin:
    """Base for tenant-facing API views. Set `required_scope`/`write_scope` and roles as needed."""

    permission_classes = [IsAuthenticated]
    read_scope: str = ApiKeyScope.READ
    write_scope: str = ApiKeyScope.READ
    read_role: str = Role.VIEWER
    write_role: str = Role.REQUESTER
    #: False for endpoints only a signed-in person may use (e.g. key management: a key must
    #: never be able to mint a stronger key).
    allow_api_keys: bool = True
    #: True where platform staff who are no tenant's member act on shared (platform-owned) rows:
    #: `tenant` is then None and querysets hold shared rows only (e.g. promoting shared models).
    allow_platform_staff: bool = False

    tenant: Tenant | None
    membership: Membership | None = None
    api_key = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _check_not_overridden(cls, _API_GUARDED)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.resolve_tenant(request)

    def resolve_tenant(self, request) -> None:
        safe = request.method in SAFE_METHODS
        if isinstance(request.user, ApiKeyUser):
            if not self.allow_api_keys:
                raise exceptions.PermissionDenied(
                    _("This endpoint needs a signed-in tenant member, not an API key.")
                )
            self.api_key = request.auth
            self.tenant = self.api_key.tenant
            scope = self.read_scope if safe else self.write_scope
            if scope and scope not in self.api_key.scopes:
                raise exceptions.PermissionDenied(
                    _("This API key lacks the '%(scope)s' scope.") % {"scope": scope}
                )
            return
        wanted = request.headers.get(TENANT_HEADER)
        membership = resolve_membership(request, wanted_slug=wanted)
        staff = getattr(request.user, "is_staff", False)
        if membership is None and self.allow_platform_staff and staff and not wanted:
            self.membership, self.tenant = None, None  # platform staff: shared rows only
            return
        if membership is None and staff and wanted:
            membership = memberships().staff_membership_for(request, wanted)
        if membership is None:
            raise exceptions.PermissionDenied(_("You are not a member of any active tenant."))
        role = self.read_role if safe else self.write_role
        if not membership.has_role(role):
            raise exceptions.PermissionDenied(
                _("This needs the '%(role)s' role in %(tenant)s.")
                % {"role": role, "tenant": membership.tenant.slug}
            )
        self.membership = membership
        self.tenant = membership.tenant

    @property
    def acting_user(self):
        """The Django user behind the request, or None for API-key callers."""
        user = self.request.user
        return None if isinstance(user, ApiKeyUser) else user

    @property
    def actor(self):
        """Who an audit trail records: the signed-in person, or the API key."""
        return self.acting_user or self.api_key

    def scoped_queryset(self):
        raise NotImplementedError(f"{type(self).__name__} must define scoped_queryset().")

    def _scope(self, queryset):
        if getattr(self, "swagger_fake_view", False):
            # drf-spectacular introspects views without a request: no tenant, no rows.
            return queryset.none()
        if self.tenant is None:  # platform staff without a tenant (allow_platform_staff)
            return queryset.shared_only()
        return queryset.for_tenant(self.tenant)

    def get_queryset(self):
        return self._scope(self.scoped_queryset())

    def filter_scoped_queryset(self, queryset):
        """Hook: narrow the tenant's queryset (query parameters). Whatever it returns is scoped
        to the tenant again, so a hook that builds its own queryset cannot widen it."""
        return super().filter_queryset(queryset)

    def filter_queryset(self, queryset):
        return self._scope(self.filter_scoped_queryset(queryset))

    def get_scoped_object(self, queryset):
        """Hook: the object this request is about, looked up in the tenant's queryset."""
        lookup_url_kwarg = self.lookup_url_kwarg or self.lookup_field
        return generics.get_object_or_404(
            queryset, **{self.lookup_field: self.kwargs[lookup_url_kwarg]}
        )

    def get_object(self):
        queryset = self.filter_queryset(self.get_queryset())
        obj = self.get_scoped_object(queryset)
        overridden = type(self).get_scoped_object is not TenantScopedAPIMixin.get_scoped_object
        if overridden and not queryset.filter(pk=obj.pk).exists():
            raise Http404  # a hook returned a row outside the tenant's scope
        self.check_object_permissions(self.request, obj)
        return obj


class TenantScopedAPIView(TenantScopedAPIMixin, APIView):
    pass


class TenantScopedGenericAPIView(TenantScopedAPIMixin, generics.GenericAPIView):
    pass


class TenantScopedViewSet(TenantScopedAPIMixin, viewsets.GenericViewSet):
    pass


class TenantPortalMixin(LoginRequiredMixin):
    """Base for portal views: the session's current tenant, checked role, scoped querysets."""

    required_role: str = Role.VIEWER
    tenant: Tenant
    membership: Membership

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _check_not_overridden(cls)

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        # `?as_tenant=<slug>` opens a page as that tenant (e.g. the admin's model-card link).
        wanted = request.GET.get(AS_TENANT_PARAM) or None
        membership = resolve_membership(request, wanted_slug=wanted, portal=True)
        if membership is None:
            raise PermissionDenied(_("You are not a member of any active tenant."))
        if wanted:
            request.session[SESSION_TENANT_KEY] = membership.tenant_id
        if membership.support:
            if request.method not in SAFE_METHODS:
                raise PermissionDenied(_("Support access is read-only."))
            memberships().support_access_record(request, membership)
        elif not membership.has_role(self.required_role):
            raise PermissionDenied(
                _("This page needs the '%(required_role)s' role.")
                % {"required_role": self.required_role}
            )
        self.membership = membership
        self.tenant = membership.tenant
        return super().dispatch(request, *args, **kwargs)

    def scoped_queryset(self):
        raise NotImplementedError(f"{type(self).__name__} must define scoped_queryset().")

    def get_queryset(self):
        return self.scoped_queryset().for_tenant(self.tenant)

    def get_scoped_object_or_404(self, queryset=None, **lookup):
        try:
            return (queryset if queryset is not None else self.get_queryset()).get(**lookup)
        except (ObjectDoesNotExist, ValidationError, ValueError):
            raise Http404 from None


def role_at_least(membership: Membership | None, role: str) -> bool:
    return membership is not None and role_outranks(membership.role, role)
