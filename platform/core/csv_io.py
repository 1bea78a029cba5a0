"""CSV in and out, with the platform's two rules for every CSV it reads or writes.

Reading: a malformed file is refused with the line where the problem starts, never swallowed.
The usual culprit is an unterminated quote, which a lenient reader turns into one field holding
the rest of the file; the error then names the line where that quote opened. Records carry the
line they start on (a quoted field may span lines), so row errors point at the right line.

Writing: a cell a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or
CR, as OWASP's "CSV injection" advice lists) gets a leading `'`, so an uploaded id such as
`=HYPERLINK(...)` comes back as text. Every CSV the platform writes goes through `SafeWriter`
(a test keeps it so).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils.translation import gettext as _

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """The cell as a spreadsheet will show it as text (strings only; numbers pass through)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` whose cells are neutralised against formula injection."""

    def __init__(self, stream, **fmtparams) -> None:
        self._writer = csv.writer(stream, **fmtparams)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class CsvFormatError(ValueError):
    """The file is not well-formed CSV; `line` is where the problem starts (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells) for every non-blank record, header included.

    Raises CsvFormatError for a malformed file, naming an unterminated quote's first line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    ended = 0  # the physical line the previous record ended on
    try:
        for cells in reader:
            start, ended = ended + 1, reader.line_num
            if cells and any(cell.strip() for cell in cells):
                yield start, cells
    except csv.Error as exc:
        line = unterminated_quote_line(text)
        if line is not None:
            raise CsvFormatError(
                line, _("Unterminated quote starting on line %(line)s.") % {"line": line}
            ) from None
        raise CsvFormatError(
            ended + 1,
            _("Malformed CSV in the record starting on line %(ended)s: %(exc)s.")
            % {"ended": ended + 1, "exc": exc},
        ) from None


def _line_of(text: str, index: int) -> int:
    head = text[:index]
    return head.count("\n") + head.count("\r") - head.count("\r\n") + 1


def unterminated_quote_line(text: str) -> int | None:
    """The line of the first quoted field that never closes properly, else None.

    A quote opens a field only at its start (after a comma or a line break); a closing quote
    must be followed by a comma, a line break or the end of the file. A quote closed by anything
    else, or never closed, means the opening quote was unterminated: the "closing" one found
    was really the opening quote of some later field.
    """
    pos = 0
    while True:
        q = text.find('"', pos)
        if q < 0:
            return None
        if q and text[q - 1] not in ",\r\n":
            pos = q + 1  # a literal quote inside an unquoted field
            continue
        j = q + 1
        while True:
            c = text.find('"', j)
            if c < 0:
                return _line_of(text, q)
            if text.startswith('""', c):
                j = c + 2  # an escaped quote inside the field
                continue
            if text[c + 1 : c + 2] in ("", ",", "\r", "\n"):
                pos = c + 1
                break
            return _line_of(text, q)
