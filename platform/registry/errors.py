"""The registry's domain errors."""

from __future__ import annotations

from core.errors import DomainError
from registry.datasets import RowError


class RegistryError(DomainError):
    """A domain error with a stable code, e.g. RegistryError("no_test_samples", "...")."""

    def __init__(self, code: str, message: str, *, status_code: int = 400):
        super().__init__(code, message, status_code=status_code)


class DatasetImportError(RegistryError):
    """Some rows are bad; `errors` lists every one (row, field, message). Nothing was written."""

    def __init__(self, errors: list[RowError]):
        super().__init__(
            "bad_rows", f"{len(errors)} row(s) have errors; nothing was imported.", status_code=400
        )
        self.errors = errors
