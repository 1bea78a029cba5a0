"""The per-request shortcuts of the sync path answer exactly as the full paths they skip: DRF's
content negotiation, the clean-text check of core.texts, the NUL/surrogate pre-check of the
edge, the cached Prometheus children and the MessageMiddleware skipped under /api/. (Over HTTP:
tests/serving/test_sync_fast_paths.py.)"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from django.http import Http404, HttpResponse
from django.test import RequestFactory
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request

from core import edge
from core.errors import DomainError
from core.texts import MAX_ID_CHARS, item_id_problem, text_problem
from serving import metrics
from tagging_platform.middleware import MessageMiddleware
from tagging_platform.negotiation import JsonFastContentNegotiation

ROOT = Path(__file__).resolve().parents[2]


class _Str(str):
    """A str subclass skips the clean-string shortcut of core.texts: the full path answers."""


class OldEscapeGate(bytes):
    """A body for which the edge's narrow escape tests answer as the old, wide one did: any \\u
    escape at all sends the decoded body through the full NUL/surrogate walk."""

    def __contains__(self, needle) -> bool:
        if needle in (b"\\u0000", b"\\ud", b"\\uD"):
            needle = b"\\u"
        return bytes.__contains__(self, needle)


class _JsonV2(JSONRenderer):
    format = "json2"


class _JsonApi(JSONRenderer):
    media_type = "application/vnd.api+json"


ACCEPTS = [
    None,
    "",
    "application/json",
    "*/*",
    "application/*",
    "APPLICATION/JSON",
    "application/json; indent=4",
    "application/json;q=0.5, */*;q=0.1",
    "text/html",
    "text/html, application/json",
    "text/csv",
    "application/xml",
    "image/*",
    " application/json",
    ",",
]
RENDERER_SETS = [
    [JSONRenderer],
    [JSONRenderer, _JsonV2],
    [JSONRenderer, BrowsableAPIRenderer],
    [BrowsableAPIRenderer, JSONRenderer],
    [_JsonApi],
    [_JsonApi, JSONRenderer],
]
QUERIES = ["", "format=json", "format=api", "format=json2", "format=", "limit=5"]


def _negotiate(negotiation_class, accept, renderer_classes, query, suffix):
    meta = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().get("/api/v1/needs/news/tag?" + query, **meta))
    renderers = [renderer() for renderer in renderer_classes]
    try:
        renderer, media_type = negotiation_class().select_renderer(request, renderers, suffix)
    except (NotAcceptable, Http404) as exc:
        return type(exc).__name__, getattr(exc, "status_code", 404), str(exc)
    return renderers.index(renderer), media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("renderer_classes", RENDERER_SETS)
@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("suffix", [None, "json"])
def test_negotiation_picks_what_drf_picks_or_fails_as_drf_does(
    accept, renderer_classes, query, suffix
):
    assert _negotiate(JsonFastContentNegotiation, accept, renderer_classes, query, suffix) == (
        _negotiate(DefaultContentNegotiation, accept, renderer_classes, query, suffix)
    )


def test_negotiation_shortcut_is_taken_for_the_usual_json_request(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("DRF's negotiation ran")

    monkeypatch.setattr(DefaultContentNegotiation, "select_renderer", refuse)
    for accept in (None, "application/json", "*/*"):
        assert _negotiate(JsonFastContentNegotiation, accept, [JSONRenderer], "", None) == (
            0,
            "application/json",
        )


def test_the_api_uses_the_fast_negotiation():
    from rest_framework.views import APIView

    from serving.api import TagView

    assert TagView.content_negotiation_class is JsonFastContentNegotiation
    assert APIView.content_negotiation_class is JsonFastContentNegotiation


TEXTS = [
    "Ten chars!",
    "Café, naïve, 中文新闻, emoji 😀",
    "x" * 20,
    "x" * 21,
    "",
    " ",
    " \n\t",
    "\u3000",  # ideographic space: blank for strip() and isspace() alike
    "\x1c\x1d",  # information separators: whitespace to Python
    "\u200b",  # zero-width space: not whitespace to Python
    "a\x00b",
    "\x00",
    "bad \ud800 text",
    "bad \udfff",
    "中文\ud83d",
    "中文\x00",
    " \x00 ",
    "x" * 19 + "\ud800",
]


@pytest.mark.parametrize("text", TEXTS)
def test_clean_text_shortcut_answers_as_the_full_check(text):
    assert text_problem(text, max_chars=20) == text_problem(_Str(text), max_chars=20)


@pytest.mark.parametrize("item_id", [*TEXTS, "x" * MAX_ID_CHARS, "x" * (MAX_ID_CHARS + 1)])
def test_clean_id_shortcut_answers_as_the_full_check(item_id):
    assert item_id_problem(item_id) == item_id_problem(_Str(item_id))


@pytest.mark.parametrize("value", [None, 7, 7.5, b"bytes", ["list"]])
def test_non_strings_are_still_refused(value):
    assert text_problem(value, max_chars=20)[0] == "invalid"
    assert item_id_problem(value)


BODIES = [
    b'{"items": [{"id": "1", "text": "plain"}]}',
    b'{"items": [{"id": "1", "text": "caf\\u00e9 \\u4e2d\\u6587"}]}',
    b'{"items": [{"id": "1", "text": "pair \\ud83d\\ude00"}]}',
    b'{"items": [{"id": "1", "text": "PAIR \\uD83D\\uDE00"}]}',
    b'{"items": [{"id": "1", "text": "nul \\u0000"}]}',
    b'{"items": [{"id": "1\\u0000", "text": "nul in the id"}]}',
    b'{"items": [{"id": "1", "text": "lone \\ud800"}]}',
    b'{"items": [{"id": "1", "text": "lone \\uDFFF"}]}',
    b'{"items": [{"id": "1", "text": "lone \\uDbFf x"}]}',
    b'{"items": [{"id": "1", "text": "reversed \\ude00\\ud83d"}]}',
    b'{"k\\u0000ey": 1, "ok": "\\ud7ff\\ue000"}',
    b'{"items": [{"id": "1", "text": "Hangul \\uD55C\\uAE00, not a surrogate"}]}',
    b'{"items": [{"id": "1", "text": "escaped backslash \\\\u0000 \\\\ud800"}]}',
    b'{"items": [{"id": "1", "text": "raw \x00 nul"}]}',
    b'["\\u0000", {"\\ud800": ["\\u0000"]}]',
    b'"\\u0000"',
    json.dumps({"items": [{"id": "1", "text": "£ and é"}]}).encode(),
]


def _decode(raw):
    try:
        return "ok", edge.decode_json(raw)
    except DomainError as exc:
        return exc.code, exc.message, exc.status_code, exc.fields


@pytest.mark.parametrize("raw", BODIES)
def test_nul_and_surrogate_precheck_answers_as_the_full_walk(raw):
    assert _decode(raw) == _decode(OldEscapeGate(raw))


def test_the_old_gate_walks_on_any_escape(monkeypatch):
    walked = []
    original = edge._string_problems
    monkeypatch.setattr(edge, "_string_problems", lambda data: walked.append(1) or original(data))
    edge.decode_json(b'"caf\\u00e9"')
    assert walked == []
    edge.decode_json(OldEscapeGate(b'"caf\\u00e9"'))
    assert walked == [1]


def test_tag_metrics_children_are_the_ones_labels_returns():
    children = metrics._tag_metrics("fast-path-need", "sync")
    assert children == (
        metrics.TAG_REQUESTS.labels(need="fast-path-need", channel="sync"),
        metrics.TAG_ITEMS.labels(need="fast-path-need", channel="sync"),
        metrics.TAG_LATENCY.labels(need="fast-path-need", channel="sync"),
    )
    assert metrics._tag_metrics("fast-path-need", "sync") is children
    before = metrics.TAG_ITEMS.labels(need="fast-path-need", channel="sync")._value.get()
    metrics.observe_tag_request("fast-path-need", "sync", 0.01, 3)
    assert metrics.TAG_ITEMS.labels(need="fast-path-need", channel="sync")._value.get() == (
        before + 3
    )


@pytest.mark.parametrize(("path", "has_storage"), [("/api/v1/needs", False), ("/tenant/", True)])
def test_message_storage_only_outside_the_api(path, has_storage, rf):
    request = rf.get(path)
    request.session = {}
    response = MessageMiddleware(lambda request: HttpResponse("ok"))(request)
    assert hasattr(request, "_messages") is has_storage
    assert response.status_code == 200 and response.content == b"ok"


def _imports_messages(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {alias.name for alias in node.names}
            if node.module.startswith("django.contrib.messages") or (
                node.module == "django.contrib" and "messages" in names
            ):
                return True
        if isinstance(node, ast.Import) and any(
            alias.name.startswith("django.contrib.messages") for alias in node.names
        ):
            return True
    return False


def test_no_api_module_uses_django_messages():
    """MessageMiddleware skips /api/: an API view adding a message would fail (or be lost)."""
    api_modules = [
        path
        for folder in ("platform", "tenants", "taxonomy")
        for path in (ROOT / folder).rglob("*.py")
        if "api" in path.stem or path.stem in {"authentication", "scoping", "errors", "views"}
    ]
    assert api_modules
    assert [str(p.relative_to(ROOT)) for p in api_modules if _imports_messages(p)] == []


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "", "Bearer abc", "Api-Key", "Api-Key not-a-key"])
def test_api_key_authentication_reads_the_header_as_drf_does(authorization):
    from rest_framework.authentication import get_authorization_header
    from rest_framework.exceptions import AuthenticationFailed

    from tenants.authentication import ApiKeyAuthentication

    def outcome(request, authenticate):
        try:
            return authenticate(request)
        except AuthenticationFailed as exc:
            return "failed", str(exc.detail)

    meta = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    request = Request(RequestFactory().post("/api/v1/needs/news/tag", **meta))
    quick = outcome(request, ApiKeyAuthentication().authenticate)
    assert "headers" not in request._request.__dict__  # the header copy was never built

    def through_drf(request):  # DRF's reading of the header, then the same checks
        raw = get_authorization_header(request)
        return ApiKeyAuthentication()._authenticate_uncached(raw.decode("latin-1")) if raw else None

    assert quick == outcome(Request(RequestFactory().post("/x", **meta)), through_drf)


def test_a_valid_api_key_authenticates_from_meta(key_a):
    from tenants.authentication import ApiKeyAuthentication, clear_key_cache

    clear_key_cache()
    request = Request(
        RequestFactory().post(
            "/api/v1/needs/news/tag", HTTP_AUTHORIZATION=f"Api-Key {key_a.plain_key}"
        )
    )
    user, api_key = ApiKeyAuthentication().authenticate(request)
    assert api_key.pk == key_a.pk and user.is_authenticated


def test_redis_urls_follow_changed_settings(settings):
    from serving import redis_pool

    settings.REDIS_URL, settings.CACHE_REDIS_URL = "redis://main.example:6379/1", ""
    assert (redis_pool.url_for(), redis_pool.url_for("cache")) == (settings.REDIS_URL,) * 2
    settings.CACHE_REDIS_URL = "redis://cache.example:6379/2"
    assert redis_pool.url_for("cache") == "redis://cache.example:6379/2"
    assert redis_pool.url_for() == "redis://main.example:6379/1"
