"""Login throttling (django-axes) on the portal and the admin login."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 5
    return 5


@pytest.mark.parametrize(
    ("url", "staff"), [("/login/", False), ("/admin/login/?next=/admin/", True)]
)
def test_right_password_is_refused_after_too_many_wrong_ones(client, db, limit, url, staff):
    UserFactory(username="erin", password="right-pass", is_staff=staff)
    answers = [
        client.post(url, {"username": "erin", "password": "wrong"}).status_code
        for _ in range(limit)
    ]
    assert answers == [200] * (limit - 1) + [429]  # the form with its error, then the lockout
    locked = client.post(url, {"username": "erin", "password": "right-pass"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_few_wrong_passwords_then_the_right_one_still_logs_in(client, db, limit):
    UserFactory(username="erin", password="right-pass")
    for _ in range(limit - 1):
        client.post("/login/", {"username": "erin", "password": "wrong"})
    assert client.post("/login/", {"username": "erin", "password": "right-pass"}).status_code == 302
    assert "_auth_user_id" in client.session


def test_lockout_is_per_username_and_address(client, db, limit):
    UserFactory(username="erin", password="right-pass")
    UserFactory(username="finn", password="finn-pass")
    for _ in range(limit):
        client.post("/login/", {"username": "erin", "password": "wrong"})
    assert client.post("/login/", {"username": "finn", "password": "finn-pass"}).status_code == 302
    other = type(client)(REMOTE_ADDR="10.9.9.9")
    assert other.post("/login/", {"username": "erin", "password": "right-pass"}).status_code == 302
