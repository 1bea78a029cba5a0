"""One JSON error shape for the whole API: {"error": {"code", "message", "fields"?}}.

Codes are stable strings clients can switch on; messages are for humans. This module is where
a `core.errors.DomainError` raised by a service becomes HTTP: `api_exception_handler` for DRF
views, `domain_error_response` for the edge middleware (other views, portal pages).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from core.errors import DomainError

logger = logging.getLogger("tagging_platform.errors")


_DEFAULT_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}


def error_body(code: str, message: str, fields=None) -> dict:
    body = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def error_response(
    code: str, message: str, *, status_code: int, fields=None, headers=None
) -> JsonResponse:
    """The JSON error shape outside DRF (middleware, plain views), serialised byte for byte as
    DRF's JSONRenderer does (compact, UTF-8), so a client sees one format whichever layer
    answered."""
    response = JsonResponse(
        error_body(code, message, fields),
        status=status_code,
        json_dumps_params={"ensure_ascii": False, "separators": (",", ":")},
    )
    for name, value in (headers or {}).items():
        response[name] = value
    if status_code == 429 and "Retry-After" not in response:
        response["Retry-After"] = "1"
    return response


def domain_error_response(exc: DomainError) -> JsonResponse:
    return error_response(
        exc.code,
        exc.message,
        status_code=exc.status_code,
        fields=exc.fields,
        headers=exc.headers,
    )


def default_code(status_code: int) -> str:
    return _DEFAULT_CODES.get(status_code, "error")


def server_error_response(exc: BaseException, *, where: str) -> JsonResponse:
    """Anything no one handled: logged with its traceback, answered as a JSON 500."""
    logger.error("Unhandled %s at %s", type(exc).__name__, where, exc_info=exc)
    return error_response(
        "server_error", _("Internal server error; it has been logged."), status_code=500
    )


def _django_validation_fields(exc: DjangoValidationError) -> dict:
    # `message_dict` assumes flat lists; a nested dict (one entry per mapping key) must not
    # turn a 400 into an AttributeError.
    if hasattr(exc, "error_dict"):
        return {
            field: [message for error in errors for message in error.messages]
            for field, errors in exc.error_dict.items()
        }
    return {"non_field_errors": exc.messages}


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_fields(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, DomainError):
        response = Response(
            error_body(exc.code, exc.message, exc.fields),
            status=exc.status_code,
            headers=exc.headers,
        )
        if exc.status_code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in response:
            response["Retry-After"] = "1"
        return response

    response = exception_handler(exc, context)
    if response is None:
        view = context.get("view") if context else None
        request = context.get("request") if context else None
        where = f"{getattr(request, 'method', '?')} {getattr(request, 'path', '?')}"
        set_rollback()
        return server_error_response(exc, where=f"{where} ({type(view).__name__})")
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        code = "invalid"
        response.data = {"error": {"code": code, "message": _("Invalid input."), "fields": fields}}
    else:
        code = default_code(response.status_code)
        if isinstance(exc, exceptions.ParseError):
            code = "malformed_request"
        elif isinstance(exc, exceptions.AuthenticationFailed):
            code = "authentication_failed"
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = {"error": {"code": code, "message": str(detail)}}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in response:
        response["Retry-After"] = "1"
    return response
