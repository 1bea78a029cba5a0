"""A record's problem about a taxonomy label is a reference like any other: the label cannot be
deleted under it (the reference is PROTECT), and the refusal says why instead of failing in the
database. Taxonomy finds such references from Django's model registry, importing no app above it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from records import services
from taxonomy import services as taxonomy_services
from taxonomy.models import Label


def test_a_problem_about_a_label_keeps_it_and_the_refusal_names_it(live_need, alice):
    label = taxonomy_services.label_create(key="ops.weather", name_en="Weather")
    assert not any(taxonomy_services.label_usage(label=label).values())
    services.item_create(
        need=live_need,
        kind="problem",
        title="Weather items mis-tagged",
        body="",
        author=alice,
        label="ops.weather",
    )
    assert taxonomy_services.label_usage(label=label)["records.section.label"] == 1
    with pytest.raises(ValidationError) as exc:
        taxonomy_services.label_delete(label=label)
    assert "sections: 1" in exc.value.message_dict["label"][0]
    assert Label.objects.filter(pk=label.pk).exists()


def test_an_unused_label_is_deleted(live_need):
    label = taxonomy_services.label_create(key="ops.unused", name_en="Unused")
    taxonomy_services.label_delete(label=label)
    assert not Label.objects.filter(key="ops.unused").exists()
