"""Closing the nullable class (issue 11, point 11): a response field whose value comes through a
nullable column or relation is declared nullable, so the schema says `null` can come back."""

from __future__ import annotations

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.urls import get_resolver
from rest_framework import serializers

PROJECT = ("tenants", "taxonomy", "registry", "serving", "monitoring", "portal", "tagging_platform")


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _model_serializers():
    get_resolver().url_patterns  # noqa: B018 - imports every API module and its serializers
    return sorted(
        {
            c
            for c in _all_subclasses(serializers.ModelSerializer)
            if c.__module__.startswith(PROJECT)
        },
        key=lambda c: f"{c.__module__}.{c.__qualname__}",
    )


def _nullable_along(model, attrs: list[str]) -> bool:
    for attr in attrs:
        try:
            field = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return False  # a property or method: its type hint is the schema's business
        if getattr(field, "null", False):
            return True
        if not field.is_relation:
            return False
        model = field.related_model
    return False


def test_the_walk_finds_the_response_serializers():
    names = {c.__name__ for c in _model_serializers()}
    assert {"NeedSerializer", "LabelSerializer", "VersionSerializer", "AliasEventSerializer"} <= (
        names
    )


@pytest.mark.parametrize("serializer_class", _model_serializers(), ids=lambda c: c.__name__)
def test_fields_from_nullable_columns_are_declared_nullable(serializer_class):
    model = serializer_class.Meta.model
    for name, field in serializer_class().fields.items():
        if isinstance(field, serializers.SerializerMethodField | serializers.ListSerializer):
            continue
        attrs = (field.source or name).split(".")
        if attrs == ["*"]:
            continue
        if _nullable_along(model, attrs):
            assert field.allow_null, f"{serializer_class.__name__}.{name} can be null"
