"""Batch input parsing (CSV or JSONL uploads) and result rendering (CSV or JSONL downloads)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.utils.translation import gettext as _

from core import csv_io
from core.errors import DomainError
from core.texts import item_id_problem, text_problem
from serving.ranked import ranked_scores, scores_mapping, top

MAX_REPORTED_ERRORS = 20


def _format_of(filename: str, text: str) -> str:
    name = filename.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def parse_upload(upload) -> list[tuple[str, str]]:
    """(id, text) rows of an uploaded file, or an DomainError naming the first bad lines."""
    limit = settings.UPLOAD_MAX_BYTES
    if upload.size > limit:
        raise DomainError(
            "upload_too_large",
            _("The file is %(size)s bytes; at most %(limit)s bytes are accepted.")
            % {"size": upload.size, "limit": limit},
            status_code=413,
        )
    raw = upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DomainError(
            "invalid_utf8",
            _("The file is not valid UTF-8 (line %(line)s, byte %(start)s).")
            % {"line": line, "start": exc.start},
            fields={f"line {line}": [_("Not valid UTF-8.")]},
        ) from None
    fmt = _format_of(upload.name or "", text)
    rows = _parse_jsonl(text) if fmt == "jsonl" else _parse_csv(text)
    return _validate(rows)


def _parse_jsonl(text: str) -> list[tuple[int, object, object]]:
    rows = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends unescaped, and
    # the line numbers in errors must be the ones an editor shows.
    for number, line in enumerate(text.split("\n"), start=1):
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
        rows.append((number, obj.get("id", number), obj.get("text")))
    return rows


def _parse_csv(text: str) -> list[tuple[int, object, object]]:
    """(line the record starts on, id, text) rows; the header names the `id` and `text` columns."""
    try:
        found = list(csv_io.records(text))
    except csv_io.CsvFormatError as exc:
        raise DomainError(
            "malformed_csv", exc.message, fields={f"line {exc.line}": [exc.message]}
        ) from None
    if not found:
        raise DomainError("invalid", _("The file has no rows."), fields={"file": [_("Empty.")]})
    header_line, header = found[0]
    columns = [name.strip().lower() for name in header]
    if "text" not in columns:
        raise DomainError(
            "invalid",
            _("The CSV needs a header row with a 'text' column (and optionally 'id')."),
            fields={f"line {header_line}": [_("Missing 'text' column.")]},
        )
    text_at = columns.index("text")
    id_at = columns.index("id") if "id" in columns else None
    rows = []
    for number, cells in found[1:]:
        item_id = cells[id_at] if id_at is not None and id_at < len(cells) else ""
        text_cell = cells[text_at] if text_at < len(cells) else None
        rows.append((number, item_id or str(len(rows) + 1), text_cell))
    return rows


def _validate(rows: list[tuple[int, object, object]]) -> list[tuple[str, str]]:
    if not rows:
        raise DomainError("invalid", _("The file has no rows."), fields={"file": [_("Empty.")]})
    max_chars = settings.TAG_MAX_TEXT_CHARS
    errors: dict[str, list[str]] = {}
    codes: list[str] = []
    first_line: dict[str, int] = {}
    repeated: dict[str, list[int]] = {}
    out = []
    for number, item_id, text in rows:
        key = f"line {number}"
        if isinstance(item_id, int | float) and not isinstance(item_id, bool):
            item_id = str(item_id)
        problem = item_id_problem(item_id)
        if problem:
            errors[key] = [problem]
            codes.append("invalid")
        elif problem := text_problem(text, max_chars=max_chars):
            code, message = problem
            errors[key] = [message]
            codes.append(code)
        if key not in errors:
            if item_id in first_line:
                # Two results with one id could not be told apart: refuse, as sync and stream do.
                errors[key] = [f"Duplicate id '{item_id}' (first on line {first_line[item_id]})."]
                codes.append("duplicate_ids")
                repeated.setdefault(item_id, [first_line[item_id]]).append(number)
            else:
                first_line[item_id] = number
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        out.append((item_id, text))
    if errors:
        code = codes[0]
        status = 413 if code == "text_too_long" else 400
        message = f"{len(errors)} bad line(s) in the file."
        if code == "duplicate_ids":
            named = "; ".join(
                f"'{item_id}' (lines {', '.join(map(str, lines))})"
                for item_id, lines in repeated.items()
            )
            message = f"Item ids must be unique within a file. Repeated: {named}."
        raise DomainError(code, message, status_code=status, fields=errors)
    return out


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
