"""The one validator of item texts and ids (sync, stream, batch and training data use it)."""

from __future__ import annotations

import pytest

from core.texts import MAX_ID_CHARS, item_id_problem, text_problem


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (None, "invalid"),
        (42, "invalid"),
        ("x" * 21, "text_too_long"),
        ("", "empty_text"),
        (" \n\t", "empty_text"),
        ("goal\x00 scored", "invalid"),
        ("bad \ud800 text", "invalid_utf8"),
    ],
)
def test_unusable_texts_are_named_with_the_apis_error_codes(text, code):
    assert text_problem(text, max_chars=20)[0] == code


def test_a_usable_text_has_no_problem():
    assert text_problem("Ten chars!", max_chars=10) is None


@pytest.mark.parametrize("item_id", [None, 7, "", "  ", "x" * (MAX_ID_CHARS + 1), "b\x00d"])
def test_unusable_ids(item_id):
    assert item_id_problem(item_id)


def test_a_usable_id_has_no_problem():
    assert item_id_problem("x" * MAX_ID_CHARS) is None
