"""Input sanitising at the API edge: one place that every query parameter and request body passes.

`EdgeValidationMiddleware` (tagging_platform.middleware) runs these checks on every `/api/`
request before any view sees it, so a view never meets input PostgreSQL or Python cannot hold:

- query strings and form fields: valid UTF-8, no NUL, bounded size;
- JSON bodies: valid UTF-8, strict JSON (no NaN/Infinity), nesting at most `MAX_JSON_DEPTH`,
  integers inside 64 bits, finite floats, no NUL and no lone surrogate in any string or key;
- every other body media type is refused (415): the API speaks JSON, forms and multipart.

Field-level ranges (an `IntegerField` column holds 32 bits) are the serializers' job:
`db_int_bounds()` gives them the database's range for a model field.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_to_bytes

from django.db.backends.base.operations import BaseDatabaseOperations
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from core.errors import DomainError

MAX_JSON_DEPTH = 32
MAX_QUERY_STRING_BYTES = 8192
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Real time zones span UTC-12:00 to UTC+14:00.
MAX_UTC_OFFSET = timedelta(hours=14)
#: Media types the API parses; anything else with a body is a 415 at the edge.
JSON_MEDIA_TYPES = ("application/json",)
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class _Reject(ValueError):
    pass


def _reject_constant(name: str):
    raise _Reject(f"{name} is not valid JSON.")


def _parse_int(text: str) -> int:
    # Reject by length first: int() of a huge digit string costs quadratic time.
    if len(text.lstrip("-")) > 19:
        raise _Reject(_("An integer is out of range (64 bits)."))
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _Reject(_("An integer is out of range (64 bits)."))
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Reject(_("A number is out of range."))
    return value


_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
)


def string_problem(value: str) -> str | None:
    """Why PostgreSQL (or UTF-8) cannot hold this string, or None."""
    if "\x00" in value:
        return _("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _("contains a lone surrogate (not valid Unicode)")
    return None


def _max_depth_exceeded(data: Any) -> bool:
    # Level by level, keeping only containers: a wide body of strings costs one cheap pass.
    level = [data] if isinstance(data, dict | list) else []
    for _level in range(MAX_JSON_DEPTH):
        level = [
            value
            for node in level
            for value in (node.values() if type(node) is dict else node)
            if type(value) is dict or type(value) is list
        ]
        if not level:
            return False
    return True


def _string_problems(data: Any) -> dict[str, list[str]]:
    """Every string (key or value) PostgreSQL cannot hold, by its JSON path."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if problem := string_problem(key):
                    problems.setdefault(path or "body", []).append(f"A key {problem}.")
                stack.append((value, f"{path}.{key}" if path else str(key)))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{n}]") for n, value in enumerate(node))
        elif isinstance(node, str) and (problem := string_problem(node)):
            problems.setdefault(path or "body", []).append(f"The value {problem}.")
    return problems


def decode_json(raw: bytes) -> Any:
    """Decode a request body, or raise an `DomainError` (400) naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DomainError(
            "invalid_utf8",
            _("The request body is not valid UTF-8 (byte %(byte)s).") % {"byte": exc.start},
        ) from None
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        raise DomainError(
            "too_deep", _("JSON nested deeper than %(max)s levels.") % {"max": MAX_JSON_DEPTH}
        ) from None
    except _Reject as exc:
        raise DomainError("invalid", str(exc)) from None
    except ValueError as exc:
        raise DomainError(
            "malformed_json", _("The request body is not valid JSON: %(error)s.") % {"error": exc}
        ) from None
    # Cheap pre-checks keep the walk off the hot path: without enough brackets the body cannot be
    # too deep, and without a \u0000 or \uD800-\uDFFF escape (raw control characters are not
    # strict JSON; other escapes, such as json.dumps's \u00e9, decode to neither) no string can
    # hold a NUL or a lone surrogate. "\ud" also admits \uD000-\uD7FF (Hangul): a walk that
    # finds nothing, never a missed problem. Substring tests: each is one fast scan of the body.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _max_depth_exceeded(data):
        raise DomainError(
            "too_deep", _("JSON nested deeper than %(max)s levels.") % {"max": MAX_JSON_DEPTH}
        )
    if (
        b"\\u" in raw
        and (b"\\u0000" in raw or b"\\ud" in raw or b"\\uD" in raw)
        and (problems := _string_problems(data))
    ):
        surrogate = any("surrogate" in m for messages in problems.values() for m in messages)
        raise DomainError(
            "invalid_utf8" if surrogate else "invalid",
            _("Some strings cannot be stored (NUL or lone surrogate)."),
            fields={string_safe(k): v for k, v in sorted(problems.items())[:50]},
        )
    return data


def check_query_string(raw: str) -> None:
    """`raw` is the WSGI QUERY_STRING (latin-1 str of the raw bytes)."""
    if not raw:
        return
    if len(raw) > MAX_QUERY_STRING_BYTES:
        raise DomainError(
            "invalid",
            _("The query string is longer than %(max)s bytes.") % {"max": MAX_QUERY_STRING_BYTES},
        )
    for pair in raw.split("&"):
        name, _sep, value = pair.partition("=")
        for part in (name, value):
            decoded = unquote_to_bytes(part.replace("+", " "))
            try:
                text = decoded.decode("utf-8")
            except UnicodeDecodeError:
                raise DomainError(
                    "invalid_utf8", _("A query parameter is not valid UTF-8 (percent-encoded).")
                ) from None
            if "\x00" in text:
                label = unquote_to_bytes(name).decode("utf-8", "replace").replace("\x00", "")
                raise DomainError(
                    "invalid",
                    _("A query parameter contains a NUL character."),
                    fields={label or "query": [_("NUL characters are not allowed.")]},
                )


def check_form_values(data, files=None) -> None:
    """NUL / lone surrogates in form fields and file names (not in file contents: the parsers of
    uploads report those per row)."""
    items = list(data.lists())
    if files is not None:
        items += [(name, [f.name for f in uploads]) for name, uploads in files.lists()]
    for name, values in items:
        for value in [name, *values]:
            if isinstance(value, str) and (problem := string_problem(value)):
                raise DomainError(
                    "invalid",
                    _("A form field %(problem)s.") % {"problem": problem},
                    fields={
                        string_safe(name): [_("The value %(problem)s.") % {"problem": problem}]
                    },
                )


def string_safe(value: str) -> str:
    return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def db_int_bounds(model, field_name: str) -> dict[str, int]:
    """`min_value`/`max_value` for a serializer field stored in `model.field_name`.

    PostgreSQL's ranges (Django's documented safe ranges), whatever the current backend: an
    `integer` column rejects 2**31 with a DataError, which must be a 400 long before.
    """
    field = model._meta.get_field(field_name)
    low, high = BaseDatabaseOperations.integer_field_ranges[field.get_internal_type()]
    return {"min_value": low, "max_value": high}


def query_datetime(value: str, *, name: str) -> datetime | None:
    """An ISO 8601 query parameter as an aware UTC datetime; impossible dates are a 400."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:  # well-formed but impossible: 2020-02-30, +25:00
        parsed = None
    if parsed is None:
        raise DomainError(
            "invalid",
            _("`%(name)s` must be an ISO 8601 date-time.") % {"name": name},
            fields={name: [_("Invalid date-time.")]},
        )
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    offset = parsed.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise DomainError(
            "invalid",
            _("`%(name)s` has a UTC offset no time zone uses (at most ±14:00).") % {"name": name},
            fields={name: [_("Impossible UTC offset.")]},
        )
    try:
        # Offsets PostgreSQL cannot take (+17:13) leave here as plain UTC.
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise DomainError(
            "invalid",
            _("`%(name)s` is out of range.") % {"name": name},
            fields={name: [_("Out of range.")]},
        ) from None


def query_int(value: str | None, *, name: str, minimum: int, maximum: int) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 20:
        raise DomainError(
            "invalid",
            _("`%(name)s` must be an integer.") % {"name": name},
            fields={name: [_("Expected an integer.")]},
        )
    number = int(value)
    if not minimum <= number <= maximum:
        raise DomainError(
            "invalid",
            _("`%(name)s` must be between %(min)s and %(max)s.")
            % {"name": name, "min": minimum, "max": maximum},
            fields={name: [_("Between %(min)s and %(max)s.") % {"min": minimum, "max": maximum}]},
        )
    return number
