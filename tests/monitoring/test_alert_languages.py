"""Alert notices are written by workers, outside any request: the e-mail follows its recipient's
portal language (else the tenant's), the webhook's human `summary` follows the tenant's language,
and every machine field of the webhook stays the same whatever the language."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core import mail
from django.utils import translation

from monitoring import services
from monitoring.models import Alert, AlertStatus, Period
from taxonomy.models import Label
from tenants.models import Role, UserProfile
from tenants.services import recipient_language, tenant_language_set
from tests.factories import MembershipFactory, UserFactory
from tests.monitoring.conftest import DAY
from tests.monitoring.factories import log_predictions
from workers.tasks.monitoring import deliver_alert

pytestmark = pytest.mark.django_db

CJK = re.compile(r"[\u4e00-\u9fff]")
NORMAL = {"t.a": 200, "t.b": 160, "t.c": 40}
T_C_GONE = {"t.a": 220, "t.b": 180}


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        _Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def opened_alert(topics):
    """An open label-share alert on t.c with its "opened" notice still due."""
    need, version = topics
    Label.objects.filter(key="t.c").update(name_en="Culture", name_zh="文化")
    days = {DAY - timedelta(days=i): NORMAL for i in range(8, 0, -1)} | {DAY: T_C_GONE}
    for day, counts in days.items():
        log_predictions(need=need, version=version, day=day, counts=counts)
        services.monitoring_run(period=Period.DAY, start=day)
    alert = Alert.objects.dangerously_unscoped().get(need=need, status=AlertStatus.OPEN)
    assert alert.notification_pending == "opened"
    return alert


def _deliver(alert, *, email: str = "", webhook: str = ""):
    tenant = alert.tenant
    tenant.refresh_from_db()
    tenant.alert_email, tenant.alert_webhook_url = email, webhook
    tenant.save()
    mail.outbox.clear()
    Alert.objects.dangerously_unscoped().filter(pk=alert.pk).update(notification_pending="opened")
    # The worker's task, as Celery runs it (eager in tests): no request, no active language.
    with translation.override(None):
        return deliver_alert.delay(alert.pk).get()


def test_alert_email_is_in_the_recipients_profile_language(opened_alert, tenant_a):
    mei = UserFactory(username="mei", email="Mei@alpha.example.com")
    MembershipFactory(user=mei, tenant=tenant_a, role=Role.VIEWER)
    UserProfile.objects.create(user=mei, language="zh-hans")
    _deliver(opened_alert, email="mei@alpha.example.com")
    [message] = mail.outbox
    assert message.subject.startswith("[") and CJK.search(message.subject), message.subject
    assert "opened" not in message.subject and "文化" in message.body, message.body
    # The tenant stays English for everyone else: an address no user has gets English.
    _deliver(opened_alert, email="oncall@alpha.example.com")
    [message] = mail.outbox
    assert message.subject == "[Warning] Topics: A label's share changed (opened)"
    assert "Culture (t.c) fell from 10.0 %" in message.body


def test_alert_email_to_a_non_user_follows_the_tenants_language(opened_alert, tenant_a):
    tenant_language_set(tenant=tenant_a, language="zh-hans")
    _deliver(opened_alert, email="oncall@alpha.example.com")
    [message] = mail.outbox
    assert CJK.search(message.subject) and "文化" in message.body
    # A user who chose English gets English, whatever the tenant's language.
    ann = UserFactory(username="ann", email="ann@alpha.example.com")
    MembershipFactory(user=ann, tenant=tenant_a, role=Role.VIEWER)
    UserProfile.objects.create(user=ann, language="en")
    _deliver(opened_alert, email="ann@alpha.example.com")
    assert mail.outbox[0].subject == "[Warning] Topics: A label's share changed (opened)"


def test_a_members_language_wins_over_another_tenants_user_with_the_same_address(tenant_a):
    outsider = UserFactory(username="other", email="desk@example.com")
    UserProfile.objects.create(user=outsider, language="zh-hans")
    assert recipient_language(tenant=tenant_a, email="desk@example.com") == "zh-hans"
    member = UserFactory(username="member", email="DESK@example.com")
    MembershipFactory(user=member, tenant=tenant_a, role=Role.VIEWER)
    UserProfile.objects.create(user=member, language="")  # follows the browser: no choice
    # A member with that address exists: their (absent) choice counts, then the tenant's.
    assert recipient_language(tenant=tenant_a, email="desk@example.com") == "en"


def test_webhook_summary_follows_the_tenants_language_and_nothing_else_changes(
    opened_alert, tenant_a
):
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    _Hook.received = []
    try:
        _deliver(opened_alert, webhook=url)
        tenant_language_set(tenant=tenant_a, language="zh-hans")
        _deliver(opened_alert, webhook=url)
    finally:
        server.shutdown()
    english, chinese = _Hook.received
    assert "Culture (t.c) fell from 10.0 %" in english["summary"]
    assert CJK.search(chinese["summary"]) and "文化 (t.c)" in chinese["summary"]
    english.pop("summary"), chinese.pop("summary")
    assert chinese == english  # keys, codes, label_name, dates, evidence: byte for byte


def test_tenant_admin_sets_the_language_on_the_webhook_page(client, alice, bob, tenant_a):
    client.force_login(alice)
    page = client.get("/serving/webhook/").content.decode()
    assert 'id="language-form"' in page and 'value="zh-hans"' in page
    response = client.post("/serving/webhook/", {"action": "language", "language": "zh-hans"})
    assert response.status_code == 302
    tenant_a.refresh_from_db()
    assert tenant_a.language == "zh-hans"
    bad = client.post("/serving/webhook/", {"action": "language", "language": "fr"})
    assert bad.status_code == 400
    tenant_a.refresh_from_db()
    assert tenant_a.language == "zh-hans"
    client.force_login(bob)  # a viewer: not the tenant's owner
    assert client.post(
        "/serving/webhook/", {"action": "language", "language": "en"}
    ).status_code in (302, 403)
    tenant_a.refresh_from_db()
    assert tenant_a.language == "zh-hans"


def test_a_new_tenant_takes_the_default_language_from_settings(settings, db):
    from tenants.services import tenant_create

    settings.TENANT_DEFAULT_LANGUAGE = "zh-hans"
    assert tenant_create(slug="gamma", name="Gamma").language == "zh-hans"
