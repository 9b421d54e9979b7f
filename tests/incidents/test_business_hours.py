"""Business hours: deadlines counted in business time, weekends, holidays, time zones, DST."""
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured

from incidents.business_hours import (
    business_days_deadline,
    business_deadline,
    business_hours_between,
    is_business_time,
    next_business_start,
)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _utc_office(settings):
    settings.TIME_ZONE = "UTC"
    settings.INCIDENT_BUSINESS_HOURS = {"days": "mon-fri", "start": "09:00", "end": "17:00", "time_zone": None, "holidays": []}


# 2025-01-03 is a Friday, 2025-01-06 a Monday.
@pytest.mark.parametrize("start, hours, due", [
    (utc(2025, 1, 6, 10, 0), 1, utc(2025, 1, 6, 11, 0)),     # P3 inside hours
    (utc(2025, 1, 6, 16, 30), 1, utc(2025, 1, 7, 9, 30)),    # runs over the close into the next morning
    (utc(2025, 1, 3, 16, 0), 4, utc(2025, 1, 6, 12, 0)),     # P4 Friday afternoon: Monday noon
    (utc(2025, 1, 4, 3, 0), 4, utc(2025, 1, 6, 13, 0)),      # Saturday: clock starts Monday 09:00
    (utc(2025, 1, 6, 7, 0), 1, utc(2025, 1, 6, 10, 0)),      # before opening
    (utc(2025, 1, 6, 9, 0), 8, utc(2025, 1, 6, 17, 0)),      # a full day ends at the close, not next morning
    (utc(2025, 1, 6, 9, 0), 40, utc(2025, 1, 10, 17, 0)),    # a business week
    (utc(2025, 1, 6, 20, 0), 0, utc(2025, 1, 7, 9, 0)),      # zero hours after hours: next opening
    (utc(2025, 1, 6, 12, 0), 0.25, utc(2025, 1, 6, 12, 15)),  # fractions
])
def test_business_deadline(start, hours, due):
    assert business_deadline(start, hours) == due


def test_elapsed_business_hours_skips_nights_and_weekends():
    assert business_hours_between(utc(2025, 1, 3, 16, 0), utc(2025, 1, 6, 10, 0)) == 2.0
    assert business_hours_between(utc(2025, 1, 6, 10, 0), utc(2025, 1, 6, 9, 0)) == 0.0
    start = utc(2025, 1, 3, 15, 0)
    assert business_hours_between(start, business_deadline(start, 6.5)) == pytest.approx(6.5)


def test_is_business_time_and_next_start():
    assert is_business_time(utc(2025, 1, 6, 9, 0))
    assert not is_business_time(utc(2025, 1, 6, 17, 0))  # closing is exclusive
    assert not is_business_time(utc(2025, 1, 4, 12, 0))
    assert next_business_start(utc(2025, 1, 6, 12, 0)) == utc(2025, 1, 6, 12, 0)
    assert next_business_start(utc(2025, 1, 3, 18, 0)) == utc(2025, 1, 6, 9, 0)


def test_review_due_in_five_business_days():
    assert business_days_deadline(utc(2025, 1, 6, 14, 0), 5) == utc(2025, 1, 13, 17, 0)  # Monday -> next Monday
    assert business_days_deadline(utc(2025, 1, 8, 10, 0), 5) == utc(2025, 1, 15, 17, 0)  # Wednesday -> Wednesday
    assert business_days_deadline(utc(2025, 1, 4, 10, 0), 1) == utc(2025, 1, 7, 17, 0)   # Saturday: Monday is day 0


def test_holidays_and_custom_days(settings):
    settings.INCIDENT_BUSINESS_HOURS = {"days": "mon-fri", "start": "09:00", "end": "17:00", "holidays": ["2025-01-06"]}
    assert business_deadline(utc(2025, 1, 3, 16, 0), 4) == utc(2025, 1, 7, 12, 0)
    settings.INCIDENT_BUSINESS_HOURS = {"days": "mon-sat", "start": "08:00", "end": "12:00"}
    assert business_deadline(utc(2025, 1, 3, 11, 0), 2) == utc(2025, 1, 4, 9, 0)


def test_hours_are_local_to_the_configured_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    # Monday 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    assert next_business_start(utc(2025, 1, 6, 0, 0)) == datetime(2025, 1, 6, 9, 0, tzinfo=BERLIN)
    assert next_business_start(utc(2025, 1, 6, 0, 0)) == utc(2025, 1, 6, 8, 0)
    assert next_business_start(utc(2025, 7, 7, 0, 0)) == utc(2025, 7, 7, 7, 0)
    # Across the spring change (Sunday 2025-03-30): Friday 16:00 + 2 h = Monday 10:00 local, 08:00 UTC.
    assert business_deadline(datetime(2025, 3, 28, 16, 0, tzinfo=BERLIN), 2) == utc(2025, 3, 31, 8, 0)


def test_bad_configuration_is_reported(settings):
    settings.INCIDENT_BUSINESS_HOURS = {"days": "", "start": "09:00", "end": "17:00"}
    with pytest.raises(ImproperlyConfigured):
        business_deadline(utc(2025, 1, 6, 9, 0), 1)
    settings.INCIDENT_BUSINESS_HOURS = {"days": "mon-fri", "start": "17:00", "end": "09:00"}
    with pytest.raises(ImproperlyConfigured):
        business_deadline(utc(2025, 1, 6, 9, 0), 1)
    settings.INCIDENT_BUSINESS_HOURS = {"days": "mon-fri", "start": "09:00", "end": "17:00"}
    with pytest.raises(ValueError):
        business_deadline(datetime(2025, 1, 6, 9, 0), 1)  # naive
