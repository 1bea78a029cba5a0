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
from typing import Any, TextIO

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


def records(source: str | TextIO) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells) for every non-blank record, header included.

    `source` is the whole text, or a text stream opened with `newline=""` that is read one
    physical line at a time (an upload is never read whole). Raises CsvFormatError for a
    malformed file, naming an unterminated quote's first line; for a stream, that needs one more
    pass, so the stream must be seekable.
    """
    stream = io.StringIO(source, newline="") if isinstance(source, str) else source
    reader = csv.reader(_bounded_lines(stream), strict=True)
    ended = 0  # the physical line the previous record ended on
    try:
        for cells in reader:
            start, ended = ended + 1, reader.line_num
            if cells and any(cell.strip() for cell in cells):
                yield start, cells
    except csv.Error as exc:
        stream.seek(0)
        line = unterminated_quote_line_in(iter(lambda: stream.read(CHUNK_CHARS), ""))
        if line is not None:
            raise CsvFormatError(line, f"Unterminated quote starting on line {line}.") from None
        raise CsvFormatError(
            ended + 1, f"Malformed CSV in the record starting on line {ended + 1}: {exc}."
        ) from None


#: Characters read at a time when a stream is scanned; and the longest physical line a CSV reader
#: is given (the csv module's own field limit is 131,072 characters; a line this long is refused
#: as malformed, so a file without line breaks is never held in memory whole).
CHUNK_CHARS = 1 << 16
MAX_LINE_CHARS = 4 << 20


def _bounded_lines(stream: TextIO) -> Iterator[str]:
    while line := stream.readline(MAX_LINE_CHARS):
        if len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            raise csv.Error(f"a line longer than {MAX_LINE_CHARS} characters")
        yield line


def unterminated_quote_line(text: str) -> int | None:
    """The line of the first quoted field that never closes properly, else None.

    A quote opens a field only at its start (after a comma or a line break); a closing quote
    must be followed by a comma, a line break or the end of the file. A quote closed by anything
    else, or never closed, means the opening quote was unterminated: the "closing" one found
    was really the opening quote of some later field.
    """
    return unterminated_quote_line_in([text])


def unterminated_quote_line_in(pieces: Iterable[str]) -> int | None:
    """`unterminated_quote_line` over a text given in pieces (a file read in chunks): a state
    machine that holds one piece and the last character of the one before, never the file."""
    line = 1  # the line the scan has reached
    opened_on = 0  # the line of the open quote while inside a quoted field, else 0
    prev = "\n"  # the character before the current one ("start of file" counts as a break)
    pending_quote = False  # inside a field, a quote was the last character of the last piece
    for piece in pieces:
        if not piece:
            continue
        i = 0
        if pending_quote:
            pending_quote = False
            if piece[0] == '"':
                i = 1  # an escaped quote
            elif piece[0] in ",\r\n":
                opened_on = 0
            else:
                return opened_on
        n = len(piece)
        while i < n:
            if opened_on:
                c = piece.find('"', i)
                if c < 0:
                    line += _breaks(piece, i, n, prev)
                    prev = piece[-1]
                    break
                line += _breaks(piece, i, c, prev)
                if c + 1 == n:
                    pending_quote, prev = True, '"'
                    break
                after = piece[c + 1]
                if after == '"':
                    i, prev = c + 2, '"'
                elif after in ",\r\n":
                    opened_on, i, prev = 0, c + 1, '"'
                else:
                    return opened_on
            else:
                q = piece.find('"', i)
                if q < 0:
                    line += _breaks(piece, i, n, prev)
                    prev = piece[-1]
                    break
                line += _breaks(piece, i, q, prev)
                before = piece[q - 1] if q else prev
                i, prev = q + 1, '"'
                if before in ",\r\n":
                    opened_on = line
    if pending_quote:
        return None  # a quote closed by the end of the file
    return opened_on or None


def _breaks(piece: str, start: int, end: int, prev: str) -> int:
    """Line breaks in piece[start:end] (\\r\\n, \\r or \\n), given the character before it."""
    part = piece[start:end]
    count = part.count("\n") + part.count("\r") - part.count("\r\n")
    if part.startswith("\n") and (piece[start - 1] if start else prev) == "\r":
        count -= 1  # the \\n of a \\r\\n whose \\r was counted already
    return count
