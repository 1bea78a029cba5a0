"""Every admin page a staff user can reach renders: no add page that crashes (issue 11)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse


@pytest.mark.django_db
def test_every_admin_changelist_and_add_page_renders_or_is_absent(client, staff_user):
    client.force_login(staff_user)
    broken = []
    for model, model_admin in admin.site._registry.items():
        info = model._meta.app_label, model._meta.model_name
        response = client.get(reverse("admin:{}_{}_changelist".format(*info)))
        if response.status_code != 200:
            broken.append(f"{model.__name__} changelist: {response.status_code}")
        request = RequestFactory().get("/admin/")
        request.user = staff_user
        if not model_admin.has_add_permission(request):
            continue
        response = client.get(reverse("admin:{}_{}_add".format(*info)))
        if response.status_code != 200:
            broken.append(f"{model.__name__} add: {response.status_code}")
    assert not broken, broken


@pytest.mark.django_db
def test_model_versions_have_no_add_page(client, staff_user):
    client.force_login(staff_user)
    changelist = client.get(reverse("admin:registry_modelversion_changelist"))
    assert changelist.status_code == 200
    assert reverse("admin:registry_modelversion_add") not in changelist.content.decode()
    assert client.get(reverse("admin:registry_modelversion_add")).status_code == 403
