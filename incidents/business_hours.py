"""Business hours: the clock of the manual's P3/P4 response requirements and of post-incident reviews.

Configured by settings.INCIDENT_BUSINESS_HOURS (default Monday-Friday 09:00-17:00 in settings.TIME_ZONE,
no holidays). Opening and closing are local wall-clock times, so a business day keeps its hours across
daylight-saving changes; every function takes and returns timezone-aware datetimes.

Public API (also used by `changes/`):

    is_business_time(at)                  -> bool
    business_deadline(start, hours)       -> datetime   (start + `hours` of business time)
    business_hours_between(start, end)    -> float      (business hours elapsed)
    business_days_deadline(start, days)   -> datetime   (close of the `days`-th following business day)
    next_business_start(at)               -> datetime   (at, if in business hours; else the next opening)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# A calendar without a business day in this many days is a configuration error, not a long wait.
MAX_SEARCH_DAYS = 3660


@dataclass(frozen=True)
class BusinessCalendar:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    zone: ZoneInfo
    holidays: frozenset[date]

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The day's opening and closing (local wall-clock times) as UTC datetimes, so arithmetic is absolute."""
        return (datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC),
                datetime.combine(day, self.end, tzinfo=self.zone).astimezone(UTC))

    @property
    def hours_per_day(self) -> float:
        return (datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)).total_seconds() / 3600


def _parse_days(value) -> frozenset[int]:
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [str(v) for v in value]
    else:
        items = [part for part in str(value).replace(" ", "").lower().split(",") if part]
    days: set[int] = set()
    for item in items:
        item = item.lower()
        if item.isdigit():
            days.add(int(item))
        elif "-" in item:
            first, last = (DAY_NAMES.index(x[:3]) for x in item.split("-", 1))
            days.update(range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)])
        else:
            days.add(DAY_NAMES.index(item[:3]))
    if not days or not days <= set(range(7)):
        raise ImproperlyConfigured(f"INCIDENT_BUSINESS_HOURS days: no valid working day in {value!r}")
    return frozenset(days)


def calendar() -> BusinessCalendar:
    """The configured business calendar (read from settings on every call, so tests can override it)."""
    config = {"days": "mon-fri", "start": "09:00", "end": "17:00", "time_zone": None, "holidays": []}
    config.update(getattr(settings, "INCIDENT_BUSINESS_HOURS", {}) or {})
    try:
        start, end = time.fromisoformat(str(config["start"])), time.fromisoformat(str(config["end"]))
        zone = ZoneInfo(config["time_zone"] or settings.TIME_ZONE)
        holidays = frozenset(d if isinstance(d, date) else date.fromisoformat(str(d)) for d in config["holidays"] or [])
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"INCIDENT_BUSINESS_HOURS: {exc}") from exc
    if start >= end:
        raise ImproperlyConfigured("INCIDENT_BUSINESS_HOURS: start must be before end (overnight days are not supported)")
    return BusinessCalendar(days=_parse_days(config["days"]), start=start, end=end, zone=zone, holidays=holidays)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("business hours need a timezone-aware datetime")
    return at


def is_business_time(at: datetime, *, cal: BusinessCalendar | None = None) -> bool:
    """Whether `at` falls inside business hours (opening inclusive, closing exclusive)."""
    cal = cal or calendar()
    local = _aware(at).astimezone(cal.zone)
    if not cal.is_business_day(local.date()):
        return False
    opening, closing = cal.window(local.date())
    return opening <= local < closing


def _windows_from(at: datetime, cal: BusinessCalendar):
    """Business windows (opening, closing) that end after `at`, in order, the first clipped to start at `at`."""
    day = at.astimezone(cal.zone).date()
    for _ in range(MAX_SEARCH_DAYS):
        if cal.is_business_day(day):
            opening, closing = cal.window(day)
            if closing > at:
                yield max(opening, at), closing
        day += timedelta(days=1)
    raise ImproperlyConfigured(f"no business day within {MAX_SEARCH_DAYS} days of {at.isoformat()}")


def next_business_start(at: datetime, *, cal: BusinessCalendar | None = None) -> datetime:
    """`at` itself when it is business time, otherwise the next opening."""
    cal = cal or calendar()
    opening, _ = next(_windows_from(_aware(at), cal))
    return opening


def business_deadline(start: datetime, hours: float, *, cal: BusinessCalendar | None = None) -> datetime:
    """The moment `hours` of business time have passed since `start`.

    A clock started outside business hours begins at the next opening: a P4 (4 business hours) declared
    Friday 16:00 is due Monday 12:00; one declared Saturday is due Monday 13:00. The answer is never
    outside business hours except exactly at a closing time (e.g. Monday 09:00 + 8 h = Monday 17:00).
    """
    cal = cal or calendar()
    if hours < 0 or not math.isfinite(hours):
        raise ValueError("hours must be a finite number >= 0")
    remaining = timedelta(hours=hours)
    for opening, closing in _windows_from(_aware(start), cal):
        available = closing - opening
        if remaining <= available:
            return opening + remaining
        remaining -= available
    raise AssertionError("unreachable")  # _windows_from raises before running out


def business_hours_between(start: datetime, end: datetime, *, cal: BusinessCalendar | None = None) -> float:
    """Business hours elapsed from `start` to `end` (0 when end <= start)."""
    cal = cal or calendar()
    _aware(start), _aware(end)
    if end <= start:
        return 0.0
    total = timedelta()
    for opening, closing in _windows_from(start, cal):
        if opening >= end:
            break
        total += min(closing, end) - opening
    return total.total_seconds() / 3600


def business_days_deadline(start: datetime, days: int, *, cal: BusinessCalendar | None = None) -> datetime:
    """Closing time of the `days`-th business day after the day of `start` ("within 5 business days").

    Resolved Monday 14:00 with days=5: due the following Monday at closing time. A start on a weekend
    counts from the next business day (Saturday + 1 business day = Tuesday's closing; Monday is day 0).
    """
    cal = cal or calendar()
    if days < 0:
        raise ValueError("days must be >= 0")
    day = _aware(start).astimezone(cal.zone).date()
    # Day 0 is the start's own business day, or the first business day after a non-business start.
    while not cal.is_business_day(day):
        day += timedelta(days=1)
    counted = 0
    for _ in range(MAX_SEARCH_DAYS):
        if counted == days:
            return cal.window(day)[1]
        day += timedelta(days=1)
        if cal.is_business_day(day):
            counted += 1
    raise ImproperlyConfigured(f"no {days} business days within {MAX_SEARCH_DAYS} days of {start.isoformat()}")
