"""Request IDs: taken from nginx's X-Request-ID (or made here), echoed back and put on every log line;
the API edge; the request's language."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _

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


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # From META: `request.headers` would copy every header of the request on first use.
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
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


class EdgeValidationMiddleware:
    """The API's edge: every `/api/` request is sanitised here, and every error leaves as JSON.

    - Query strings (on every path, portal and admin too), form fields and JSON bodies pass `core.edge` (UTF-8, NUL, lone
      surrogates, depth, size, 64-bit integers, finite numbers); a JSON body is decoded once and
      handed to the parsers as `request._edge_json`.
    - Bodies of any other media type are a 415.
    - A `core.errors.DomainError` (or DRF `APIException`) raised by any view, API or portal,
      becomes its 4xx.
    - Anything else raised under `/api/` is a logged JSON 500, and an error page Django renders
      under `/api/` (an unrouted path's 404, a 400 for a suspicious request) is replaced by the
      JSON shape. Never HTML under /api/.
    """

    API_PREFIX = "/api/"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        is_api = request.path_info.startswith(self.API_PREFIX)
        if is_api:
            try:
                self._sanitise(request)
            except Exception as exc:  # a DomainError, or Django refusing the upload
                self._drain(request)
                return self._exception_response(request, exc)
        elif request.META.get("QUERY_STRING"):
            # Portal and admin pages search with query parameters too (Django forms already
            # refuse NUL in posted fields).
            from django.http import HttpResponseBadRequest

            from core import edge
            from core.errors import DomainError

            try:
                edge.check_query_string(request.META["QUERY_STRING"])
            except DomainError as exc:
                return HttpResponseBadRequest(
                    _("Bad request: %(error)s") % {"error": exc.message}, content_type="text/plain"
                )
        response = self.get_response(request)
        if is_api and response.status_code >= 400 and not self._is_json(response):
            response = self._as_json(response)
        return response

    def process_exception(self, request, exc):
        from rest_framework.exceptions import APIException

        from core.errors import DomainError

        if isinstance(exc, DomainError | APIException) or request.path_info.startswith(
            self.API_PREFIX
        ):
            return self._exception_response(request, exc)
        return None

    # -- checks --------------------------------------------------------------------------
    def _sanitise(self, request) -> None:
        from django.core.exceptions import RequestDataTooBig

        from core import edge
        from core.errors import DomainError

        edge.check_query_string(request.META.get("QUERY_STRING", ""))
        content_type = request.content_type or ""
        has_body = self._has_body(request)
        if content_type in edge.JSON_MEDIA_TYPES or content_type.endswith("+json"):
            if has_body:
                try:
                    body = request.body
                except RequestDataTooBig:
                    raise DomainError(
                        "request_too_large",
                        _("The request body is larger than %(limit)s bytes.")
                        % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
                        status_code=413,
                    ) from None
                request._edge_json = edge.decode_json(body)
        elif content_type in edge.FORM_MEDIA_TYPES:
            if request.method == "POST":  # Django parses forms for POST only
                try:
                    form, files = request.POST, request.FILES
                except RequestDataTooBig:
                    raise DomainError(
                        "upload_too_large", _("The upload is too large."), status_code=413
                    ) from None
                edge.check_form_values(form, files)
        elif has_body:
            raise DomainError(
                "unsupported_media_type",
                _(
                    "Unsupported media type %(content_type)r: send application/json, or multipart/form-data for uploads."
                )
                % {"content_type": content_type or "(none)"},
                status_code=415,
            )

    @staticmethod
    def _drain(request) -> None:
        """Read what is left of a refused body: a sync worker closes the connection after its
        answer, and closing it while the proxy is still sending the body turns our 4xx into the
        proxy's 502. The body is bounded by nginx's and Django's upload limits."""
        try:
            while request.read(64 * 1024):
                pass
        except Exception:  # already read, or the client went away: nothing left to drain
            pass

    @staticmethod
    def _has_body(request) -> bool:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        return length > 0 or "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()

    # -- responses -------------------------------------------------------------------------
    @staticmethod
    def _is_json(response) -> bool:
        return "json" in response.get("Content-Type", "")

    def _as_json(self, response):
        from tagging_platform.errors import default_code, error_response

        status_code = response.status_code
        message = {
            404: _("Not found."),
            405: _("Method not allowed."),
            500: _("Internal server error; it has been logged."),
        }.get(status_code, getattr(response, "reason_phrase", "") or "Error.")
        new = error_response(default_code(status_code), message, status_code=status_code)
        for header in ("Allow", "Retry-After", "X-Request-ID"):
            if header in response:
                new[header] = response[header]
        return new

    def _exception_response(self, request, exc):
        from django.core.exceptions import (
            PermissionDenied,
            RequestDataTooBig,
            SuspiciousOperation,
            TooManyFieldsSent,
            TooManyFilesSent,
        )
        from django.http import Http404
        from rest_framework.exceptions import APIException

        from core.errors import DomainError
        from tagging_platform.errors import (
            default_code,
            domain_error_response,
            error_response,
            server_error_response,
        )

        if isinstance(exc, DomainError):
            return domain_error_response(exc)
        if isinstance(exc, APIException):
            headers = {}
            if getattr(exc, "wait", None):
                headers["Retry-After"] = str(int(exc.wait))
            return error_response(
                default_code(exc.status_code),
                str(exc.detail),
                status_code=exc.status_code,
                headers=headers,
            )
        if isinstance(exc, RequestDataTooBig):
            return error_response(
                "request_too_large", _("The request body is too large."), status_code=413
            )
        if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
            return error_response("invalid", _("Too many form fields or files."), status_code=400)
        if isinstance(exc, SuspiciousOperation):
            return error_response("invalid", _("Bad request."), status_code=400)
        if isinstance(exc, Http404):
            return error_response("not_found", _("Not found."), status_code=404)
        if isinstance(exc, PermissionDenied):
            return error_response(
                "permission_denied", str(exc) or _("Permission denied."), status_code=403
            )
        return server_error_response(exc, where=f"{request.method} {request.path}")


class LocaleMiddleware(DjangoLocaleMiddleware):
    """Django's LocaleMiddleware, minus the per-request work this project cannot need.

    Without `i18n_patterns` (the URLs carry no language prefix) Django's version still reads a
    language from the path twice per request, and "/api/..." reads as the language code "api":
    an unsupported code, so `LookupError` is raised, caught and, being an exception, never
    cached, on every request. It also raises and catches one for the absent language cookie.
    The answer depends only on the cookie, the Accept-Language header and the settings, so it
    is kept per (cookie, header) pair, with the code `get_language()` reads back once it is active
    (bounded; cleared when the language settings change, as Django clears its own caches). Same
    language, same `Vary` and `Content-Language` headers; with `i18n_patterns` in use, Django's
    own path runs unchanged."""

    _languages: dict[tuple[str | None, str], tuple[str, str]] = {}  # -> (language, its code)
    _MAX_CACHED = 1000

    @staticmethod
    def _prefixed(request) -> bool:
        return is_language_prefix_patterns_used(getattr(request, "urlconf", settings.ROOT_URLCONF))[
            0
        ]

    def process_request(self, request):
        if self._prefixed(request):
            return super().process_request(request)
        key = (
            request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME),
            request.META.get("HTTP_ACCEPT_LANGUAGE", ""),
        )
        known = self._languages.get(key)
        if known is None:
            language = translation.get_language_from_request(request, check_path=False)
            translation.activate(language)
            # What get_language() reads back after activate(language): the same every time.
            known = (language, translation.get_language())
            if len(self._languages) < self._MAX_CACHED:
                self._languages[key] = known
        else:
            translation.activate(known[0])
        request.LANGUAGE_CODE = known[1]
        return None

    def process_response(self, request, response):
        if self._prefixed(request):
            return super().process_response(request, response)
        patch_vary_headers(response, ("Accept-Language",))
        response.headers.setdefault("Content-Language", translation.get_language())
        return response


@receiver(setting_changed)
def _forget_languages(*, setting: str, **kwargs) -> None:
    if setting in {
        "LANGUAGES",
        "LANGUAGE_CODE",
        "LANGUAGE_COOKIE_NAME",
        "LOCALE_PATHS",
        "USE_I18N",
    }:
        LocaleMiddleware._languages.clear()


class MessageMiddleware(DjangoMessageMiddleware):
    """Django's MessageMiddleware, minus its per-request storage under /api/: only portal views
    add messages (the API answers in JSON and never renders them), and without the storage
    `get_messages()` reads as empty and `process_response` has nothing to save."""

    def process_request(self, request):
        if not request.path_info.startswith(EdgeValidationMiddleware.API_PREFIX):
            super().process_request(request)


class UserLanguageMiddleware:
    """For a signed-in portal user: their chosen language (profile) beats the browser's
    Accept-Language, which LocaleMiddleware applied, and their current tenant's time zone is the
    one every date on the page is shown in. The API keeps Accept-Language and UTC: a service's
    answers follow its own request, never whoever created its key."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        portal = not request.path.startswith(("/api/", "/static/"))
        if not (portal and user is not None and user.is_authenticated):
            return self.get_response(request)
        from django.utils import timezone, translation

        from core.localtime import tenant_zone
        from core.scoping import resolve_membership
        from tenants.services import user_language

        language = user_language(user)
        if language and language != getattr(request, "LANGUAGE_CODE", None):
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        # The admin works across tenants: its dates stay in UTC.
        membership = (
            None
            if request.path.startswith("/admin/")
            else (resolve_membership(request, portal=True))
        )
        if membership is None:
            return self.get_response(request)
        timezone.activate(tenant_zone(membership.tenant))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
