"""The one domain error type. Services raise it; the API edge turns it into HTTP.

`tagging_platform.errors.api_exception_handler` (DRF views) and `EdgeValidationMiddleware`
(everything else under /api/, and portal views) are the only places that read `status_code`
and build the `{"error": {"code", "message", "fields"?}}` response. Outside a request (a Celery
or beat task) a DomainError is an ordinary exception with a stable code: no HTTP type reaches it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DomainError(Exception):
    """`raise DomainError("too_many_items", "At most 64 items.", status_code=413)`.

    `code` is a stable string clients switch on, `message` is for humans, `fields` names the
    offending inputs. `status_code` is the HTTP status the edge answers with (400 by default)
    and `headers` extra response headers (e.g. Retry-After); both are advice to the edge only.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int = 400,
        fields: Any = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status_code = status_code
        self.fields = fields
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return self.message
