import re
import pytest
from django.urls import reverse
from django.contrib import admin
from tenants.models import UserProfile
from tests.factories import UserFactory
from tests.browser.test_chinese_browser import TECHNICAL, _english_left

pytestmark = pytest.mark.django_db


def _text(html):
    html = re.sub(r"(?s)<(script|style|code|pre|textarea)[^>]*>.*?</\1>", " ", html)
    html = re.sub(r"(?s)<[^>]+>", " ", html)
    import html as h
    return h.unescape(html)


def test_explore(client):
    staff = UserFactory(username="staff", is_staff=True, is_superuser=True)
    UserProfile.objects.create(user=staff, language="zh-hans")
    client.force_login(staff)
    out = {}
    urls = ["/admin/"]
    for model, ma in admin.site._registry.items():
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        if ma.has_add_permission(type("R", (), {"user": staff, "method": "GET", "GET": {}, "POST": {}})()) :
            try:
                urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
            except Exception:
                pass
    for url in urls:
        r = client.get(url)
        if r.status_code != 200:
            out[url] = r.status_code
            continue
        words = _english_left(_text(r.content.decode()), TECHNICAL)
        if words:
            out[url] = words
    t = _text(client.get("/admin/").content.decode())
    for w in ["xxAdd", "Change", "Access", "Model", "link", "staff", "champion", "Task", "Group"]:
        for m in re.finditer(r"\b" + w + r"\b", t):
            print(w, "::", " ".join(t[max(0, m.start()-80): m.end()+60].split()))
            break
    for k, v in out.items():
        if "celery" not in k and "auth" not in k and "axes" not in k:
            print(k, v)
    assert False
