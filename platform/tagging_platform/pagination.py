"""The one paginator of the API: `?limit=&offset=`, bounded so that SQL never sees a wild value.

DRF's LimitOffsetPagination silently ignores a bad `limit` and passes any `offset` to SQL
(`?offset=9223372036854775808` is a DataError); here both are checked and a bad value is a 400.
"""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

from core.edge import INT64_MAX, query_int

MAX_LIMIT = 1000


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT
    # OFFSET takes a bigint; leave room for offset + limit.
    max_offset = INT64_MAX - MAX_LIMIT

    def get_limit(self, request):
        value = query_int(
            request.query_params.get(self.limit_query_param),
            name=self.limit_query_param,
            minimum=1,
            maximum=self.max_limit,
        )
        return self.default_limit if value is None else value

    def get_offset(self, request):
        value = query_int(
            request.query_params.get(self.offset_query_param),
            name=self.offset_query_param,
            minimum=0,
            maximum=self.max_offset,
        )
        return value or 0

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit},
            self.offset_query_param: {"minimum": 0, "maximum": self.max_offset},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
