"""The on-call rota: who the escalation matrix's "On-call Engineer" is, one named person at any moment.

Public API (also used by `changes/` for emergency changes' "on-call manager" and by the escalation matrix):

    on_call_engineer(at)          -> User | None    the person on call at `at` (override first, then rota)
    on_call_shift(at)             -> OnCallShift | None
    on_call_schedule(start, end)  -> list[OnCallShift]   consecutive shifts, overrides applied
    oncall_rota_set(...)          -> OnCallRota     create/replace the active rota (audited)
    oncall_override_create(...)   -> OnCallOverride (audited)
    oncall_override_delete(...)                     (audited)

With no active rota (or an empty one) `on_call_engineer` answers None; callers fall back to the
"On-call Engineer" group (see incidents.escalation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from opsconsole.audit import audit_record
from opsconsole.errors import ApplicationError

from .models import OnCallOverride, OnCallRota, OnCallRotaMember

User = get_user_model()


@dataclass(frozen=True)
class OnCallShift:
    user: User | None
    starts_at: datetime
    ends_at: datetime
    override: OnCallOverride | None = None

    @property
    def is_override(self) -> bool:
        return self.override is not None


def active_rota() -> OnCallRota | None:
    return OnCallRota.objects.filter(active=True).first()


def _zone(rota: OnCallRota) -> ZoneInfo:
    return ZoneInfo(rota.time_zone or settings.TIME_ZONE)


def _rota_shift(rota: OnCallRota, members: list[OnCallRotaMember], at: datetime) -> OnCallShift:
    """The rota's own shift containing `at` (overrides not applied), computed in local wall-clock time so
    the handoff stays at the anchor's local time across daylight-saving changes."""
    zone = _zone(rota)
    anchor = rota.anchor.astimezone(zone).replace(tzinfo=None)
    local = at.astimezone(zone).replace(tzinfo=None)
    length = timedelta(days=rota.shift_days)
    index = math.floor((local - anchor) / length)
    start = anchor + index * length
    starts_at = start.replace(tzinfo=zone)
    ends_at = (start + length).replace(tzinfo=zone)
    user = None
    if members:
        # Inactive accounts are skipped: the next member in order covers the shift.
        for step in range(len(members)):
            candidate = members[(index + step) % len(members)].user
            if candidate.is_active:
                user = candidate
                break
    return OnCallShift(user=user, starts_at=starts_at, ends_at=ends_at)


def _members(rota: OnCallRota) -> list[OnCallRotaMember]:
    return list(rota.members.select_related("user").order_by("position"))


def _override_at(rota: OnCallRota, at: datetime) -> OnCallOverride | None:
    return (rota.overrides.select_related("user").filter(starts_at__lte=at, ends_at__gt=at)
            .order_by("-created_at", "-id").first())


def on_call_shift(at: datetime) -> OnCallShift | None:
    """The shift covering `at`: an override if one covers it (the latest created wins), else the rota's."""
    if at.tzinfo is None:
        raise ValueError("on_call_shift needs a timezone-aware datetime")
    rota = active_rota()
    if rota is None:
        return None
    override = _override_at(rota, at)
    if override is not None:
        return OnCallShift(user=override.user, starts_at=override.starts_at, ends_at=override.ends_at, override=override)
    return _rota_shift(rota, _members(rota), at)


def on_call_engineer(at: datetime) -> User | None:
    """The one named person on call at `at` (timezone-aware), or None when no rota is set up.

    An override covering `at` wins over the weekly rotation; among overlapping overrides the one created
    last wins."""
    shift = on_call_shift(at)
    return shift.user if shift else None


def on_call_schedule(start: datetime, end: datetime) -> list[OnCallShift]:
    """Consecutive shifts from `start` to `end` with overrides cut in (for the console's rota page)."""
    rota = active_rota()
    if rota is None or end <= start:
        return []
    members = _members(rota)
    overrides = list(rota.overrides.select_related("user").filter(starts_at__lt=end, ends_at__gt=start)
                     .order_by("-created_at", "-id"))
    # Every moment where the answer may change: rota handoffs and override edges.
    edges = {start, end}
    cursor = start
    while cursor < end:
        shift = _rota_shift(rota, members, cursor)
        cursor = shift.ends_at
        if cursor < end:
            edges.add(cursor)
    for o in overrides:
        edges.update(t for t in (o.starts_at, o.ends_at) if start < t < end)
    points = sorted(edges)
    shifts: list[OnCallShift] = []
    for begin, finish in pairwise(points):
        override = next((o for o in overrides if o.starts_at <= begin and o.ends_at > begin), None)
        user = override.user if override else _rota_shift(rota, members, begin).user
        last = shifts[-1] if shifts else None
        if last and last.user == user and last.override == override:
            shifts[-1] = OnCallShift(user=user, starts_at=last.starts_at, ends_at=finish, override=override)
        else:
            shifts.append(OnCallShift(user=user, starts_at=begin, ends_at=finish, override=override))
    return shifts


@transaction.atomic
def oncall_rota_set(*, actor, name: str, anchor: datetime, members: list, shift_days: int = 7,
                    time_zone: str = "") -> OnCallRota:
    """Make `name` the active rota with `members` (users, in turn order) handing off every `shift_days`
    at the local time of `anchor`. Other rotas are deactivated; the change is audited."""
    if not members:
        raise ApplicationError("A rota needs at least one member.")
    if len({m.pk for m in members}) != len(members):
        raise ApplicationError("A person can hold only one position in a rota.")
    if shift_days < 1:
        raise ApplicationError("A shift lasts at least one day.")
    if anchor.tzinfo is None:
        raise ApplicationError("The rota's anchor needs a time zone.")
    if time_zone:
        try:
            ZoneInfo(time_zone)
        except (KeyError, ValueError) as exc:
            raise ApplicationError(f"Unknown time zone {time_zone!r}.") from exc
    OnCallRota.objects.select_for_update().filter(active=True).exclude(name=name).update(active=False)
    rota, _ = OnCallRota.objects.update_or_create(
        name=name, defaults={"anchor": anchor, "shift_days": shift_days, "time_zone": time_zone, "active": True})
    rota.members.all().delete()
    OnCallRotaMember.objects.bulk_create(
        [OnCallRotaMember(rota=rota, user=user, position=i) for i, user in enumerate(members)])
    audit_record(actor=actor, action="oncall.rota_set", target=f"oncall-rota:{rota.name}", details={
        "anchor": anchor.isoformat(), "shift_days": shift_days, "time_zone": time_zone,
        "members": [m.get_username() for m in members]})
    return rota


@transaction.atomic
def oncall_override_create(*, actor, user, starts_at: datetime, ends_at: datetime, reason: str = "") -> OnCallOverride:
    """Put `user` on call from starts_at to ends_at in place of the active rota's person (audited)."""
    rota = active_rota()
    if rota is None:
        raise ApplicationError("There is no active on-call rota to override.", status_code=409)
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ApplicationError("Override times need a time zone.")
    if ends_at <= starts_at:
        raise ApplicationError("An override must end after it starts.")
    if not user.is_active:
        raise ApplicationError(f"{user.get_username()} is not an active account.")
    override = OnCallOverride.objects.create(rota=rota, user=user, starts_at=starts_at, ends_at=ends_at,
                                             reason=reason.strip(), created_by=actor if getattr(actor, "pk", None) else None)
    audit_record(actor=actor, action="oncall.override_create", target=f"oncall-rota:{rota.name}", reason=reason,
                 details={"override": override.pk, "user": user.get_username(),
                          "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()})
    return override


@transaction.atomic
def oncall_override_delete(*, actor, override: OnCallOverride, reason: str = "") -> None:
    """Remove an override; the rota's person is on call again for that time (audited)."""
    audit_record(actor=actor, action="oncall.override_delete", target=f"oncall-rota:{override.rota.name}", reason=reason,
                 details={"override": override.pk, "user": override.user.get_username(),
                          "starts_at": override.starts_at.isoformat(), "ends_at": override.ends_at.isoformat()})
    override.delete()
