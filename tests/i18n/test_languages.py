"""The portal speaks English and Chinese: the browser's Accept-Language by default, the user's
choice (kept on their profile) once made. The API keeps its codes and data; only the human
`message` of an error follows the request's Accept-Language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taxonomy.models import Label
from tenants.models import Need, UserProfile

pytestmark = pytest.mark.django_db

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.5"}


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def test_portal_follows_the_browsers_accept_language(alice_client):
    english = alice_client.get("/").content.decode()
    chinese = alice_client.get("/", **ZH).content.decode()
    assert '<html lang="en"' in english and ">Monitoring</a>" in english
    assert '<html lang="zh-hans"' in chinese and ">监控</a>" in chinese
    assert ">Monitoring</a>" not in chinese


def test_login_page_is_chinese_for_a_chinese_browser(client):
    page = client.get("/login/", **ZH).content.decode()
    assert "<title>登录 · 打标平台</title>" in page


def test_language_choice_is_kept_on_the_profile_and_beats_the_browser(alice_client, alice):
    response = alice_client.post("/language/", {"language": "zh-hans", "next": "/tenant/needs/"})
    assert response.status_code == 302 and response["Location"] == "/tenant/needs/"
    assert UserProfile.objects.get(user=alice).language == "zh-hans"
    alice_client.cookies.pop("django_language", None)  # the profile, not the cookie, remembers it
    page = alice_client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert ">监控</a>" in page

    alice_client.post("/language/", {"language": ""})  # back to following the browser
    assert UserProfile.objects.get(user=alice).language == ""
    alice_client.cookies.pop("django_language", None)
    assert ">Monitoring</a>" in alice_client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def test_an_unknown_language_or_an_offsite_next_is_ignored(alice_client, alice):
    response = alice_client.post("/language/", {"language": "xx", "next": "https://evil.example/"})
    assert response["Location"] == "/"
    assert UserProfile.objects.get(user=alice).language == ""


def test_anonymous_choice_is_a_cookie(client):
    response = client.post("/language/", {"language": "zh-hans", "next": "/login/"})
    assert response.cookies["django_language"].value == "zh-hans"
    assert "登录" in client.get("/login/").content.decode()


def test_api_error_message_follows_accept_language_and_the_code_stays(api_a):
    english = api_a.get("/api/v1/needs/?limit=0")
    chinese = api_a.get("/api/v1/needs/?limit=0", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert english.status_code == chinese.status_code == 400
    assert english.json()["error"]["code"] == chinese.json()["error"]["code"]
    assert english.json()["error"]["message"] != chinese.json()["error"]["message"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese.json()["error"]["message"])


def test_api_data_does_not_change_with_the_language(api_a, tenant_a):
    from tests.factories import NeedFactory

    NeedFactory(tenant=tenant_a, slug="topics", name="Topics")
    english = api_a.get("/api/v1/needs/")
    chinese = api_a.get("/api/v1/needs/", HTTP_ACCEPT_LANGUAGE="zh-Hans")
    assert english.status_code == 200
    assert english.json() == chinese.json()


def test_the_api_ignores_a_session_users_profile_language(client, alice):
    UserProfile.objects.create(user=alice, language="zh-hans")
    client.force_login(alice)
    body = client.get("/api/v1/needs/?limit=0", HTTP_ACCEPT_LANGUAGE="en").json()
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in body["error"]["message"])


def test_form_labels_and_validation_messages_are_translated(alice_client):
    page = alice_client.post("/tenant/needs/new/", {"name": ""}, **ZH).content.decode()
    assert "您需要的标签" in page  # a form label
    assert "Labels you need" not in page


def test_dates_are_shown_in_the_tenants_time_zone(alice_client, tenant_a):
    from tests.factories import NeedFactory

    need = NeedFactory(tenant=tenant_a, slug="late", name="Late")
    Need.objects.for_tenant(tenant_a).filter(pk=need.pk).update(
        created_at=datetime(2025, 3, 12, 20, 0, tzinfo=UTC)  # 04:00 on the 13th in Beijing
    )
    assert "2025-03-12" in alice_client.get("/tenant/needs/late/").content.decode()
    tenant_a.time_zone = "Asia/Shanghai"
    tenant_a.save(update_fields=["time_zone"])
    page = alice_client.get("/tenant/needs/late/").content.decode()
    assert "2025-03-13" in page and "2025-03-12" not in page


def test_label_tag_shows_the_tenants_name_else_the_readers_language(rf):
    from django.template import Context, Template
    from django.utils import translation

    Label.objects.create(key="news.sport", name_en="Sport", name_zh="体育")
    template = Template("{% load labels %}{% label 'news.sport' %}|{% label 'news.sport' 'Ball' %}")
    with translation.override("zh-hans"):
        zh = template.render(Context({"request": rf.get("/")}))
    with translation.override("en"):
        en = template.render(Context({"request": rf.get("/")}))
    assert zh.startswith('<span class="label-name" title="news.sport">体育</span>')
    assert en.startswith('<span class="label-name" title="news.sport">Sport</span>')
    assert zh.endswith('title="news.sport">Ball</span>')  # the tenant's own name wins
