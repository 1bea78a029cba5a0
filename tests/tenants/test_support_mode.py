"""Platform staff get a read-only, audited way into any tenant's portal (support mode)."""

from __future__ import annotations

import pytest
from django.apps import apps

from tenants.models import NeedStatus, SupportAccess
from tests.factories import NeedFactory, UserFactory


@pytest.fixture
def ops(db):
    return UserFactory(username="ops", is_staff=True)  # staff, no membership anywhere


@pytest.fixture
def need_a(tenant_a):
    return NeedFactory(tenant=tenant_a, slug="topics", name="Topics", status=NeedStatus.LIVE)


def test_staff_home_offers_support_view_instead_of_not_a_member(client, ops, tenant_a, tenant_b):
    client.force_login(ops)
    page = client.get("/").content.decode()
    assert "not a member of any tenant" not in page
    assert "read-only for support" in page and 'id="support-banner"' in page
    assert "support, read-only" in page  # both tenants offered in the switcher
    assert SupportAccess.objects.dangerously_unscoped().filter(user=ops, path="/").count() == 1


def test_staff_read_a_tenants_pages_and_each_read_is_audited(client, ops, need_a, tenant_a):
    client.force_login(ops)
    client.post("/switch-tenant/", {"tenant": tenant_a.slug, "next": "/"})
    response = client.get("/tenant/needs/")
    assert response.status_code == 200 and b"Topics" in response.content
    assert client.get("/tenant/needs/topics/").status_code == 200
    paths = list(
        SupportAccess.objects.dangerously_unscoped()
        .filter(user=ops, tenant=tenant_a)
        .values_list("method", "path")
    )
    assert ("GET", "/tenant/needs/") in paths and ("GET", "/tenant/needs/topics/") in paths


def test_support_view_refuses_every_write(client, ops, need_a, tenant_a):
    client.force_login(ops)
    response = client.post(f"/tenant/needs/topics/retire/?as_tenant={tenant_a.slug}")
    assert response.status_code == 403
    need_a.refresh_from_db()
    assert need_a.status == NeedStatus.LIVE


def test_as_tenant_picks_the_tenant_for_staff_but_not_for_outsiders(
    client, ops, charlie, need_a, tenant_a
):
    client.force_login(ops)
    assert client.get(f"/tenant/needs/?as_tenant={tenant_a.slug}").status_code == 200
    client.force_login(charlie)  # an admin of bravo only
    assert b"Topics" not in client.get(f"/tenant/needs/?as_tenant={tenant_a.slug}").content


def test_non_staff_without_membership_still_get_403(client, db, tenant_a):
    client.force_login(UserFactory(username="nobody"))
    assert client.get("/tenant/needs/").status_code == 403
    assert "not a member of any tenant" in client.get("/").content.decode()


def test_admin_card_link_opens_for_staff(client, ops, tenant_a):
    from tests.serving.factories import make_model

    shared = make_model()
    own = make_model(name="alpha/own-model")
    own.registered_model.tenant = tenant_a
    own.registered_model.save()
    ops.is_superuser = True
    ops.save()
    client.force_login(ops)
    changelist = client.get("/admin/registry/modelversion/").content.decode()
    for version in (shared, own):
        base = f"/models/{version.registered_model_id}/versions/{version.version}/"
        link = next(
            part.split('"')[0]
            for part in changelist.split('href="')
            if part.startswith(base)
            and not part.split('"')[0].endswith(".md")
            and ".md" not in part.split('"')[0]
        )
        assert client.get(link).status_code == 200, link
    assert f"as_tenant={tenant_a.slug}" in changelist


def test_admin_plural_names_are_english():
    bad = {
        f"{model._meta.app_label}.{model.__name__}": str(model._meta.verbose_name_plural)
        for model in apps.get_models()
        if str(model._meta.verbose_name_plural).endswith(("ss", "ys", "chs", "shs", "xs"))
        and not str(model._meta.verbose_name_plural).endswith(("ays", "eys", "oys"))
    }
    assert bad == {}
