"""The project's LocaleMiddleware answers exactly as Django's does (it only skips work that
cannot change the answer without i18n_patterns, and remembers the answer per header)."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.test import RequestFactory
from django.utils import translation

from tagging_platform.middleware import LocaleMiddleware

CASES = [
    ("/api/v1/needs/news/tag", {}, {}),
    ("/api/v1/needs/news/tag", {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}, {}),
    ("/api/v1/needs/news/tag", {"HTTP_ACCEPT_LANGUAGE": "zh-Hans"}, {}),
    ("/api/v1/needs/news/tag", {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9,en;q=0.5"}, {}),
    ("/api/v1/needs/news/tag", {"HTTP_ACCEPT_LANGUAGE": "de,*;q=0.1"}, {}),
    ("/api/v1/needs/news/tag", {"HTTP_ACCEPT_LANGUAGE": "x" * 600}, {}),
    ("/portal/", {"HTTP_ACCEPT_LANGUAGE": "en-GB"}, {"django_language": "zh-hans"}),
    ("/portal/", {"HTTP_ACCEPT_LANGUAGE": "zh-TW"}, {"django_language": "nonsense"}),
    ("/zh-hans/portal/", {}, {}),
    ("/en/", {"HTTP_ACCEPT_LANGUAGE": "zh"}, {}),
]


def _answer(middleware_class, path, meta, cookies, status=200):
    factory = RequestFactory()
    request = factory.get(path, **meta)
    request.COOKIES.update(cookies)
    middleware = middleware_class(lambda request: HttpResponse(status=status))
    with translation.override(None):
        response = middleware(request)
        return request.LANGUAGE_CODE, response.get("Vary"), response.get("Content-Language")


@pytest.mark.parametrize(("path", "meta", "cookies"), CASES)
@pytest.mark.parametrize("status", [200, 404])
def test_same_language_and_headers_as_djangos(path, meta, cookies, status):
    for _ in range(2):  # the second answer comes from the remembered language
        assert _answer(LocaleMiddleware, path, meta, cookies, status) == _answer(
            DjangoLocaleMiddleware, path, meta, cookies, status
        )


def test_changed_language_settings_are_seen(settings):
    meta = {"HTTP_ACCEPT_LANGUAGE": "zh-CN"}
    assert _answer(LocaleMiddleware, "/api/", meta, {})[0] == "zh-hans"
    settings.LANGUAGES = [("en", "English")]
    assert _answer(LocaleMiddleware, "/api/", meta, {})[0] == "en"
