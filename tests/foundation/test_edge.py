"""core.edge: the one place request input is sanitised (unit level; HTTP in tests/api)."""

from __future__ import annotations

import json

import pytest

from core import edge
from core.errors import DomainError


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_depth_limit_is_exact():
    assert edge.decode_json(nested(edge.MAX_JSON_DEPTH)) is not None
    with pytest.raises(DomainError) as exc:
        edge.decode_json(nested(edge.MAX_JSON_DEPTH + 1))
    assert exc.value.code == "too_deep"


def test_very_deep_json_is_refused_without_recursion_error():
    with pytest.raises(DomainError) as exc:
        edge.decode_json(nested(100_000))
    assert exc.value.code == "too_deep"


def test_wide_shallow_bodies_pass():
    body = {"items": [{"id": str(i), "text": "[{" * 40} for i in range(1000)]}
    assert edge.decode_json(json.dumps(body).encode()) == body


def test_every_unstorable_string_is_named_by_its_path():
    raw = b'{"items": [{"id": "ok", "text": "a"}, {"id": "b\\u0000", "text": "c\\ud800"}]}'
    with pytest.raises(DomainError) as exc:
        edge.decode_json(raw)
    assert exc.value.code == "invalid_utf8"
    assert set(exc.value.fields) == {"items[1].id", "items[1].text"}


@pytest.mark.parametrize(
    "raw",
    [b"NaN", b"[Infinity]", b"[-Infinity]", b"1e999", b"9223372036854775808", b"-" + b"9" * 30],
)
def test_numbers_no_column_holds_are_refused(raw):
    with pytest.raises(DomainError):
        edge.decode_json(raw)


def test_64_bit_integers_pass():
    assert edge.decode_json(b"[9223372036854775807, -9223372036854775808]") == [
        2**63 - 1,
        -(2**63),
    ]


@pytest.mark.parametrize(
    "value", ["2020-02-30T00:00:00Z", "2020-01-01T00:00:00+17:13", "0001-01-01T00:00:00+05:00"]
)
def test_impossible_datetimes_are_api_errors(value):
    with pytest.raises(DomainError):
        edge.query_datetime(value, name="since")


def test_datetimes_come_back_in_utc():
    parsed = edge.query_datetime("2020-01-01T05:45:00+05:45", name="since")
    assert parsed.isoformat() == "2020-01-01T00:00:00+00:00"
