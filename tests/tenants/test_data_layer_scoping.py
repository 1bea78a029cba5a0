"""Tenancy below the views: the default manager of a tenant-owned model refuses an unscoped query.

A query says whose rows it reads (`for_tenant`, `owned_by`, a tenant filter, a related manager,
a `tenant_scope()`), or it is refused before it reaches the database. Django's own machinery
(forward relations, refresh, deletion) keeps working through the plain base manager.
"""

from __future__ import annotations

import pytest
from django.shortcuts import get_object_or_404

from core.querysets import (
    UnscopedQueryError,
    acts_for_tenant,
    current_tenant,
    dangerously_unscoped_block,
    tenant_scope,
)
from core.scoping import TenantScopedGenericAPIView
from monitoring import selectors as monitoring_selectors
from registry import model_card
from taxonomy.models import LabelSet
from tenants.models import Need, NeedStatusChange
from tests.factories import NeedFactory


@pytest.fixture
def needs(tenant_a, tenant_b, news_topics):
    return {
        "a": NeedFactory(tenant=tenant_a, slug="a-need", label_set=news_topics),
        "b": NeedFactory(tenant=tenant_b, slug="b-need", label_set=news_topics),
    }


@pytest.mark.parametrize(
    "query",
    [
        lambda: list(Need.objects.all()),
        lambda: Need.objects.get(slug="a-need"),
        lambda: Need.objects.filter(slug="a-need").first(),
        lambda: Need.objects.count(),
        lambda: Need.objects.exists(),
        lambda: Need.objects.filter(slug="a-need").update(name="x"),
        lambda: Need.objects.filter(slug="b-need").delete(),
        lambda: list(Need.objects.values_list("pk", flat=True)),
        lambda: list(Need.objects.iterator()),
        lambda: Need.objects.aggregate(n=__import__("django").db.models.Count("id")),
        # As a subquery the rule is the same.
        lambda: list(
            NeedStatusChange.objects.dangerously_unscoped().filter(
                need__in=Need.objects.filter(slug="a-need")
            )
        ),
    ],
)
def test_default_manager_refuses_an_unscoped_query(needs, query):
    with pytest.raises(UnscopedQueryError, match="Unscoped query on tenant-owned Need"):
        query()


def test_scoped_queries_see_only_the_tenants_rows(needs, tenant_a, tenant_b):
    assert list(Need.objects.for_tenant(tenant_a)) == [needs["a"]]
    assert list(Need.objects.owned_by(tenant_b)) == [needs["b"]]
    # A filter that pins the tenant is a scope too (Django's own unique checks look like that).
    assert Need.objects.get(tenant=tenant_a, slug="a-need") == needs["a"]
    assert not Need.objects.filter(tenant=tenant_a, slug="b-need").exists()
    # Another tenant's row by primary key is simply not found.
    assert Need.objects.for_tenant(tenant_a).filter(pk=needs["b"].pk).first() is None
    with pytest.raises(ValueError):
        Need.objects.for_tenant(None)


def test_a_filter_that_only_mentions_the_tenant_is_not_a_scope(needs, tenant_a):
    with pytest.raises(UnscopedQueryError):
        list(Need.objects.exclude(tenant=tenant_a))
    with pytest.raises(UnscopedQueryError):
        list(Need.objects.filter(tenant__in=[tenant_a]))


def test_the_escape_hatch_reads_every_tenant(needs):
    assert set(Need.objects.dangerously_unscoped()) == {needs["a"], needs["b"]}


def test_django_machinery_still_works_through_the_base_manager(needs, tenant_a):
    need = needs["a"]
    need.refresh_from_db()
    NeedStatusChange.objects.create(need=need, from_status="requested", to_status="approved")
    assert need.status_changes.count() == 1  # a related manager from an owning row is scoped
    change = NeedStatusChange.objects.owned_by(tenant_a).get()
    assert change.need == need  # a forward relation
    assert get_object_or_404(Need.objects.for_tenant(tenant_a), slug="a-need") == need
    needs["b"].delete()  # the deletion collector
    assert Need.objects.dangerously_unscoped().count() == 1


def test_tenant_scope_scopes_every_default_manager_query(needs, tenant_a):
    with tenant_scope(tenant_a):
        assert current_tenant() == tenant_a
        assert list(Need.objects.all()) == [needs["a"]]
        assert Need.objects.filter(pk=needs["b"].pk).first() is None
        # The escape hatch from the manager leaves the context scope.
        assert Need.objects.dangerously_unscoped().count() == 2
    assert current_tenant() is None
    with pytest.raises(UnscopedQueryError):
        list(Need.objects.all())


def test_an_explicit_scope_replaces_the_context_default(needs, tenant_a, tenant_b, news_topics):
    with tenant_scope(tenant_a):
        assert list(Need.objects.owned_by(tenant_b)) == [needs["b"]]
        assert list(Need.objects.filter(tenant=tenant_b)) == []  # a filter narrows the default

    # Work for a platform-owned (shared) row sees shared rows by default, and a tenant's rows
    # only when it names the tenant (a shared model's alias bringing a tenant's need live).
    @acts_for_tenant(LabelSet, "label_set_id")
    def platform_work(*, label_set_id):
        return list(Need.objects.all()), list(Need.objects.owned_by(tenant_a))

    assert news_topics.tenant_id is None
    assert platform_work(label_set_id=news_topics.pk) == ([], [needs["a"]])


def test_admin_block_reads_every_tenant(needs):
    with dangerously_unscoped_block():
        assert Need.objects.count() == 2


def test_a_task_acting_for_one_tenant_loads_its_rows_through_the_scope(needs):
    @acts_for_tenant(Need, "need_id")
    def task(need_id, *, other_id):
        own = Need.objects.filter(pk=need_id).first()
        other = Need.objects.filter(pk=other_id).first()
        return own, other

    # Positional or keyword, the owner of the named row sets the scope.
    assert task(needs["a"].pk, other_id=needs["b"].pk) == (needs["a"], None)
    assert task(need_id=needs["b"].pk, other_id=needs["a"].pk) == (needs["b"], None)
    # The row is gone: the body sees nothing rather than everything.
    assert task(need_id=10**9, other_id=needs["a"].pk) == (None, None)


def test_selectors_take_tenant_as_a_required_argument():
    with pytest.raises(TypeError):
        monitoring_selectors.open_alerts()
    with pytest.raises(TypeError):
        monitoring_selectors.needs_overview()
    with pytest.raises(TypeError):
        model_card.card_data(None)


@pytest.mark.parametrize("method", ["get_queryset", "filter_queryset", "get_object"])
def test_api_base_view_cannot_drop_the_scope(method):
    with pytest.raises(TypeError, match=f"overrides {method}"):
        type(
            "Sneaky",
            (TenantScopedGenericAPIView,),
            {method: lambda self, *args: None, "__module__": __name__},
        )


def test_a_filter_hook_that_builds_its_own_queryset_is_scoped_again(needs, tenant_a, rf):
    class NeedList(TenantScopedGenericAPIView):
        def scoped_queryset(self):
            return Need.objects.all()

        def filter_scoped_queryset(self, queryset):
            return Need.objects.dangerously_unscoped()  # throws the scoped queryset away

    view = NeedList()
    view.tenant = tenant_a
    view.request = rf.get("/")
    assert list(view.filter_queryset(view.get_queryset())) == [needs["a"]]


def test_a_get_object_hook_cannot_return_another_tenants_row(needs, tenant_a, rf):
    from django.http import Http404

    class NeedDetail(TenantScopedGenericAPIView):
        def scoped_queryset(self):
            return Need.objects.all()

        def get_scoped_object(self, queryset):
            return Need.objects.dangerously_unscoped().get(slug="b-need")

    view = NeedDetail()
    view.tenant = tenant_a
    view.request = rf.get("/")
    view.kwargs = {}
    with pytest.raises(Http404):
        view.get_object()
