"""Tenant admin: need approval actions, keys created with the plain key shown once."""

import pytest

from tenants import keys
from tenants.models import ApiKey, Need, NeedStatus
from tests.factories import NeedFactory


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def test_approve_action(staff_client, tenant_a, news_topics, staff_user):
    need = NeedFactory(tenant=tenant_a, label_set=news_topics)
    staff_client.post(
        "/admin/tenants/need/", {"action": "approve_needs", "_selected_action": [need.pk]}
    )
    need.refresh_from_db()
    assert need.status == NeedStatus.APPROVED and need.approved_by == staff_user


def test_invalid_transition_is_reported_not_applied(staff_client, tenant_a, news_topics):
    need = NeedFactory(tenant=tenant_a, label_set=news_topics)
    response = staff_client.post(
        "/admin/tenants/need/",
        {"action": "go_live_needs", "_selected_action": [need.pk]},
        follow=True,
    )
    assert "before going live" in response.content.decode()
    assert Need.objects.dangerously_unscoped().get(pk=need.pk).status == NeedStatus.REQUESTED


def test_key_add_shows_the_plain_key_once_and_never_the_hash(staff_client, tenant_a):
    response = staff_client.post(
        "/admin/tenants/apikey/add/",
        {
            "tenant": tenant_a.pk,
            "name": "from-admin",
            "scopes": ["tag", "read"],
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200, response.content.decode()[:2000]
    page = response.content.decode()
    api_key = ApiKey.objects.dangerously_unscoped().get(name="from-admin")
    start = page.index('id="plain-key"')
    plain = page[page.index(">", start) + 1 : page.index("</pre>", start)].strip()
    assert keys.matches(plain, api_key.hashed_key)
    change = staff_client.get(f"/admin/tenants/apikey/{api_key.pk}/change/").content.decode()
    changelist = staff_client.get("/admin/tenants/apikey/").content.decode()
    for later in (change, changelist):
        assert plain not in later and api_key.hashed_key not in later


def test_revoke_action(staff_client, key_a):
    staff_client.post(
        "/admin/tenants/apikey/", {"action": "revoke_keys", "_selected_action": [key_a.pk]}
    )
    key_a.refresh_from_db()
    assert key_a.revoked_at is not None


@pytest.mark.parametrize("path", ["tenant", "membership", "apikey", "need"])
def test_changelists_render(staff_client, path, key_a, alice, news_topics, tenant_a):
    NeedFactory(tenant=tenant_a, label_set=news_topics)
    assert staff_client.get(f"/admin/tenants/{path}/").status_code == 200


def test_need_labels_are_edited_inline_and_belong_to_the_needs_tenant(
    staff_client, tenant_a, news_topics
):
    from taxonomy.models import Label
    from tenants.models import NeedLabel

    need = NeedFactory(tenant=tenant_a, label_set=news_topics, label_mapping={"S": "news.sport"})
    row = need.label_rows()[0]
    page = staff_client.get(f"/admin/tenants/need/{need.pk}/change/").content.decode()
    assert 'name="labels-0-name"' in page and 'name="tenant"' not in page  # tenant is fixed
    tech = Label.objects.get(key="news.tech")
    response = staff_client.post(
        f"/admin/tenants/need/{need.pk}/change/",
        {
            "slug": need.slug,
            "name": need.name,
            "goal": need.goal,
            "label_set": news_topics.pk,
            "threshold": "0.0",
            "top_k": "1",
            "delivery": '["sync"]',
            "model_alias": "production",
            "execution": "inline",
            "labels-TOTAL_FORMS": "2",
            "labels-INITIAL_FORMS": "1",
            "labels-0-id": row.pk,
            "labels-0-need": need.pk,
            "labels-0-position": "0",
            "labels-0-label": row.label_id,
            "labels-0-name": "Sport",
            "labels-0-threshold": "",
            "labels-1-need": need.pk,
            "labels-1-position": "1",
            "labels-1-label": tech.pk,
            "labels-1-name": "IT",
            "labels-1-threshold": "0.4",
            "status_changes-TOTAL_FORMS": "0",
            "status_changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    need.refresh_from_db()
    assert need.label_mapping == {"Sport": "news.sport", "IT": "news.tech"}
    assert need.per_label_thresholds == {"news.tech": 0.4}
    assert set(NeedLabel.objects.dangerously_unscoped().values_list("tenant_id", flat=True)) == {
        tenant_a.pk
    }
