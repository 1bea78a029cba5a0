"""Schemathesis over the whole OpenAPI schema, in-process through the WSGI app (issue 11).

Every operation gets positive and negative generated requests on seeded data, twice: with a real
API key holding every scope, and as a signed-in person who is platform staff and the tenant's
admin (with a CSRF token), so key-only and person-only operations both reach their code; path parameters are steered to the seeded objects part of the time so the
success paths are exercised too. Hard requirements: no 5xx, every status code documented, the
content type and the body conform to the schema. Bounded: a fixed number of examples per
operation, derandomised, no shrinking (the report shows the first failing request).
"""

from __future__ import annotations

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 20  # per operation and identity: about a minute per identity


class _Rollback(Exception):
    pass


@pytest.fixture
def keep_db_connection():
    """As Django's test client does: a request must not close the test's connection."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _seeded_path_parameters(path: str, seeded: dict) -> dict:
    """Path parameters naming a seeded object of this operation's resource."""
    by_prefix = {
        "/api/v1/needs/": {"slug": seeded["need"].slug, "need_slug": seeded["need"].slug},
        "/api/v1/label-sets/": {"slug": "news-topics"},
        "/api/v1/taxonomy/labels/": {"key": "news.sport"},
        "/api/v1/models/": {"id": seeded["version"].registered_model_id},
        "/api/v1/versions/": {"id": seeded["version"].pk},
        "/api/v1/training-runs/": {"id": seeded["run"].pk},
        "/api/v1/batch-jobs/": {"id": seeded["job"].pk},
        "/api/v1/dead-letters/": {"id": seeded["delivery"].pk},
        "/api/v1/keys/": {"prefix": seeded["key"].prefix},
        "/api/v1/tenants/": {"slug": seeded["tenant"].slug, "need_slug": seeded["need"].slug},
    }
    for prefix, values in by_prefix.items():
        if path.startswith(prefix):
            return values
    return {}


def _strategy(operation, seeded):
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    names = {p.name for p in operation.path_parameters}
    if names:
        steer = {
            k: v for k, v in _seeded_path_parameters(operation.path, seeded).items() if k in names
        }
        if steer:
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=steer))
    return st.one_of(strategies)


def _session(user) -> tuple[dict, dict]:
    """Headers and cookies of a signed-in session with a CSRF token."""
    from django.test import Client
    from django.utils.crypto import get_random_string

    client = Client()
    client.force_login(user)
    csrf = get_random_string(32)
    cookies = {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}
    return {"X-CSRFToken": csrf}, cookies


@pytest.mark.fuzz
@pytest.mark.django_db
@pytest.mark.parametrize("identity", ["api_key", "staff_session"])
def test_whole_schema_has_no_server_errors_and_conforms(seeded, keep_db_connection, identity):
    from tagging_platform.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    cookies: dict = {}
    if identity == "api_key":
        headers = {"Authorization": f"Api-Key {seeded['key'].plain_key}"}
    else:
        seeded["user"].is_staff = True
        seeded["user"].save()
        headers, cookies = _session(seeded["user"])
    failures = []
    operations = 0
    succeeded: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=_strategy(operation, seeded))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            # Each request in a savepoint rolled back afterwards: every example meets the same
            # seeded state, and one request's failure cannot poison the next one's transaction.
            try:
                with transaction.atomic():
                    raise _Rollback(case.call(headers=headers, cookies=cookies))
            except _Rollback as done:
                response = done.args[0]
            if response.status_code < 300:
                succeeded.add(case.operation.label)
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
            failures.append(f"{operation.label}: {str(exc)[:3000]}")
    assert operations > 40  # the whole schema was loaded
    # The generated requests reach the code behind the checks, not only the 4xx guards.
    print(f"{identity}: {len(succeeded)}/{operations} operations answered 2xx at least once")
    assert len(succeeded) >= operations // 3, sorted(succeeded)
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)
