"""The registry's domain errors."""

from __future__ import annotations

from core.errors import DomainError
from registry.datasets import RowError


class RegistryError(DomainError):
    """A domain error with a stable code, e.g. RegistryError("no_test_samples", "...")."""

    def __init__(self, code: str, message: str, *, status_code: int = 400, fields=None):
        super().__init__(code, message, status_code=status_code, fields=fields)


#: How many row errors an error report lists by default (the counts cover all of them).
ROW_ERRORS_SHOWN = 100


class DatasetImportError(RegistryError):
    """Some rows are bad; `errors` lists every one (row, field, message). Nothing was written."""

    def __init__(self, errors: list[RowError]):
        super().__init__(
            "bad_rows", f"{len(errors)} row(s) have errors; nothing was imported.", status_code=400
        )
        self.errors = errors

    def counts(self) -> dict[str, int]:
        """Errors per kind, over every row (most frequent first)."""
        counts: dict[str, int] = {}
        for error in self.errors:
            counts[error.key] = counts.get(error.key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def report(self, *, limit: int = ROW_ERRORS_SHOWN) -> dict:
        """The first `limit` row errors, the total and the counts per kind: a bounded answer
        however many rows are bad."""
        return {
            "rows": [error.as_dict() for error in self.errors[:limit]],
            "total": len(self.errors),
            "shown": min(limit, len(self.errors)),
            "counts": self.counts(),
        }
