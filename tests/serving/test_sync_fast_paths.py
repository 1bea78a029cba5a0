"""POST /api/v1/needs/{need}/tag answers the same (status, body, headers) with the per-request
shortcuts as without them: DRF's own content negotiation, the edge's NUL/surrogate walk on every
\\u escape (as before), and Django's MessageMiddleware on /api/ too. (Unit level:
tests/foundation/test_request_fast_paths.py.)"""

from __future__ import annotations

import pytest
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.views import APIView

from core import edge
from tagging_platform.middleware import MessageMiddleware
from tests.foundation.test_request_fast_paths import OldEscapeGate

ACCEPTS = [
    None,
    "application/json",
    "*/*",
    "application/*",
    "application/json; indent=4",
    "",
    "text/html",
    "text/csv, image/*",
]
BODIES = [
    b'{"items": [{"id": "a1", "text": "football match goal striker"}]}',
    b'{"items": [{"id": "a1", "text": "caf\\u00e9 football \\u4e2d\\u6587 \\ud83d\\ude00"}]}',
    b'{"items": [{"id": "a1", "text": "goal \\u0000 scored"}]}',
    b'{"items": [{"id": "a\\u0000", "text": "goal scored"}]}',
    b'{"items": [{"id": "a1", "text": "lone \\ud800 surrogate"}]}',
    b'{"items": [{"id": "a1", "text": "lone \\uDFFF"}], "\\ud801": 1}',
    b'{"items": [{"id": "a1", "text": "raw \x00 nul"}]}',
    b'{"items": [{"id": "a1", "text": "   "}]}',
]


def _answer(client, body: bytes, accept: str | None):
    extra = {"HTTP_X_REQUEST_ID": "same-id"}
    if accept is not None:
        extra["HTTP_ACCEPT"] = accept
    response = client.generic(
        "POST", "/api/v1/needs/news/tag", body, content_type="application/json", **extra
    )
    return response.status_code, response.content, sorted(response.items())


def _without_shortcuts(monkeypatch) -> None:
    monkeypatch.setattr(APIView, "content_negotiation_class", DefaultContentNegotiation)
    decode_json = edge.decode_json
    monkeypatch.setattr(edge, "decode_json", lambda raw: decode_json(OldEscapeGate(raw)))
    monkeypatch.setattr(
        MessageMiddleware, "process_request", DjangoMessageMiddleware.process_request
    )


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("body", BODIES)
def test_same_answer_with_and_without_the_shortcuts(api_a, need_a, accept, body, monkeypatch):
    quick = _answer(api_a, body, accept)
    _without_shortcuts(monkeypatch)
    assert _answer(api_a, body, accept) == quick


@pytest.mark.parametrize(
    ("accept", "status"),
    [(None, 200), ("application/json", 200), ("*/*", 200), ("text/html", 406), ("", 406)],
)
def test_negotiation_outcomes(api_a, need_a, accept, status):
    code, content, headers = _answer(api_a, BODIES[0], accept)
    assert code == status, content
    assert dict(headers)["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("body", "code"),
    [(BODIES[2], "invalid"), (BODIES[3], "invalid"), (BODIES[4], "invalid_utf8")],
)
def test_nul_and_lone_surrogates_are_still_400(api_a, need_a, body, code):
    status, content, _headers = _answer(api_a, body, "application/json")
    assert status == 400, content
    assert code.encode() in content
