"""Batch input parsing (CSV or JSONL uploads) and result rendering (CSV or JSONL downloads).

An upload is parsed as a stream: Django's upload handlers spool the body to a temporary file
(in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE), then one pass reads it line by line, checks every
row and writes the valid rows to a second temporary file, already in PostgreSQL's COPY text
format (`StagedRows`). Only a file that passed every check becomes a job: a refused file leaves
nothing in the database. What the web process holds while it parses does not grow with the file,
except 16 bytes per row for finding repeated ids (a 64-bit hash and a line number per row).
"""

from __future__ import annotations

import codecs
import io
import json
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from typing import IO

from django.conf import settings
from django.utils.translation import gettext as _

from core import csv_io
from core.errors import DomainError
from core.texts import item_id_problem, text_problem
from serving.ranked import ranked_scores, scores_mapping, top

MAX_REPORTED_ERRORS = 20
#: Bytes read from the upload at a time, and the size of a block of COPY data.
READ_BYTES = 1 << 16
COPY_BLOCK_BYTES = 1 << 20
_BOM = codecs.BOM_UTF8


class StagedRows:
    """Validated (id, text) rows in a temporary file, one line per row in COPY text format:
    `position<TAB>id<TAB>text`, with backslash, tab, CR and LF escaped (so a raw LF only ends a
    row). `offsets[i]` is where row i * chunk_size starts, so a slice of whole chunks can be
    copied without reading what comes before it."""

    def __init__(self, *, chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self.count = 0
        self.offsets = array("q", [0])
        self._file = tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR)  # noqa: SIM115
        self._pending: list[str] = []
        self._pending_chars = 0
        self._finished = False

    def __len__(self) -> int:
        return self.count

    def add(self, item_id: str, text: str) -> None:
        self._pending.append(f"{self.count}\t{_copy_escape(item_id)}\t{_copy_escape(text)}\n")
        self._pending_chars += len(text)
        self.count += 1
        if self.count % self.chunk_size == 0:
            self._write()
            self.offsets.append(self._file.tell())
        elif self._pending_chars > READ_BYTES:
            self._write()

    def _write(self) -> None:
        if self._pending:
            self._file.write("".join(self._pending).encode("utf-8"))
            self._pending, self._pending_chars = [], 0

    def finish(self) -> StagedRows:
        if self._finished:
            return self
        self._finished = True
        self._write()
        if self.count % self.chunk_size:
            self.offsets.append(self._file.tell())
        self._file.flush()
        return self

    def copy_blocks(self, start: int, end: int, *, prefix: bytes) -> Iterator[bytes]:
        """COPY data for rows [start, end) (chunk boundaries), each line led by `prefix`."""
        begin = self.offsets[start // self.chunk_size]
        stop_at = -(-end // self.chunk_size)  # the chunk boundary at or after `end`
        stop = self.offsets[min(stop_at, len(self.offsets) - 1)]
        self._file.seek(begin)
        remaining, carry = stop - begin, b""
        while remaining > 0:
            block = self._file.read(min(COPY_BLOCK_BYTES, remaining))
            if not block:
                break
            remaining -= len(block)
            data = carry + block
            cut = data.rfind(b"\n") + 1
            carry, whole = data[cut:], data[:cut]
            if whole:
                yield prefix + whole[:-1].replace(b"\n", b"\n" + prefix) + b"\n"

    def rows(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, str, str]]:
        """(position, id, text) of rows [start, end), read back from the file."""
        end = self.count if end is None else end
        first = start - start % self.chunk_size
        for block in self.copy_blocks(first, end, prefix=b""):
            for line in block.decode("utf-8").split("\n")[:-1]:
                position, item_id, text = line.split("\t")
                if start <= int(position) < end:
                    yield int(position), _copy_unescape(item_id), _copy_unescape(text)

    def close(self) -> None:
        self._file.close()


def stage_rows(rows: Iterable[tuple[str, str]]) -> StagedRows:
    """Stage rows that were checked elsewhere (stored items, a schedule's selection)."""
    staged = StagedRows(chunk_size=settings.BATCH_CHUNK_SIZE)
    for item_id, text in rows:
        staged.add(item_id, text)
    return staged.finish()


def _copy_escape(value: str) -> str:
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    return value


_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _copy_unescape(value: str) -> str:
    if "\\" not in value:
        return value
    out, i = [], 0
    while (j := value.find("\\", i)) >= 0:
        out.append(value[i:j])
        out.append(_UNESCAPE[value[j + 1]])
        i = j + 2
    out.append(value[i:])
    return "".join(out)


def _format_of(filename: str, raw: IO[bytes]) -> str:
    name = filename.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    # No telling extension: JSONL if the first non-blank character opens an object.
    decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")
    raw.seek(0)
    while block := raw.read(READ_BYTES):
        head = decoder.decode(block).lstrip()
        if head:
            return "jsonl" if head.startswith("{") else "csv"
    return "csv"


class _Borrowed(io.RawIOBase):
    """The upload's own file object, read through a buffer that does not close it."""

    def __init__(self, file) -> None:
        self._file = file

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


def _binary(upload) -> IO[bytes]:
    if hasattr(upload, "temporary_file_path"):
        return open(upload.temporary_file_path(), "rb")  # noqa: SIM115
    upload.seek(0)
    return io.BufferedReader(_Borrowed(upload.file), READ_BYTES)


def parse_upload(upload) -> StagedRows:
    """The uploaded file's valid rows, staged, or a DomainError naming the first bad lines."""
    limit = settings.UPLOAD_MAX_BYTES
    if upload.size > limit:
        raise DomainError(
            "upload_too_large",
            _("The file is %(size)s bytes; at most %(limit)s bytes are accepted.")
            % {"size": upload.size, "limit": limit},
            status_code=413,
        )
    raw = _binary(upload)
    staged = StagedRows(chunk_size=settings.BATCH_CHUNK_SIZE)
    try:
        fmt = _format_of(upload.name or "", raw)
        raw.seek(0)
        # newline="" keeps CSV's line ends for the csv module; JSONL lines end at LF only (a JSON
        # string may hold U+2028 or a CR unescaped, and errors must name an editor's line).
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="" if fmt == "csv" else "\n")
        checker = _Checker(staged)
        try:
            rows = _parse_jsonl(text) if fmt == "jsonl" else _parse_csv(text)
            for number, item_id, text_value in rows:
                # After MAX_REPORTED_ERRORS refused rows the rest is only read, so that a file
                # that is malformed or not UTF-8 further down is still called so.
                if not checker.full:
                    checker.add(number, item_id, text_value)
        except UnicodeDecodeError:
            line, start = _utf8_error_at(raw)
            raise DomainError(
                "invalid_utf8",
                _("The file is not valid UTF-8 (line %(line)s, byte %(start)s).")
                % {"line": line, "start": start},
                fields={f"line {line}": [_("Not valid UTF-8.")]},
            ) from None
        checker.finish()
    except BaseException:
        staged.close()
        raise
    finally:
        raw.close()
    return staged


def _utf8_error_at(raw: IO[bytes]) -> tuple[int, int]:
    """(line, byte offset after any BOM) of the first byte that is not UTF-8: a second pass,
    taken only for a refused file."""
    raw.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines, first = 0, 0, True
    while True:
        block = raw.read(READ_BYTES)
        if first:
            block, first = block.removeprefix(_BOM), False
        held = decoder.getstate()[0]
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            before = (held + block)[: exc.start]
            return lines + before.count(b"\n") + 1, offset - len(held) + exc.start
        if not block:
            return lines + 1, offset
        offset += len(block)
        lines += block.count(b"\n")


def _parse_jsonl(text: IO[str]) -> Iterator[tuple[int, object, object]]:
    # A line may hold the longest text with every character escaped (\uXXXX), and an id.
    longest = settings.TAG_MAX_TEXT_CHARS * 6 + 64 * 1024
    number = 0
    while line := text.readline(longest):
        number += 1
        if not line.endswith("\n"):
            if len(line) >= longest:
                raise DomainError(
                    "text_too_long",
                    _("Line %(number)s is longer than %(longest)s characters.")
                    % {"number": number, "longest": longest},
                    status_code=413,
                    fields={f"line {number}": [_("Line too long.")]},
                )
        else:
            line = line[:-1]
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise DomainError(
                "malformed_json",
                _("Line %(number)s is not valid JSON: %(exc)s.") % {"number": number, "exc": exc},
                fields={f"line {number}": [_("Not valid JSON.")]},
            ) from None
        if not isinstance(obj, dict):
            raise DomainError(
                "invalid",
                _('Line %(number)s must be an object {"id", "text"}.') % {"number": number},
                fields={f"line {number}": [_("Expected an object.")]},
            )
        yield number, obj.get("id", number), obj.get("text")


def _parse_csv(text: IO[str]) -> Iterator[tuple[int, object, object]]:
    """(line the record starts on, id, text) rows; the header names the `id` and `text` columns."""
    found = csv_io.records(text)
    try:
        try:
            header_line, header = next(found)
        except StopIteration:
            raise DomainError(
                "invalid", _("The file has no rows."), fields={"file": [_("Empty.")]}
            ) from None
        columns = [name.strip().lower() for name in header]
        if "text" not in columns:
            raise DomainError(
                "invalid",
                _("The CSV needs a header row with a 'text' column (and optionally 'id')."),
                fields={f"line {header_line}": [_("Missing 'text' column.")]},
            )
        text_at = columns.index("text")
        id_at = columns.index("id") if "id" in columns else None
        for count, (number, cells) in enumerate(found, start=1):
            item_id = cells[id_at] if id_at is not None and id_at < len(cells) else ""
            text_cell = cells[text_at] if text_at < len(cells) else None
            yield number, item_id or str(count), text_cell
    except csv_io.CsvFormatError as exc:
        raise DomainError(
            "malformed_csv", exc.message, fields={f"line {exc.line}": [exc.message]}
        ) from None


class _Checker:
    """Checks rows as they stream past and stages the valid ones. Repeated ids are found at the
    end from a 64-bit hash per row (sorted with numpy), and confirmed on the ids themselves."""

    def __init__(self, staged: StagedRows) -> None:
        self.staged = staged
        self.max_chars = settings.TAG_MAX_TEXT_CHARS
        self.seen = 0
        self.errors: list[tuple[int, str, str]] = []  # (line, code, message) in file order
        self.hashes = array("q")
        self.lines = array("q")

    @property
    def full(self) -> bool:
        """MAX_REPORTED_ERRORS rows were refused: the rows after them cannot change the report."""
        return len(self.errors) >= MAX_REPORTED_ERRORS

    def add(self, number: int, item_id: object, text: object) -> None:
        self.seen += 1
        if isinstance(item_id, int | float) and not isinstance(item_id, bool):
            item_id = str(item_id)
        problem = item_id_problem(item_id)
        if problem:
            self.errors.append((number, "invalid", problem))
        elif found := text_problem(text, max_chars=self.max_chars):
            self.errors.append((number, *found))
        else:
            self.hashes.append(hash(item_id))
            self.lines.append(number)
            self.staged.add(item_id, text)  # type: ignore[arg-type]

    def finish(self) -> None:
        if not self.seen:
            raise DomainError("invalid", _("The file has no rows."), fields={"file": [_("Empty.")]})
        duplicates = self._duplicates()
        if not self.errors and not duplicates:
            self.staged.finish()
            return
        last = self.errors[-1][0] if len(self.errors) >= MAX_REPORTED_ERRORS else None
        found = sorted(
            [(line, code, message, None) for line, code, message in self.errors]
            + [
                (
                    line,
                    "duplicate_ids",
                    f"Duplicate id '{item_id}' (first on line {first}).",
                    (item_id, first),
                )
                for line, item_id, first in duplicates
                if last is None or line < last
            ]
        )[:MAX_REPORTED_ERRORS]
        errors = {f"line {line}": [message] for line, _code, message, _dup in found}
        code = found[0][1]
        status = 413 if code == "text_too_long" else 400
        message = f"{len(errors)} bad line(s) in the file."
        if code == "duplicate_ids":
            repeated: dict[str, list[int]] = {}
            for line, _code, _message, dup in found:
                if dup is not None:
                    repeated.setdefault(dup[0], [dup[1]]).append(line)
            named = "; ".join(
                f"'{item_id}' (lines {', '.join(map(str, lines))})"
                for item_id, lines in repeated.items()
            )
            message = f"Item ids must be unique within a file. Repeated: {named}."
        raise DomainError(code, message, status_code=status, fields=errors)

    def _duplicates(self) -> list[tuple[int, str, int]]:
        """(line, id, line of its first occurrence) for every repeat of an id, in file order."""
        if len(self.hashes) < 2:
            return []
        import numpy as np

        hashes = np.frombuffer(self.hashes, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        ordered = hashes[order]
        same = ordered[1:] == ordered[:-1]
        if not same.any():
            return []
        suspects = set(order[1:][same].tolist()) | set(order[:-1][same].tolist())
        self.staged.finish()
        ids = {position: item_id for position, item_id, _text in self._rows_at(suspects)}
        first: dict[str, int] = {}
        out = []
        for position in sorted(ids):
            item_id, line = ids[position], self.lines[position]
            if item_id in first:
                out.append((line, item_id, first[item_id]))
            else:
                first[item_id] = line
        return out

    def _rows_at(self, positions: set[int]) -> Iterator[tuple[int, str, str]]:
        for row in self.staged.rows():
            if row[0] in positions:
                yield row


CSV_COLUMNS = ["id", "labels", "top_label", "top_score", "scores", "model", "model_version"]


def render_csv(
    rows: Iterable[dict], *, include_text: bool = True, with_names: bool = False
) -> Iterator[str]:
    """One line per result, in file order. `top_label`/`top_score` are the best-ranked score
    (also when no label passed the thresholds); `text` is the last column when included, so
    the other columns keep their places. Cells are neutralised against formula injection."""
    buffer = io.StringIO()
    writer = csv_io.SafeWriter(buffer)
    writer.writerow(
        CSV_COLUMNS + (["label_names"] if with_names else []) + (["text"] if include_text else [])
    )
    for row in rows:
        scores = ranked_scores(row["scores"])
        top_label, top_score = top(scores)
        cells = [
            row["id"],
            "|".join(row["labels"]),
            top_label,
            "" if top_score is None else top_score,
            json.dumps(scores_mapping(scores), ensure_ascii=False),
            row["model"],
            row["model_version"],
        ]
        if with_names:
            cells.append("|".join(row["label_names"]))
        if include_text:
            cells.append(row["text"])
        writer.writerow(cells)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def render_jsonl(
    rows: Iterable[dict], *, include_text: bool = True, with_names: bool = False
) -> Iterator[str]:
    """One JSON object per result: the sync API's item shape, plus `text` when included."""
    lines = []
    for row in rows:
        item = {
            "id": row["id"],
            "labels": row["labels"],
            "scores": scores_mapping(ranked_scores(row["scores"])),
            "model": {"name": row["model"], "version": row["model_version"]},
        }
        if with_names:
            item["label_names"] = row["label_names"]
        if include_text:
            item["text"] = row["text"]
        lines.append(json.dumps(item, ensure_ascii=False))
        if len(lines) >= 500:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"
