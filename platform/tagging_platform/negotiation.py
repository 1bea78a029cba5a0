"""DRF content negotiation with a shortcut for the JSON-only API views.

Every DRF view negotiates a renderer on every request, even one that answers with a plain
`HttpResponse` (sync tagging): DRF reads the Accept header through `request.headers` (which copies
every header of the request once), parses each media type and ranks them. When every renderer the
view offers is `application/json` and the client asked for nothing narrower than what DRF would
answer with the first renderer anyway (no Accept header, or one of `ACCEPTS_FIRST_JSON`, exactly),
the answer is known: the first renderer, as "application/json". Anything else (another Accept, a
`?format=` or `.json` suffix, a browsable-API view, a 406) takes DRF's own path unchanged.
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

JSON = "application/json"
#: Accept headers for which DRF picks the first renderer, answering "application/json", whenever
#: every renderer is application/json (checked in tests/api/test_negotiation.py against DRF).
ACCEPTS_FIRST_JSON = frozenset({JSON, "*/*", "application/*"})


class JsonFastContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        if not format_suffix and renderers:
            meta = request._request.META
            accept = meta.get("HTTP_ACCEPT")
            if (
                (accept is None or accept in ACCEPTS_FIRST_JSON)
                and not self._format_override(request, meta)
                and all(renderer.media_type == JSON for renderer in renderers)
            ):
                return renderers[0], JSON
        return super().select_renderer(request, renderers, format_suffix)

    def _format_override(self, request, meta) -> bool:
        # Only a query string can carry `?format=`; without one, its QueryDict is never built.
        param = self.settings.URL_FORMAT_OVERRIDE
        return bool(param and meta.get("QUERY_STRING") and request.query_params.get(param))
