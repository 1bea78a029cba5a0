"""DRF's JSON parser on top of the edge: the body was decoded and checked once, by the middleware."""

from __future__ import annotations

from rest_framework.parsers import JSONParser

_MISSING = object()


class EdgeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        django_request = getattr(request, "_request", request)
        data = getattr(django_request, "_edge_json", _MISSING)
        if data is not _MISSING:
            return data
        # Outside the middleware (a view called directly in a test): the same checks here.
        # (Imported late: DRF loads parsers while tagging_platform.errors imports DRF.)
        from core import edge

        return edge.decode_json(stream.read() if stream is not None else b"")
