"""Schemathesis over the whole OpenAPI schema, in-process through the WSGI app."""

from __future__ import annotations

import pytest
import schemathesis
from django.db import transaction
from hypothesis import HealthCheck, Phase, given, settings
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
EXAMPLES = 20


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


@pytest.mark.django_db
def test_whole_schema(seeded, keep_db_connection):
    from tagging_platform.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    headers = {"Authorization": f"Api-Key {seeded['key'].plain_key}"}
    failures = []
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            nonlocal count
            count += 1
            try:
                with transaction.atomic():
                    response = case.call(headers=headers)
                    raise _Rollback(response)
            except _Rollback as rb:
                response = rb.args[0]
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    print(count)
    assert not failures, "\n\n".join(failures)
