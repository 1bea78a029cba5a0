from tenants.models import Role
from tests.factories import MembershipFactory, TenantFactory


def test_anonymous_user_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_login_then_home_shows_current_tenant(client, alice, tenant_a):
    response = client.post("/login/", {"username": "alice", "password": "password"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert "Alpha News" in home.content.decode()


def test_wrong_password_is_refused(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_ends_the_session(client, alice):
    client.force_login(alice)
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_tenant_switcher_changes_the_current_tenant(client, alice, tenant_b):
    MembershipFactory(user=alice, tenant=tenant_b, role=Role.VIEWER)
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert 'id="tenant-switcher"' in page
    response = client.post("/switch-tenant/", {"tenant": "bravo", "next": "/"})
    assert response.status_code == 302
    assert "working as <strong>Bravo Finance</strong>" in client.get("/").content.decode()


def test_switching_to_a_tenant_you_do_not_belong_to_is_refused(client, alice, tenant_b):
    client.force_login(alice)
    TenantFactory(slug="zulu", name="Zulu")
    client.post("/switch-tenant/", {"tenant": "zulu", "next": "/"})
    assert "working as <strong>Alpha News</strong>" in client.get("/").content.decode()


def test_switch_tenant_refuses_offsite_redirects(client, alice):
    client.force_login(alice)
    response = client.post(
        "/switch-tenant/", {"tenant": "alpha", "next": "https://evil.example.com/"}
    )
    assert response.url == "/"


def test_request_id_is_echoed_and_generated(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    first, second = (client.get("/healthz")["X-Request-ID"] for _ in range(2))
    assert len(first) == 32 and first != second


def test_api_docs_and_schema_are_served_without_a_cdn(client, alice):
    client.force_login(alice)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    docs = client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr" not in docs and "unpkg.com" not in docs


def test_generated_request_ids_differ_across_forked_workers():
    import os

    from tagging_platform import middleware

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn worker forked from a preloaded master
        os.write(write, middleware._new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 64).decode()
    parent_id = middleware._new_request_id()
    assert len(child_id) == len(parent_id) == 32
    assert child_id[:16] != parent_id[:16]
