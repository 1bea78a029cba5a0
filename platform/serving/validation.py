"""Fast validation of `{"items": [{"id", "text"}]}` bodies, shared by sync tagging and the stream.

Hand-written rather than a DRF serializer because it runs on the hot path for every item; the
serializers in serving.serializers describe the same shape for OpenAPI. Every problem becomes an
`DomainError` with a stable code and per-field messages, and nothing has been written yet.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.utils.translation import gettext as _

from core.errors import DomainError
from core.texts import item_id_problem, text_problem

_MISSING = object()


def read_json_body(request) -> Any:
    """The decoded JSON body, with distinct errors for size, encoding and syntax."""
    django_request = getattr(request, "_request", request)
    media_type = (django_request.content_type or "").lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        # Checked before the body is read: text/plain or a form is not JSON, whatever it holds.
        raise DomainError(
            "unsupported_media_type",
            _("Send the body as JSON with Content-Type: application/json (got %(value)s).")
            % {"value": repr(media_type or "no Content-Type")},
            status_code=415,
        )
    decoded = getattr(django_request, "_edge_json", _MISSING)
    if decoded is not _MISSING:  # already decoded and checked by the edge middleware
        return decoded
    try:
        raw = django_request.body
    except RequestDataTooBig:
        raise DomainError(
            "request_too_large",
            _("The request body is larger than %(DATA_UPLOAD_MAX_MEMORY_SIZE)s bytes.")
            % {"DATA_UPLOAD_MAX_MEMORY_SIZE": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
            status_code=413,
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DomainError(
            "invalid_utf8",
            _("The request body is not valid UTF-8 (byte %(start)s).") % {"start": exc.start},
        ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise DomainError(
            "malformed_json", _("The request body is not valid JSON: %(exc)s.") % {"exc": exc}
        ) from None


def validate_items(
    data: Any, *, max_items: int, unique_ids: bool = True
) -> tuple[list[str], list[str]]:
    """Return (ids, texts) or raise. Error codes, most specific first: too_many_items,
    text_too_long, empty_text, invalid_utf8, invalid (wrong types or missing fields), then
    duplicate_ids (an id sent twice, unless `unique_ids` is False: the stream reports a repeat
    as a duplicate of an already ingested item instead)."""
    if not isinstance(data, dict) or "items" not in data:
        raise DomainError(
            "invalid",
            _('Send a JSON object {"items": [{"id": "...", "text": "..."}]}.'),
            fields={"items": [_("This field is required.")]},
        )
    items = data["items"]
    if not isinstance(items, list):
        raise DomainError(
            "invalid", _("`items` must be a list."), fields={"items": [_("Expected a list.")]}
        )
    if not items:
        raise DomainError(
            "invalid", _("Send at least one item."), fields={"items": [_("Empty list.")]}
        )
    if len(items) > max_items:
        raise DomainError(
            "too_many_items",
            _("%(value)s items sent; at most %(max_items)s per request.")
            % {"value": len(items), "max_items": max_items},
            status_code=413,
        )
    limit = settings.TAG_MAX_TEXT_CHARS
    ids: list[str] = []
    texts: list[str] = []
    errors: dict[str, list[str]] = {}
    codes: set[str] = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"items[{n}]"] = [_('Expected an object {"id", "text"}.')]
            codes.add("invalid")
            continue
        item_id, text = item.get("id"), item.get("text")
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            item_id = str(item_id)
        id_problem = item_id_problem(item_id)
        if id_problem:
            errors[f"items[{n}].id"] = [id_problem]
            codes.add("invalid")
        problem = text_problem(text, max_chars=limit)
        if problem:
            code, message = problem
            errors[f"items[{n}].text"] = [message]
            codes.add(code)
        ids.append(item_id)
        texts.append(text)
    if errors:
        # The most specific problem names the error; every problem is listed in `fields`.
        code = next(
            (c for c in ("text_too_long", "empty_text", "invalid_utf8") if c in codes), "invalid"
        )
        status = 413 if code == "text_too_long" else 400
        raise DomainError(code, _("Some items are invalid."), status_code=status, fields=errors)
    if unique_ids and len(set(ids)) != len(ids):
        _refuse_duplicates(ids)
    return ids, texts


def _refuse_duplicates(ids: list[str]) -> None:
    """Two results with one id could not be told apart: name every repeated id."""
    first: dict[str, int] = {}
    repeated: dict[str, None] = {}  # insertion-ordered set
    fields: dict[str, list[str]] = {}
    for n, item_id in enumerate(ids):
        if item_id in first:
            repeated[item_id] = None
            fields[f"items[{n}].id"] = [
                _("Duplicate of items[%(first)s].id ('%(item_id)s').")
                % {"first": first[item_id], "item_id": item_id}
            ]
        else:
            first[item_id] = n
    names = ", ".join(f"'{item_id}'" for item_id in repeated)
    raise DomainError(
        "duplicate_ids",
        _("Item ids must be unique within a request. Repeated: %(names)s.") % {"names": names},
        fields=fields,
    )
