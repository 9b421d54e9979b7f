"""Reads of change management: lists, window conflicts, the calendar, the weekly change review."""
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from .choices import RISK_CLASS_NAMES, WINDOW_STATES, ChangeState, ChangeType, RiskLevel
from .models import ChangeRequest
from .systems import systems_shared


def change_list() -> QuerySet[ChangeRequest]:
    """Every change request, newest first (filter with changes.filtersets.ChangeRequestFilterSet)."""
    return ChangeRequest.objects.select_related("requester", "standard_kind").order_by("-created_at", "-id")


def change_get(change_id: str) -> ChangeRequest | None:
    return change_list().select_related("incident").filter(change_id=change_id).first()


def incident_changes(incident) -> QuerySet[ChangeRequest]:
    """Changes linked to an incident (the emergency changes that remediated it), for its post-incident review."""
    return change_list().filter(incident=incident).order_by("created_at", "id")


@dataclass(frozen=True)
class Conflict:
    other: ChangeRequest
    shared: list[str]

    @property
    def other_id(self) -> str:
        return self.other.change_id


def _overlapping(start: datetime, end: datetime) -> QuerySet[ChangeRequest]:
    return change_list().filter(status__in=WINDOW_STATES, scheduled_start__lt=end, scheduled_end__gt=start)


def change_conflicts(change: ChangeRequest) -> list[Conflict]:
    """Other live changes whose window overlaps this one's on an affected system they share.

    Drafts are checked against the others (so the author sees it) but never reported to them."""
    if not (change.scheduled_start and change.scheduled_end and change.affected_systems):
        return []
    conflicts = []
    for other in _overlapping(change.scheduled_start, change.scheduled_end).exclude(pk=change.pk):
        shared = systems_shared(change.affected_systems, other.affected_systems)
        if shared:
            conflicts.append(Conflict(other, shared))
    return conflicts


def conflicts_for(changes: list[ChangeRequest]) -> dict[int, list[Conflict]]:
    """Window conflicts of each of `changes` (a page of the list) with any live change, in one query."""
    windows = [c for c in changes if c.scheduled_start and c.scheduled_end and c.affected_systems]
    if not windows:
        return {}
    candidates = list(_overlapping(min(c.scheduled_start for c in windows), max(c.scheduled_end for c in windows)))
    found: dict[int, list[Conflict]] = defaultdict(list)
    for change in windows:
        for other in candidates:
            if other.pk == change.pk or not (other.scheduled_start < change.scheduled_end
                                             and other.scheduled_end > change.scheduled_start):
                continue
            shared = systems_shared(change.affected_systems, other.affected_systems)
            if shared:
                found[change.pk].append(Conflict(other, shared))
    return found


def conflicts_among(changes: list[ChangeRequest]) -> dict[int, list[Conflict]]:
    """Pairwise window conflicts within a set of changes (the calendar's view), by change pk."""
    found: dict[int, list[Conflict]] = defaultdict(list)
    live = [c for c in changes if c.status in WINDOW_STATES and c.scheduled_start and c.scheduled_end]
    live.sort(key=lambda c: c.scheduled_start)
    for i, a in enumerate(live):
        for b in live[i + 1:]:
            if b.scheduled_start >= a.scheduled_end:
                break
            shared = systems_shared(a.affected_systems, b.affected_systems)
            if shared:
                found[a.pk].append(Conflict(b, shared))
                found[b.pk].append(Conflict(a, shared))
    return found


@dataclass
class CalendarDay:
    day: date
    entries: list[dict]

    @property
    def is_today(self) -> bool:
        return self.day == timezone.localdate()


def change_calendar(*, start: date, days: int) -> dict:
    """Windows touching [start, start + days) in the current time zone, day by day, with conflicts flagged.

    A window spanning several days appears on each of them."""
    tz = timezone.get_current_timezone()
    range_start = datetime.combine(start, datetime.min.time(), tzinfo=tz)
    range_end = range_start + timedelta(days=days)
    changes = list(_overlapping(range_start, range_end))
    conflicts = conflicts_among(changes)
    by_day: dict[date, list[dict]] = defaultdict(list)
    for change in changes:
        first = max(timezone.localtime(change.scheduled_start, tz).date(), start)
        last = min(timezone.localtime(change.scheduled_end - timedelta(microseconds=1), tz).date(),
                   start + timedelta(days=days - 1))
        day = first
        while day <= last:
            by_day[day].append({"change": change, "conflicts": conflicts.get(change.pk, [])})
            day += timedelta(days=1)
    calendar = [CalendarDay(start + timedelta(days=i),
                            sorted(by_day.get(start + timedelta(days=i), []), key=lambda e: e["change"].scheduled_start))
                for i in range(days)]
    flagged = sorted({c.change_id for c in changes if conflicts.get(c.pk)})
    return {"start": start, "end": start + timedelta(days=days), "days": calendar, "changes": changes,
            "conflicts": conflicts, "flagged": flagged}


def week_start_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly_change_review(*, week_start: date, now: datetime | None = None) -> dict:
    """The manual's Weekly Change Review for the week starting `week_start` (Monday, current time zone):
    changes finished that week (completed or rolled back), success rate, rollback frequency, changes by
    type and risk, and the patterns to discuss (rollback triggers, deviations, overdue reviews and requests)."""
    now = now or timezone.now()
    tz = timezone.get_current_timezone()
    start = datetime.combine(week_start, datetime.min.time(), tzinfo=tz)
    end = start + timedelta(days=7)
    finished = list(change_list().filter(finished_at__gte=start, finished_at__lt=end))
    completed = [c for c in finished if c.status in (ChangeState.COMPLETED, ChangeState.CLOSED) and not c.rollback_trigger]
    rolled_back = [c for c in finished if c.rollback_trigger]
    raised = list(change_list().filter(created_at__gte=start, created_at__lt=end))
    type_labels = dict(ChangeType.choices)
    risk_labels = {level: f"{RiskLevel(level).label} ({RISK_CLASS_NAMES[level]})" for level in RiskLevel}

    def count_by(rows, attr, labels):
        counts = Counter(getattr(row, attr) for row in rows)
        return [{"key": key, "label": label, "count": counts.get(key, 0)} for key, label in labels.items()]

    open_overdue = ChangeRequest.objects.exclude(status__in=[ChangeState.CANCELLED, ChangeState.REJECTED])
    review_overdue = [c for c in open_overdue.filter(finished_at__isnull=False, reviewed_at__isnull=True)
                      if c.post_review_overdue(now)]
    formal_overdue = [c for c in open_overdue.filter(change_type=ChangeType.EMERGENCY, formal_request_at__isnull=True)
                      if c.formal_request_overdue(now)]
    return {
        "week_start": week_start,
        "week_end": week_start + timedelta(days=6),
        "finished": finished,
        "implemented": len(finished),
        "completed": len(completed),
        "rolled_back": len(rolled_back),
        "success_rate": (len(completed) / len(finished)) if finished else None,
        "rollback_rate": (len(rolled_back) / len(finished)) if finished else None,
        "finished_by_type": count_by(finished, "change_type", type_labels),
        "finished_by_risk": count_by(finished, "risk_level", risk_labels),
        "raised": len(raised),
        "raised_by_type": count_by(raised, "change_type", type_labels),
        "raised_by_risk": count_by(raised, "risk_level", risk_labels),
        "rollback_triggers": Counter(c.get_rollback_trigger_display() for c in rolled_back).most_common(),
        "with_deviations": [c for c in finished if c.implementation_notes.strip()],
        "emergencies": [c for c in finished if c.change_type == ChangeType.EMERGENCY],
        "post_review_overdue": review_overdue,
        "formal_request_overdue": formal_overdue,
    }


def changes_due(now: datetime | None = None) -> dict[str, list[ChangeRequest]]:
    """Changes with an overdue formal request (emergency, 24 h) or post-implementation review (24 h)."""
    now = now or timezone.now()
    rows = change_list().filter(Q(finished_at__isnull=False, reviewed_at__isnull=True)
                                | Q(change_type=ChangeType.EMERGENCY, formal_request_at__isnull=True))
    rows = rows.exclude(status__in=[ChangeState.CANCELLED, ChangeState.REJECTED])
    return {"post_review": [c for c in rows if c.post_review_overdue(now)],
            "formal_request": [c for c in rows if c.formal_request_overdue(now)]}


def change_checklist(change: ChangeRequest) -> list[dict]:
    """The pre-implementation checklist by section, each item with who ticked it and when."""
    from .choices import CHANGE_APPROVED_ITEM, PRE_IMPLEMENTATION_CHECKLIST

    sections = []
    for section, items in PRE_IMPLEMENTATION_CHECKLIST.items():
        rows = []
        for item in items:
            tick = change.checklist.get(item.key) or {}
            automatic = item.key == CHANGE_APPROVED_ITEM
            rows.append({"key": item.key, "label": item.label, "done": change.checklist_done(item.key),
                         "by": "workflow" if automatic and change.approved_at else tick.get("by", ""),
                         "at": change.approved_at.isoformat() if automatic and change.approved_at else tick.get("at", ""),
                         "automatic": automatic})
        sections.append({"section": section, "items": rows})
    return sections
