"""The admin in Chinese for a staff member who chose it, on every page of every platform model:
model and field names, help texts, filters, actions and the platform's own admin pages.

The browser walk (tests/browser/test_chinese_browser.py) looks at a few pages with their data
as a person sees them; this test renders every changelist and add form without a browser.
"""

from __future__ import annotations

import contextlib
import html
import re

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils import translation

from tenants.models import Tenant, UserProfile
from tests.browser.test_chinese_browser import ADMIN_TECHNICAL, TECHNICAL, _english_left
from tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

#: Apps whose admin pages are the third party's (their catalogues, their words); the platform's
#: catalogue only names their models on the index.
THIRD_PARTY = {"auth", "axes", "django_celery_beat", "django_celery_results"}


def _visible_text(page: str) -> str:
    page = re.sub(r"(?s)<(script|style|code|pre|textarea)\b[^>]*>.*?</\1>", " ", page)
    return html.unescape(re.sub(r"(?s)<[^>]+>", " ", page))


@pytest.fixture
def staff_zh(client):
    staff = UserFactory(username="staffzh", is_staff=True, is_superuser=True)
    UserProfile.objects.create(user=staff, language="zh-hans")
    client.force_login(staff)
    return staff


def test_every_platform_admin_page_is_in_chinese(client, staff_zh):
    TenantFactory(slug="alpha", name="Alpha News")
    # User content (the tenant's name and contact e-mail) and a stored value shown read-only
    # on the snapshot form (its split strategy's code).
    allowed = TECHNICAL | ADMIN_TECHNICAL | {"staffzh", "alpha", "news", "example", "com", "team"}
    allowed |= {"stratified"}
    urls = ["/admin/"]
    for model in admin.site._registry:
        opts = model._meta
        if opts.app_label in THIRD_PARTY:
            continue
        for view in ("changelist", "add"):
            with contextlib.suppress(NoReverseMatch):
                urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}"))
    urls.append(reverse("admin:records_projectrecord_overview"))
    leftovers, statuses = {}, {}
    for url in urls:
        response = client.get(url)
        if response.status_code == 403:  # add forms of read-only models
            continue
        if response.status_code != 200:
            statuses[url] = response.status_code
            continue
        assert response.headers["Content-Language"] == "zh-hans"
        english = _english_left(_visible_text(response.content.decode()), allowed)
        if english:
            leftovers[url] = english
    assert statuses == {}
    assert leftovers == {}, leftovers
    assert len(urls) > 60  # every platform model, not a handful


def test_model_and_field_names_follow_the_active_language():
    field = Tenant._meta.get_field("time_zone")
    with translation.override("zh-hans"):
        assert str(Tenant._meta.verbose_name_plural) == "租户"
        assert str(field.verbose_name) == "时区"
        assert str(Tenant._meta.get_field("language").help_text).startswith("用于")
    with translation.override("en"):
        assert str(Tenant._meta.verbose_name_plural) == "tenants"
        assert str(field.verbose_name) == "time zone"


def test_an_admin_action_message_is_in_the_staff_members_language(client, staff_zh):
    from tests.factories import ApiKeyFactory

    tenant = TenantFactory(slug="alpha", name="Alpha News")
    key = ApiKeyFactory(tenant=tenant)
    response = client.post(
        "/admin/tenants/apikey/",
        {"action": "revoke_keys", "_selected_action": [key.pk]},
        follow=True,
    )
    text = _visible_text(response.content.decode())
    assert "已吊销" in text or "吊销" in text, text[:2000]
    assert "Revoked" not in text
