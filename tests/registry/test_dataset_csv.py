"""Training-data CSV uploads: malformed quoting is refused with the line it starts on."""

from __future__ import annotations

import pytest

from registry.errors import DatasetImportError
from registry.models import TrainingSample
from registry.services.datasets import dataset_upload


def test_an_unterminated_quote_is_refused_naming_its_line_not_a_missing_label(topics):
    # Line 3 opens a quote that never closes: a lenient reader made lines 3-5 one text with no
    # label ("row 5: At least one label is required").
    content = (
        b"text,labels\n"
        b"Shares fell after the results,news.business\n"
        b'"The striker scored twice,news.sport\n'
        b"New phone chips ship,news.tech\n"
        b"Markets rallied,news.business\n"
    )
    with pytest.raises(DatasetImportError) as exc:
        dataset_upload(label_set=topics, tenant=None, filename="d.csv", content=content)
    errors = [e.as_dict() for e in exc.value.errors]
    assert [(e["row"], e["message"]) for e in errors] == [
        (3, "Unterminated quote starting on line 3.")
    ]
    assert TrainingSample.objects.dangerously_unscoped().count() == 0


def test_rows_are_numbered_by_the_line_a_multi_line_record_starts_on(topics):
    content = (
        b"text,labels\n"
        b"Shares fell,news.business\n"  # line 2
        b'"A long article with no label\nover two lines",\n'  # lines 3-4
    )
    with pytest.raises(DatasetImportError) as exc:
        dataset_upload(label_set=topics, tenant=None, filename="d.csv", content=content)
    assert [(e.row, e.field) for e in exc.value.errors] == [(3, "labels")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Shares\x00 fell", "The text contains a NUL character."),
        ("   ", "The text is empty or only whitespace."),
    ],
)
def test_training_texts_are_checked_like_tagged_texts(topics, text, message):
    # The same validator as sync, stream and batch items (core.texts), NUL included.
    lines = ["text,labels", "Markets rallied,news.business", f"{text},news.business"]
    with pytest.raises(DatasetImportError) as exc:
        dataset_upload(
            label_set=topics, tenant=None, filename="d.csv", content="\n".join(lines).encode()
        )
    assert [(e.row, e.field, e.message) for e in exc.value.errors] == [(3, "text", message)]
    assert TrainingSample.objects.dangerously_unscoped().count() == 0
