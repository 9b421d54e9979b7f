"""The on-call rota: weekly rotation, overrides (latest wins), DST-stable handoffs, audit."""
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from incidents.models import OnCallOverride
from incidents.oncall import (
    on_call_engineer,
    on_call_schedule,
    on_call_shift,
    oncall_override_create,
    oncall_override_delete,
    oncall_rota_set,
)
from opsconsole import roles
from opsconsole.errors import ApplicationError
from opsconsole.models import AuditEntry
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

MONDAY = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def engineers(db):
    return [make_user(name, roles.ON_CALL_ENGINEER) for name in ("alice", "bob", "carol")]


@pytest.fixture
def rota(engineers, operator):
    return oncall_rota_set(actor=operator, name="primary", anchor=MONDAY, members=engineers)


def test_no_rota_means_nobody(db):
    assert on_call_engineer(MONDAY) is None
    assert on_call_schedule(MONDAY, MONDAY + timedelta(days=7)) == []


def test_weekly_rotation(rota, engineers):
    alice, bob, carol = engineers
    assert on_call_engineer(MONDAY) == alice
    assert on_call_engineer(MONDAY + timedelta(days=6, hours=23, minutes=59)) == alice
    assert on_call_engineer(MONDAY + timedelta(days=7)) == bob
    assert on_call_engineer(MONDAY + timedelta(days=14)) == carol
    assert on_call_engineer(MONDAY + timedelta(days=21)) == alice
    assert on_call_engineer(MONDAY - timedelta(minutes=1)) == carol  # the rotation extends backwards
    shift = on_call_shift(MONDAY + timedelta(days=8))
    assert (shift.user, shift.starts_at, shift.ends_at) == (bob, MONDAY + timedelta(days=7), MONDAY + timedelta(days=14))
    assert AuditEntry.objects.filter(action="oncall.rota_set", target="oncall-rota:primary").count() == 1


def test_overrides_win_latest_first_and_can_be_removed(rota, engineers, operator):
    alice, bob, carol = engineers
    sick = oncall_override_create(actor=operator, user=bob, starts_at=MONDAY + timedelta(days=1),
                                  ends_at=MONDAY + timedelta(days=3), reason="alice is ill")
    swap = oncall_override_create(actor=operator, user=carol, starts_at=MONDAY + timedelta(days=2),
                                  ends_at=MONDAY + timedelta(days=2, hours=12), reason="bob at the dentist")
    assert on_call_engineer(MONDAY + timedelta(hours=23)) == alice
    assert on_call_engineer(MONDAY + timedelta(days=1, hours=1)) == bob
    assert on_call_engineer(MONDAY + timedelta(days=2, hours=1)) == carol  # the later override wins
    assert on_call_engineer(MONDAY + timedelta(days=2, hours=13)) == bob
    assert on_call_engineer(MONDAY + timedelta(days=3)) == alice          # end is exclusive
    assert on_call_shift(MONDAY + timedelta(days=2, hours=1)).override == swap

    schedule = on_call_schedule(MONDAY, MONDAY + timedelta(days=8))
    assert [(s.user.username, s.starts_at - MONDAY, s.is_override) for s in schedule] == [
        ("alice", timedelta(0), False),
        ("bob", timedelta(days=1), True),
        ("carol", timedelta(days=2), True),
        ("bob", timedelta(days=2, hours=12), True),
        ("alice", timedelta(days=3), False),
        ("bob", timedelta(days=7), False),
    ]
    oncall_override_delete(actor=operator, override=swap, reason="appointment moved")
    assert on_call_engineer(MONDAY + timedelta(days=2, hours=1)) == bob
    assert not OnCallOverride.objects.filter(pk=swap.pk).exists() and sick.pk
    assert list(AuditEntry.objects.filter(action__startswith="oncall.override").values_list("action", flat=True)) == [
        "oncall.override_delete", "oncall.override_create", "oncall.override_create"]


def test_override_validation(rota, engineers, operator):
    with pytest.raises(ApplicationError):
        oncall_override_create(actor=operator, user=engineers[0], starts_at=MONDAY, ends_at=MONDAY)
    engineers[1].is_active = False
    engineers[1].save()
    with pytest.raises(ApplicationError):
        oncall_override_create(actor=operator, user=engineers[1], starts_at=MONDAY, ends_at=MONDAY + timedelta(hours=1))
    # An inactive member's week is covered by the next member.
    assert on_call_engineer(MONDAY + timedelta(days=7)) == engineers[2]


def test_only_one_rota_is_active(rota, engineers, operator):
    second = oncall_rota_set(actor=operator, name="holiday", anchor=MONDAY, members=[engineers[2]])
    rota.refresh_from_db()
    assert not rota.active and second.active
    assert on_call_engineer(MONDAY) == engineers[2]
    with pytest.raises(ApplicationError):
        oncall_rota_set(actor=operator, name="bad", anchor=MONDAY, members=[])


def test_handoff_keeps_local_time_across_daylight_saving(engineers, operator, settings):
    berlin = ZoneInfo("Europe/Berlin")
    anchor = datetime(2025, 3, 24, 9, 0, tzinfo=berlin)  # Monday 09:00 CET (08:00 UTC)
    oncall_rota_set(actor=operator, name="berlin", anchor=anchor, members=engineers[:2], time_zone="Europe/Berlin")
    # After the change to CEST on 2025-03-30 the handoff is still 09:00 local, i.e. 07:00 UTC.
    assert on_call_engineer(datetime(2025, 3, 31, 6, 59, tzinfo=UTC)) == engineers[0]
    assert on_call_engineer(datetime(2025, 3, 31, 7, 0, tzinfo=UTC)) == engineers[1]
