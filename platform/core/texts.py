"""One check of the texts (and item ids) the platform tags and trains on.

Sync tagging and the stream (`serving.validation`), batch files (`serving.batch_io`) and training
data uploads (`registry.datasets`) report problems in their own shapes (field paths, file lines,
row errors); what counts as a problem is decided here, once.
"""

from __future__ import annotations

from core.edge import string_problem

#: Longest item id (sync, stream and batch items).
MAX_ID_CHARS = 200


def text_problem(text: object, *, max_chars: int) -> tuple[str, str] | None:
    """(error code, message) when `text` cannot be tagged or stored, else None. The codes, as the
    API names them: invalid, text_too_long, empty_text, invalid_utf8."""
    if not isinstance(text, str):
        return "invalid", "A text string is required."
    if len(text) > max_chars:
        return "text_too_long", f"The text has {len(text)} characters; at most {max_chars}."
    if not text.strip():
        return "empty_text", "The text is empty or only whitespace."
    problem = string_problem(text)  # PostgreSQL text holds no NUL; a lone surrogate is no UTF-8
    if problem:
        return ("invalid" if "\x00" in text else "invalid_utf8"), f"The text {problem}."
    return None


def item_id_problem(item_id: object) -> str | None:
    """Why `item_id` (already a string if the input allows numbers) is not a usable id, or None."""
    if not isinstance(item_id, str) or not item_id.strip():
        return "A non-empty string id is required."
    if len(item_id) > MAX_ID_CHARS:
        return f"The id has {len(item_id)} characters; at most {MAX_ID_CHARS}."
    problem = string_problem(item_id)
    if problem:
        return f"The id {problem}."
    return None
