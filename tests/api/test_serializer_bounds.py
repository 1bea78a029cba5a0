"""Closing the out-of-range class (issue 11): every integer a client can write has bounds that
its database column can hold, so `size_budget_kb: 1099511627776` is a 400, never a DataError."""

from __future__ import annotations

import pytest
from django.urls import get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from core.edge import INT64_MAX, INT64_MIN, db_int_bounds

PROJECT = ("tenants", "taxonomy", "registry", "serving", "monitoring", "portal", "tagging_platform")


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _request_component_names() -> set[str]:
    """Components the schema uses in request bodies (the serializers clients write to)."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    seen: set[str] = set()

    def refs(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen:
                    seen.add(name)
                    refs(components.get(name, {}))
            for value in node.values():
                refs(value)
        elif isinstance(node, list):
            for value in node:
                refs(value)

    for item in schema["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                refs(operation.get("requestBody", {}))
    return {name.removesuffix("Request").removeprefix("Patched") for name in seen}


def _project_serializers():
    get_resolver().url_patterns  # noqa: B018 - imports every API module and its serializers
    names = _request_component_names()
    return sorted(
        {
            c
            for c in _all_subclasses(serializers.Serializer)
            if c.__module__.startswith(PROJECT) and c.__name__.removesuffix("Serializer") in names
        },
        key=lambda c: f"{c.__module__}.{c.__qualname__}",
    )


def _writable_integer_fields(serializer, prefix=""):
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        path = f"{prefix}{name}"
        while isinstance(field, serializers.ListField | serializers.DictField):
            field = field.child
        if isinstance(field, serializers.ListSerializer):
            field = field.child
        if isinstance(field, serializers.Serializer):
            yield from _writable_integer_fields(field, prefix=f"{path}.")
        elif isinstance(field, serializers.IntegerField):
            yield path, field, serializer


def test_the_walk_finds_the_project_serializers():
    names = {c.__name__ for c in _project_serializers()}
    assert {
        "NeedWriteSerializer",
        "NeedUpdateSerializer",
        "TrainingRunCreateSerializer",
        "AliasMoveSerializer",
        "TenantSerializer",
        "FeedbackEventSerializer",
    } <= names


@pytest.mark.parametrize("serializer_class", _project_serializers(), ids=lambda c: c.__name__)
def test_every_writable_integer_is_bounded_by_its_column(serializer_class):
    serializer = serializer_class()
    model = getattr(getattr(serializer_class, "Meta", None), "model", None)
    for path, field, owner in _writable_integer_fields(serializer):
        assert field.min_value is not None and field.max_value is not None, path
        assert field.min_value >= INT64_MIN and field.max_value <= INT64_MAX, path
        source = field.source or path
        if owner is serializer and model is not None and "." not in source:
            try:
                bounds = db_int_bounds(model, source)
            except Exception:  # not a model column (a computed or plain field)
                continue
            assert field.max_value <= bounds["max_value"], (path, field.max_value, bounds)
            assert field.min_value >= bounds["min_value"], (path, field.min_value, bounds)
