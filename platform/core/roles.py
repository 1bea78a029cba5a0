"""The tenancy vocabulary every app checks against: a member's roles, in rank order, and the scopes
of an API key. Values only; the memberships and keys that carry them are tenants' models."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Role(models.TextChoices):
    VIEWER = "viewer", _("Viewer")
    REQUESTER = "requester", _("Requester")
    REVIEWER = "reviewer", _("Reviewer")
    ADMIN = "admin", pgettext_lazy("role", "Admin")


ROLE_RANK = {Role.VIEWER: 0, Role.REQUESTER: 1, Role.REVIEWER: 2, Role.ADMIN: 3}


def role_outranks(role: str, required: str) -> bool:
    """True when `role` is `required` or above it."""
    return ROLE_RANK[Role(role)] >= ROLE_RANK[Role(required)]


class ApiKeyScope(models.TextChoices):
    TAG = "tag", _("Tag (sync and stream)")
    BATCH = "batch", _("Batch jobs")
    FEEDBACK = "feedback", _("Feedback events")
    READ = "read", _("Read")
    #: Create, change, subscribe, go live and retire needs. Deliberately separate from `tag`: a
    #: serving key must not be able to change (or retire) what it serves.
    NEEDS = "needs", _("Manage needs")
