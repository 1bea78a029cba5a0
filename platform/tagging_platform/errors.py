"""One JSON error shape for the whole API: {"error": {"code", "message", "fields"?}}.

Codes are stable strings clients can switch on; messages are for humans.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApiError(exceptions.APIException):
    """Raise with a stable code: `raise ApiError("too_many_items", "At most 64 items.", status=413)`."""

    def __init__(
        self, code: str, message: str, *, status_code: int = 400, fields=None, headers=None
    ):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.fields = fields
        self.headers = headers or {}


_DEFAULT_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
}


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    if isinstance(exc, ApiError):
        body = {"code": exc.error_code, "message": str(exc.detail)}
        if exc.fields:
            body["fields"] = exc.fields
        return Response({"error": body}, status=exc.status_code, headers=exc.headers)

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        code = "invalid"
        if isinstance(exc, exceptions.ParseError):
            code = "malformed_request"
        response.data = {"error": {"code": code, "message": "Invalid input.", "fields": fields}}
    else:
        code = _DEFAULT_CODES.get(response.status_code, "error")
        if isinstance(exc, exceptions.ParseError):
            code = "malformed_request"
        elif isinstance(exc, exceptions.AuthenticationFailed):
            code = "authentication_failed"
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        response.data = {"error": {"code": code, "message": str(detail)}}
    if response.status_code == status.HTTP_429_TOO_MANY_REQUESTS and "Retry-After" not in response:
        response["Retry-After"] = "1"
    return response
