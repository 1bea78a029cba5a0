"""API keys: only a hash is stored, the plain key is shown once, revoked/expired keys get 401."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from tenants import keys, services
from tenants.models import ApiKey
from tests.conftest import api_client_for_key


def _row_text(api_key: ApiKey) -> list[str]:
    """Every column of the raw database row, as text (not what the model chooses to show)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table} WHERE id = %s", [api_key.pk])
        return [str(value) for value in cursor.fetchone()]


def test_plain_key_is_never_stored(tenant_a, alice):
    api_key, plain = services.api_key_create(
        tenant=tenant_a, name="svc", scopes=["tag", "read"], created_by=alice
    )
    secret = plain.split("_", 2)[2]
    columns = _row_text(api_key)
    assert not any(plain in value or secret in value for value in columns)
    assert api_key.hashed_key == keys.hash_key(plain) != plain
    for field in ApiKey._meta.concrete_fields:
        value = str(getattr(api_key, field.attname))
        assert secret not in value, field.name


def test_key_created_over_the_api_is_returned_once(api, alice, tenant_a):
    api.force_authenticate(alice)
    response = api.post("/api/v1/keys/", {"name": "svc", "scopes": ["tag"]}, format="json")
    assert response.status_code == 201
    plain = response.json()["key"]
    assert "hashed_key" not in response.json()
    api_key = ApiKey.objects.dangerously_unscoped().get(prefix=response.json()["prefix"])
    assert plain not in " ".join(_row_text(api_key))
    listing = api.get("/api/v1/keys/").content.decode()
    detail = api.get(f"/api/v1/keys/{api_key.prefix}/").content.decode()
    for page in (listing, detail):
        assert plain not in page and api_key.hashed_key not in page
    fresh = api_client_for_key(type("K", (), {"plain_key": plain}))
    assert fresh.get("/api/v1/needs/").status_code == 403  # authenticated, lacks `read`


def test_key_authenticates_and_records_last_use(api_a, key_a):
    assert key_a.last_used_at is None
    assert api_a.get("/api/v1/needs/").status_code == 200
    key_a.refresh_from_db()
    assert key_a.last_used_at is not None


def test_revoked_key_gets_401(api_a, key_a, alice, api):
    api.force_authenticate(alice)
    assert api.post(f"/api/v1/keys/{key_a.prefix}/revoke/").status_code == 200
    response = api_a.get("/api/v1/needs/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_expired_key_gets_401(api_a, key_a):
    ApiKey.objects.dangerously_unscoped().filter(pk=key_a.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert api_a.get("/api/v1/needs/").status_code == 401


def test_wrong_secret_with_a_real_prefix_gets_401(api, key_a):
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key tp_{key_a.prefix}_not-the-secret")
    assert api.get("/api/v1/needs/").status_code == 401


def test_revocation_is_idempotent_and_keeps_the_first_time(key_a):
    first = services.api_key_revoke(api_key=key_a).revoked_at
    assert services.api_key_revoke(api_key=key_a).revoked_at == first


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"name": "", "scopes": ["tag"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "scopes": ["tag"], "expires_at": timezone.now()}, "expires_at"),
    ],
)
def test_bad_key_requests_write_nothing(tenant_a, fields, bad):
    with pytest.raises(ValidationError) as exc:
        services.api_key_create(tenant=tenant_a, **fields)
    assert bad in exc.value.message_dict
    assert not ApiKey.objects.dangerously_unscoped().exists()


def test_duplicate_key_name_is_a_400(api, alice, key_a):
    api.force_authenticate(alice)
    response = api.post("/api/v1/keys/", {"name": key_a.name, "scopes": ["tag"]}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]


def test_an_api_key_cannot_create_keys(api_a):
    response = api_a.post("/api/v1/keys/", {"name": "escalate", "scopes": ["tag"]}, format="json")
    assert response.status_code == 403
    assert not ApiKey.objects.dangerously_unscoped().filter(name="escalate").exists()


def test_create_api_key_command_prints_the_key_once(tenant_a, capsys):
    from django.core.management import call_command

    call_command("create_api_key", "alpha", "cli", "--scopes", "tag,read")
    out = capsys.readouterr().out
    api_key = ApiKey.objects.dangerously_unscoped().get(name="cli")
    plain = next(word for word in out.split() if word.startswith("tp_"))
    assert keys.matches(plain, api_key.hashed_key)
    assert api_key.scopes == ["tag", "read"]
