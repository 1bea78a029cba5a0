"""Shared fixtures: the alice/bob/charlie tenancy fixture, API clients, backends and browsers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from tenants.authentication import clear_key_cache
from tenants.models import Role
from tests.factories import ApiKeyFactory, MembershipFactory, TenantFactory, UserFactory
from tests.taxonomy.factories import build_news_tree, shared_label_sets

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pytest_configure(config):
    """`pytest` run directly (scripts/test.py sets TESTING=1 itself) gets the test settings too:
    what TESTING=1 changes in tagging_platform.settings."""
    if django_settings.TESTING:
        return
    os.environ["TESTING"] = "1"  # the processes the tests start read it from the environment
    django_settings.TESTING = True
    django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_settings.STORAGES = {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def pytest_report_header(config):
    db = django_settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    redis = django_settings.REDIS_URL or "none"
    return f"backends: database={db}, redis={redis}, broker={django_settings.CELERY_BROKER_URL.split('://')[0]}"


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Each test gets its own artifact store and an eager Celery (unless it starts a real worker)."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.ARTIFACT_ROOT.mkdir()
    settings.ARTIFACT_CACHE_DIR = tmp_path / "artifact-cache"
    from tagging_platform.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    clear_key_cache()
    _forget_held_log_lines()
    yield
    clear_key_cache()
    _forget_held_log_lines()
    # A request's language stays active in its thread after the response (Django's
    # LocaleMiddleware activates, never deactivates): never let it reach the next test.
    from django.utils import translation

    translation.deactivate()
    from django.core.cache import cache

    cache.clear()


def _forget_held_log_lines() -> None:
    """Prediction log lines a test's process still holds (Redis was down, or a write-behind was
    pending) belong to that test's rows: never let a later test's flush or timer write them."""
    from serving import predlog, redis_pool

    with redis_pool.writer._lock:
        redis_pool.writer._ops.clear()
    with predlog._local_lock:
        predlog._local.clear()
        timer, predlog._local_timer = predlog._local_timer, None
    if timer is not None:
        timer.cancel()


@pytest.fixture
def requires_postgres():
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("PostgreSQL is required (REQUIRE_SERVICES=1)")
        pytest.skip("needs PostgreSQL")


@pytest.fixture
def requires_redis():
    if not django_settings.REDIS_URL:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("Redis is required (REQUIRE_SERVICES=1)")
        pytest.skip("needs Redis")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A real S3-protocol server process (moto in server mode, standing in for AWS S3 or MinIO)
    on a free port; yields its endpoint URL. Nothing is patched in this process."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)  # noqa: S310
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"moto server did not start on {endpoint}")
            time.sleep(0.2)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def s3_artifacts(moto_server, settings, monkeypatch):
    """Switch the artifact store to a fresh bucket on the moto server (ARTIFACT_STORAGE=s3).
    Returns a boto3 bucket handle for inspecting or tampering with the objects."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    bucket = boto3.resource("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(
        Bucket=name
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": name,
                "endpoint_url": moto_server,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": False,
            },
        },
    }
    return bucket


# --- The tenancy fixture: alice owns tenant A, bob is a plain member of A, charlie is elsewhere --
@pytest.fixture
def tenant_a(db):
    return TenantFactory(slug="alpha", name="Alpha News")


@pytest.fixture
def tenant_b(db):
    return TenantFactory(slug="bravo", name="Bravo Finance")


@pytest.fixture
def alice(tenant_a):
    user = UserFactory(username="alice")
    MembershipFactory(user=user, tenant=tenant_a, role=Role.ADMIN)
    return user


@pytest.fixture
def bob(tenant_a):
    user = UserFactory(username="bob")
    MembershipFactory(user=user, tenant=tenant_a, role=Role.VIEWER)
    return user


@pytest.fixture
def charlie(tenant_b):
    user = UserFactory(username="charlie")
    MembershipFactory(user=user, tenant=tenant_b, role=Role.ADMIN)
    return user


@pytest.fixture
def key_a(tenant_a):
    return ApiKeyFactory(tenant=tenant_a, name="alpha-service")


@pytest.fixture
def key_b(tenant_b):
    return ApiKeyFactory(tenant=tenant_b, name="bravo-service")


@pytest.fixture
def api():
    return APIClient()


def api_client_for_key(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key.plain_key}")
    return client


@pytest.fixture
def api_a(key_a):
    return api_client_for_key(key_a)


@pytest.fixture
def api_b(key_b):
    return api_client_for_key(key_b)


# --- The demo-like news taxonomy (taxonomy and tenants tests) ---------------------------------
@pytest.fixture
def tree(db):
    return build_news_tree()


@pytest.fixture
def label_sets(tree):
    return shared_label_sets()


@pytest.fixture
def news_topics(label_sets):
    return label_sets[0]


@pytest.fixture
def staff_user(db):
    return UserFactory(username="staff", is_staff=True, is_superuser=True)


# --- Browser tests --------------------------------------------------------------------------
SCREENSHOT_DIR = Path(
    os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parent.parent / "var" / "screenshots")
)


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    # Playwright runs an event loop in this thread; Django's ORM calls from the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def screenshot():
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    def _take(page, name: str) -> Path:
        path = SCREENSHOT_DIR / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _take


def login(page, live_server, username: str, password: str = "password") -> None:
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
