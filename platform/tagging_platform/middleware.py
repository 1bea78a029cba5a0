"""Request IDs: taken from nginx's X-Request-ID (or made here), echoed back and put on every log line."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_VALID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# nginx normally sends X-Request-ID. When it does not, ids are a random per-process prefix plus a
# counter: unique across processes without a urandom read (uuid4) on every request.
_prefix = os.urandom(8).hex()
_counter = itertools.count(1)


def _reseed_after_fork() -> None:
    # gunicorn --preload forks workers from one master: each needs its own prefix.
    global _prefix, _counter
    _prefix, _counter = os.urandom(8).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_reseed_after_fork)


def _new_request_id() -> str:
    return f"{_prefix}{next(_counter):016x}"


def current_request_id() -> str:
    return _request_id.get()


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID.match(incoming) else _new_request_id()
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


class ContentSecurityPolicyMiddleware:
    """Send CONTENT_SECURITY_POLICY on every response: scripts only from this origin (htmx, Chart.js
    and the page scripts are vendored static files; no inline script or handler anywhere)."""

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
