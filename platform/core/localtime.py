"""A tenant's local time: its days and weeks, cut in its own time zone.

The one place that turns an instant into a tenant's calendar day and back. Everything that cuts
time into days for a tenant (monitoring aggregation, alert days, review rounds, scheduled
batches, dates shown in the portal) calls these, with any object carrying `time_zone` (an IANA
name; a Tenant) so the bottom layer needs no model.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class HasTimeZone(Protocol):
    time_zone: str


def default_time_zone() -> str:
    return settings.TENANT_DEFAULT_TIME_ZONE


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of an IANA name ("" means UTC)."""
    return ZoneInfo(name or "UTC")


def validate_time_zone(value: str) -> None:
    try:
        if not value or "\x00" in value:
            raise ValueError(value)
        zone(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            _("%(value)s is not a time zone (use an IANA name such as Asia/Shanghai)."),
            code="invalid_time_zone",
            params={"value": value},
        ) from exc


def tenant_zone(tenant: HasTimeZone) -> ZoneInfo:
    return zone(getattr(tenant, "time_zone", "") or "UTC")


def tenant_local_date(tenant: HasTimeZone, moment: datetime | None = None) -> date:
    """The tenant's calendar day at `moment` (an aware datetime; default now)."""
    moment = moment or timezone.now()
    return moment.astimezone(tenant_zone(tenant)).date()


def tenant_today(tenant: HasTimeZone) -> date:
    return tenant_local_date(tenant)


def tenant_day_bounds(tenant: HasTimeZone, day: date) -> tuple[datetime, datetime]:
    """[start, end) of the tenant's calendar `day` as aware datetimes (23 or 25 hours on a DST
    change day)."""
    tz = tenant_zone(tenant)
    start = datetime.combine(day, time.min, tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def tenant_week_bounds(tenant: HasTimeZone, day: date) -> tuple[datetime, datetime]:
    """[start, end) of the tenant's ISO week (Monday to Monday) that contains `day`."""
    monday = day - timedelta(days=day.weekday())
    return tenant_day_bounds(tenant, monday)[0], tenant_day_bounds(tenant, monday + timedelta(7))[0]


def tenant_localtime(tenant: HasTimeZone, moment: datetime) -> datetime:
    """`moment` on the tenant's wall clock (for display)."""
    return moment.astimezone(tenant_zone(tenant))
