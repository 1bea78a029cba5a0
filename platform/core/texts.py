"""One check of the texts (and item ids) the platform tags and trains on.

Sync tagging and the stream (`serving.validation`), batch files (`serving.batch_io`) and training
data uploads (`registry.datasets`) report problems in their own shapes (field paths, file lines,
row errors); what counts as a problem is decided here, once.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from core.edge import string_problem

#: Longest item id (sync, stream and batch items).
MAX_ID_CHARS = 200

# Both checks below first test the common case, a clean ASCII string, in one expression (no call
# out, no encoded copy): ASCII (`isascii` reads a flag; such a string holds no surrogate), short
# enough, no NUL, non-blank (`strip()` is empty exactly when the string is empty or `isspace()`).
# Anything else, non-ASCII text included, takes the full path, which says what is wrong.


def text_problem(text: object, *, max_chars: int) -> tuple[str, str] | None:
    """(error code, message) when `text` cannot be tagged or stored, else None. The codes, as the
    API names them: invalid, text_too_long, empty_text, invalid_utf8."""
    if (
        type(text) is str
        and text.isascii()
        and 0 < len(text) <= max_chars
        and "\x00" not in text
        and not text.isspace()
    ):
        return None
    if not isinstance(text, str):
        return "invalid", _("A text string is required.")
    if len(text) > max_chars:
        return "text_too_long", _("The text has %(length)s characters; at most %(limit)s.") % {
            "length": len(text),
            "limit": max_chars,
        }
    if not text.strip():
        return "empty_text", _("The text is empty or only whitespace.")
    problem = string_problem(text)  # PostgreSQL text holds no NUL; a lone surrogate is no UTF-8
    if problem:
        return ("invalid" if "\x00" in text else "invalid_utf8"), _("The text %(problem)s.") % {
            "problem": problem
        }
    return None


def item_id_problem(item_id: object) -> str | None:
    """Why `item_id` (already a string if the input allows numbers) is not a usable id, or None."""
    if (
        type(item_id) is str
        and item_id.isascii()
        and 0 < len(item_id) <= MAX_ID_CHARS
        and "\x00" not in item_id
        and not item_id.isspace()
    ):
        return None
    if not isinstance(item_id, str) or not item_id.strip():
        return _("A non-empty string id is required.")
    if len(item_id) > MAX_ID_CHARS:
        return _("The id has %(length)s characters; at most %(limit)s.") % {
            "length": len(item_id),
            "limit": MAX_ID_CHARS,
        }
    problem = string_problem(item_id)
    if problem:
        return _("The id %(problem)s.") % {"problem": problem}
    return None
