"""Batch input parsing (CSV or JSONL uploads) and result rendering (CSV or JSONL downloads)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from django.conf import settings

from tagging_platform.errors import ApiError

MAX_REPORTED_ERRORS = 20
MAX_ID_CHARS = 200


def _format_of(filename: str, text: str) -> str:
    name = filename.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def parse_upload(upload) -> list[tuple[str, str]]:
    """(id, text) rows of an uploaded file, or an ApiError naming the first bad lines."""
    limit = settings.UPLOAD_MAX_BYTES
    if upload.size > limit:
        raise ApiError(
            "upload_too_large",
            f"The file is {upload.size} bytes; at most {limit} bytes are accepted.",
            status_code=413,
        )
    raw = upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ApiError(
            "invalid_utf8",
            f"The file is not valid UTF-8 (line {line}, byte {exc.start}).",
            fields={f"line {line}": ["Not valid UTF-8."]},
        ) from None
    fmt = _format_of(upload.name or "", text)
    rows = _parse_jsonl(text) if fmt == "jsonl" else _parse_csv(text)
    return _validate(rows)


def _parse_jsonl(text: str) -> list[tuple[int, object, object]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ApiError(
                "malformed_json",
                f"Line {number} is not valid JSON: {exc}.",
                fields={f"line {number}": ["Not valid JSON."]},
            ) from None
        if not isinstance(obj, dict):
            raise ApiError(
                "invalid",
                f'Line {number} must be an object {{"id", "text"}}.',
                fields={f"line {number}": ["Expected an object."]},
            )
        rows.append((number, obj.get("id", number), obj.get("text")))
    return rows


def _parse_csv(text: str) -> list[tuple[int, object, object]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fieldnames = [name.strip().lower() for name in (reader.fieldnames or [])]
    if "text" not in fieldnames:
        raise ApiError(
            "invalid",
            "The CSV needs a header row with a `text` column (and optionally `id`).",
            fields={"file": ["Missing `text` column."]},
        )
    reader.fieldnames = fieldnames
    rows = []
    try:
        for row in reader:
            number = reader.line_num
            rows.append((number, row.get("id") or number - 1, row.get("text")))
    except csv.Error as exc:
        raise ApiError(
            "invalid", f"The CSV is malformed near line {reader.line_num}: {exc}."
        ) from None
    return rows


def _validate(rows: list[tuple[int, object, object]]) -> list[tuple[str, str]]:
    if not rows:
        raise ApiError("invalid", "The file has no rows.", fields={"file": ["Empty."]})
    max_chars = settings.TAG_MAX_TEXT_CHARS
    errors: dict[str, list[str]] = {}
    codes: list[str] = []
    out = []
    for number, item_id, text in rows:
        key = f"line {number}"
        if isinstance(item_id, int | float) and not isinstance(item_id, bool):
            item_id = str(item_id)
        if not isinstance(item_id, str) or not item_id.strip() or len(item_id) > MAX_ID_CHARS:
            errors[key] = [
                f"The id must be a non-empty string of at most {MAX_ID_CHARS} characters."
            ]
            codes.append("invalid")
        elif not isinstance(text, str):
            errors[key] = ["A `text` string is required."]
            codes.append("invalid")
        elif len(text) > max_chars:
            errors[key] = [f"The text has {len(text)} characters; at most {max_chars}."]
            codes.append("text_too_long")
        elif not text.strip():
            errors[key] = ["The text is empty or only whitespace."]
            codes.append("empty_text")
        else:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                errors[key] = ["The text is not valid Unicode (lone surrogate)."]
                codes.append("invalid_utf8")
        if key not in errors and ("\x00" in item_id or "\x00" in text):
            errors[key] = ["The id or text contains a NUL character (not storable)."]
            codes.append("invalid")
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
        out.append((item_id, text))
    if errors:
        code = codes[0]
        status = 413 if code == "text_too_long" else 400
        raise ApiError(
            code, f"{len(errors)} bad line(s) in the file.", status_code=status, fields=errors
        )
    return out


def render_csv(rows: Iterable[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "labels", "top_label", "top_score", "scores", "model", "model_version"])
    for row in rows:
        scores = row["scores"]
        top = next(iter(scores.items()), ("", 0.0))
        writer.writerow(
            [
                row["id"],
                "|".join(row["labels"]),
                top[0],
                top[1],
                json.dumps(scores, ensure_ascii=False),
                row["model"],
                row["model_version"],
            ]
        )
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def render_jsonl(rows: Iterable[dict]) -> Iterator[str]:
    lines = []
    for row in rows:
        lines.append(
            json.dumps(
                {
                    "id": row["id"],
                    "labels": row["labels"],
                    "scores": row["scores"],
                    "model": {"name": row["model"], "version": row["model_version"]},
                },
                ensure_ascii=False,
            )
        )
        if len(lines) >= 500:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"
