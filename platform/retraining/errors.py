"""The retraining app's domain errors (stable codes; the API edge turns them into HTTP)."""

from __future__ import annotations

from core.errors import DomainError


class RetrainingError(DomainError):
    """e.g. RetrainingError("promotion_refused", "...", status_code=409, fields=[...])."""
