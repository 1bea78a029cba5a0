import pytest
from django.core.exceptions import ImproperlyConfigured

from tagging_platform.env import envbool, envfloat, envint, envlist


def test_envbool_reads_common_spellings(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert envbool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "0")
    assert envbool("FLAG", True) is False
    monkeypatch.delenv("FLAG")
    assert envbool("FLAG", True) is True


@pytest.mark.parametrize(
    ("reader", "value"),
    [
        (lambda: envbool("X", False), "maybe"),
        (lambda: envint("X", 1), "ten"),
        (lambda: envfloat("X", 1.0), "abc"),
    ],
)
def test_bad_values_fail_loudly(monkeypatch, reader, value):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match="X="):
        reader()


def test_envint_enforces_minimum(monkeypatch):
    monkeypatch.setenv("WORKERS", "0")
    with pytest.raises(ImproperlyConfigured, match="minimum"):
        envint("WORKERS", 2, minimum=1)


def test_envlist_splits_and_trims(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example.com, b.example.com ,,")
    assert envlist("HOSTS", []) == ["a.example.com", "b.example.com"]


def _run_settings(env: dict) -> "subprocess.CompletedProcess[str]":  # noqa: F821
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "TESTING", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _run_settings({"DEBUG": "0", "ALLOWED_HOSTS": "tags.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_the_repositorys_dev_secret_key():
    from django.conf import settings

    env = {"DEBUG": "0", "ALLOWED_HOSTS": "tags.example.com", "SECRET_KEY": settings.DEV_SECRET_KEY}
    result = _run_settings(env)  # `manage.py check --deploy`
    assert result.returncode != 0
    assert "public development key" in result.stderr


def test_production_settings_pass_check_deploy():
    result = _run_settings(
        {
            "DEBUG": "0",
            "SECRET_KEY": "x" * 30 + "Y7#kq!2Lm@9pZ&4vB$8nW^3rT*6sD%1f",
            "ALLOWED_HOSTS": "tags.example.com",
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_testing_mode_comes_from_the_environment_not_from_imported_modules():
    """A process that merely imports pytest (a management command run by a test helper, a
    script) gets the production password hasher unless TESTING=1 is set."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "TESTING"}
    env.update(DJANGO_SETTINGS_MODULE="tagging_platform.settings", PYTHONPATH="platform:.")
    probe = (
        "import pytest, django; from django.conf import settings; django.setup(); "
        "print(settings.TESTING, settings.PASSWORD_HASHERS[0].rsplit('.', 1)[-1])"
    )
    plain = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, timeout=60
    )
    assert plain.stdout.split() == ["False", "PBKDF2PasswordHasher"], plain.stderr
    testing = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={**env, "TESTING": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert testing.stdout.split() == ["True", "MD5PasswordHasher"], testing.stderr


def test_the_suite_runs_with_the_test_settings(settings):
    # Also when `pytest` runs directly, without scripts/test.py (tests/conftest.py sets them).
    assert settings.TESTING
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
