"""Tenant scoping for querysets, enforced in the data layer (as django-scopes, PostHog and Sentry do).

Every tenant-owned model uses `TenantQuerySet.as_manager()` as its default manager (`objects`).
A query through it must say whose rows it reads before it touches the database, or it raises
`UnscopedQueryError`:

- `.for_tenant(t)` (the tenant's rows, plus shared rows where the model has them) or `.owned_by(t)`;
- a filter that pins the tenant (`filter(tenant=t)`, `get(tenant=t, slug=...)`,
  `filter(tenant__isnull=True)` for shared rows): Django's own unique checks look like that;
- a related manager or prefetch from an owning row (`need.items.all()`): the parent is scoped;
- a context-local scope: `with tenant_scope(t):` (set by `@acts_for_tenant` on tasks that act
  for one tenant) makes every default-manager query in it `.for_tenant(t)`;
- `.dangerously_unscoped()`, the escape hatch. It is allowed only in admin, bundle/backup, demo
  loaders, migrations and tests; `tests/foundation/test_tenancy_guard.py` fails anywhere else.

Creating rows is never refused. Django's own machinery (forward relations, `refresh_from_db`,
deletion collectors, `save()`) uses the model's base manager, which stays a plain `Manager`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.lookups import Exact, IsNull

_current_tenant: contextvars.ContextVar[Any] = contextvars.ContextVar("tenant_scope", default=None)


class UnscopedQueryError(RuntimeError):
    """A tenant-owned model was queried without saying whose rows it reads."""


#: Context values besides a tenant: the platform itself owns the work (shared rows only), or the
#: row the work was for is gone (nothing is visible).
_PLATFORM = object()
_NOBODY = object()
_ALL = object()


@contextlib.contextmanager
def tenant_scope(tenant) -> Iterator[None]:
    """Within the block, default-manager queries of tenant-owned models are `.for_tenant(tenant)`
    (a Tenant or its pk)."""
    if tenant is None:
        raise ValueError("tenant_scope() needs a tenant.")
    token = _current_tenant.set(tenant)
    try:
        yield
    finally:
        _current_tenant.reset(token)


@contextlib.contextmanager
def dangerously_unscoped_block() -> Iterator[None]:
    """Within the block, default managers return every tenant's rows: the admin site wraps its
    views in this (platform staff work across tenants). Same rules as `dangerously_unscoped()`."""
    token = _current_tenant.set(_ALL)
    try:
        yield
    finally:
        _current_tenant.reset(token)


def current_tenant():
    """The tenant of the enclosing `tenant_scope()`, or None."""
    value = _current_tenant.get()
    return None if value in (_PLATFORM, _NOBODY, _ALL) else value


def _owner_of(model, pk):
    """The owner of one row, read through the base manager: `_NOBODY` when the row is gone,
    `_PLATFORM` for a shared (tenant IS NULL) row, else the tenant's pk."""
    tenant_field = model._default_manager._queryset_class.tenant_field
    found = list(model._base_manager.filter(pk=pk).values_list(tenant_field, flat=True)[:1])
    if not found:
        return _NOBODY
    return _PLATFORM if found[0] is None else found[0]


def acts_for_tenant(model, id_arg: str) -> Callable:
    """Decorate a task body (or the service a task calls) that acts for the owner of one row,
    named by the argument `id_arg` (an id of `model`, a model class or "app_label.Model"): the
    body runs in that owner's `tenant_scope()`, so every row it loads through a default manager
    is that tenant's (or shared). Work on a platform-owned row sees shared rows; work whose row
    is gone sees none."""

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            row_model = apps.get_model(model) if isinstance(model, str) else model
            row_id = signature.bind(*args, **kwargs).arguments[id_arg]
            token = _current_tenant.set(_owner_of(row_model, row_id))
            try:
                return func(*args, **kwargs)
            finally:
                _current_tenant.reset(token)

        return wrapper

    return decorate


def _tenant_target(model, tenant_field: str):
    """The FK field that a `tenant_field` path (`tenant`, `need__tenant`) ends on."""
    field = None
    current = model
    for part in tenant_field.split("__"):
        field = current._meta.get_field(part)
        current = field.related_model
    return field


class TenantQuerySet(models.QuerySet):
    #: The field linking a row to its tenant; override for rows owned through a relation.
    tenant_field = "tenant"
    #: Shared rows (tenant IS NULL) are visible to every tenant for models that allow them.
    include_shared = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._tenant_scoped = False

    def _clone(self):
        clone = super()._clone()
        clone._tenant_scoped = self._tenant_scoped
        return clone

    def _scoped(self):
        clone = self._chain()
        clone._tenant_scoped = True
        return clone

    # -- the ways to scope ------------------------------------------------------------------

    def for_tenant(self, tenant):
        if tenant is None:
            raise ValueError(
                "for_tenant() needs a tenant; a staff-only all-tenant read uses a separately "
                "named `..._all_tenants` selector."
            )
        condition = models.Q(**{self.tenant_field: tenant})
        if self.include_shared:
            condition |= models.Q(**{f"{self.tenant_field}__isnull": True})
        return self.filter(condition)._scoped()

    def owned_by(self, tenant):
        """Only rows the tenant owns (never shared rows): the set a tenant may change. For models
        with shared rows, `owned_by(None)` is the platform's own (shared) rows."""
        if tenant is None:
            if not self.include_shared:
                raise ValueError("owned_by() needs a tenant.")
            return self.shared_only()
        return self.filter(**{self.tenant_field: tenant})._scoped()

    def for_owner(self, tenant):
        """What work owned by `tenant` may read: `for_tenant(tenant)`, or only the shared rows
        when the platform itself (tenant None) owns the work."""
        return self.for_tenant(tenant) if tenant is not None else self.shared_only()

    def shared_only(self):
        """Only shared (platform-owned) rows, for models that have them."""
        if not self.include_shared:
            return self.none()._scoped()
        return self.filter(**{f"{self.tenant_field}__isnull": True})._scoped()

    def dangerously_unscoped(self):
        """Every tenant's rows. Only admin, bundle/backup, demo loaders, migrations and tests may
        call this (tests/foundation/test_tenancy_guard.py)."""
        return self._scoped()

    # -- the check ----------------------------------------------------------------------------

    def _pins_tenant(self) -> bool:
        where = self.query.where
        if where.negated or where.connector != "AND":
            return False
        try:
            target = _tenant_target(self.model, self.tenant_field)
        except FieldDoesNotExist:  # a tenant_field that does not resolve: never pinned
            return False
        for child in where.children:
            if not isinstance(child, Exact | IsNull):
                continue
            if isinstance(child, IsNull) and child.rhs is not True:
                continue
            if getattr(child.lhs, "target", None) is target:
                return True
        return False

    def is_tenant_scoped(self) -> bool:
        return (
            self._tenant_scoped
            or self.query.is_empty()  # .none(): reads nothing
            or self._hints.get("instance") is not None  # a related manager / prefetch
            or self._pins_tenant()
        )

    def _refuse_unscoped(self) -> None:
        if not self.is_tenant_scoped():
            raise UnscopedQueryError(
                f"Unscoped query on tenant-owned {self.model.__name__}: use .for_tenant(tenant), "
                "filter by tenant, run inside tenant_scope(tenant), or (admin, backup, demo, "
                "migrations only) .dangerously_unscoped()."
            )

    def _fetch_all(self):
        if self._result_cache is None:
            self._refuse_unscoped()
        super()._fetch_all()

    def iterator(self, *args, **kwargs):
        self._refuse_unscoped()
        return super().iterator(*args, **kwargs)

    def count(self):
        if self._result_cache is None:
            self._refuse_unscoped()
        return super().count()

    def exists(self):
        if self._result_cache is None:
            self._refuse_unscoped()
        return super().exists()

    def aggregate(self, *args, **kwargs):
        self._refuse_unscoped()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs):
        self._refuse_unscoped()
        return super().update(**kwargs)

    def delete(self):
        self._refuse_unscoped()
        return super().delete()

    def in_bulk(self, *args, **kwargs):
        self._refuse_unscoped()
        return super().in_bulk(*args, **kwargs)

    def resolve_expression(self, *args, **kwargs):
        # Used as a subquery (`pk__in=Need.objects.filter(...)`): the same rule applies.
        self._refuse_unscoped()
        return super().resolve_expression(*args, **kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        # The rows were loaded (through a scope) by the caller; this writes them back by pk.
        return super(TenantQuerySet, self._scoped()).bulk_update(objs, fields, batch_size)

    @classmethod
    def as_manager(cls):
        manager = _TenantManager.from_queryset(cls)()
        manager._built_with_as_manager = True
        return manager

    as_manager.queryset_only = True


class SharedOrTenantQuerySet(TenantQuerySet):
    include_shared = True


class _TenantManager(models.Manager):
    """The default manager: applies the context-local `tenant_scope()` when one is set."""

    def get_queryset(self):
        queryset = super().get_queryset()
        tenant = _current_tenant.get()
        if tenant is _ALL:
            return queryset.dangerously_unscoped()
        if tenant is _NOBODY:
            return queryset.none()
        if tenant is _PLATFORM:
            return queryset.shared_only()
        if tenant is not None:
            queryset = queryset.for_tenant(tenant)
        return queryset

    # An explicit scope says whose rows it reads, so from the manager it replaces the context's
    # default (e.g. a platform-owned training run bringing a tenant's need live).
    def for_tenant(self, tenant):
        return super().get_queryset().for_tenant(tenant)

    def owned_by(self, tenant):
        return super().get_queryset().owned_by(tenant)

    def for_owner(self, tenant):
        return super().get_queryset().for_owner(tenant)

    def shared_only(self):
        return super().get_queryset().shared_only()

    def dangerously_unscoped(self):
        return super().get_queryset().dangerously_unscoped()
