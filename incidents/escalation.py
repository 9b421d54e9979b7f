"""The escalation matrix at work: who a matrix cell means, engaging a level, durable timers and triggers.

Time-based escalation and the automatic triggers run from EscalationTimer rows written when an incident
is declared (or reclassified). The beat task `ops.incidents_escalate_due` calls
`escalation_timers_fire_due`, which handles each due timer in its own transaction: lock the incident,
re-read the timer, act, mark it fired. A worker or beat that dies before the commit leaves the timer
unfired (the next run fires it); after the commit the timer is fired and nothing repeats it. Each matrix
level of a severity is engaged at most once (a unique constraint), whether a timer, an automatic trigger
or an operator gets there first.
"""
from __future__ import annotations

import logging
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from opsconsole import roles
from opsconsole.audit import audit_record

from . import business_hours
from .choices import ACTIVE_STATUSES, EscalationTrigger, TimelineKind, TimerKind
from .models import Escalation, EscalationTimer, Incident, Responder
from .notifications import incident_url, notifications_queue
from .oncall import on_call_engineer
from .policy import (
    ESCALATION_MATRIX,
    LEVEL_LABELS,
    SEVERITY_DEFINITIONS,
    escalation_due,
    escalation_levels,
    requirements,
)
from .timeline import actor_label, actor_user, timeline_add

logger = logging.getLogger(__name__)
User = get_user_model()


def role_members(role: str, at: datetime) -> list:
    """The people a matrix cell means at `at`: the one on-call engineer of the rota (or, with no rota,
    every member of the On-call Engineer group), or the active members of the group."""
    if role == roles.ON_CALL_ENGINEER:
        person = on_call_engineer(at)
        if person is not None:
            return [person]
    return list(User.objects.filter(is_active=True, groups__name=role).distinct().order_by("username"))


def initial_roles(severity: str, at: datetime) -> list[str]:
    """Level 0 of the matrix. For a P3 outside business hours the on-call engineer engages too (manual:
    "with on-call engineer engagement for issues detected outside normal working hours")."""
    first = ESCALATION_MATRIX[severity][0]
    if severity == "P3" and not business_hours.is_business_time(at):
        return [first, roles.ON_CALL_ENGINEER]
    return [first]


def _message(incident: Incident, headline: str, reason: str) -> tuple[str, str]:
    definition = SEVERITY_DEFINITIONS[incident.severity]
    subject = f"[{incident.severity}] {incident.incident_id} {headline}: {incident.summary}"
    lines = [
        f"{incident.incident_id} - {incident.severity} {definition['name']} - {incident.get_status_display()}",
        f"Summary: {incident.summary}",
        f"Impact: {incident.impact or 'being assessed'}",
        f"Declared: {timezone.localtime(incident.declared_at):%Y-%m-%d %H:%M %Z}",
    ]
    if reason:
        lines.append(f"Why: {reason}")
    lines.append(f"Incident: {incident_url(incident)}")
    return subject, "\n".join(lines)


def escalation_engage(*, incident: Incident, level: int | None, trigger: str, reason: str = "", actor=None,
                      role: str | None = None, users=None, now: datetime | None = None) -> Escalation:
    """Engage a matrix level (or, with level None, `role` and/or `users` beyond the matrix): add the people
    as responders, record the escalation on the timeline and in the audit log, and notify them.
    The caller holds the incident's row lock."""
    now = now or timezone.now()
    severity = incident.severity
    if level is not None:
        role = role or ESCALATION_MATRIX[severity][level]
        role_names = initial_roles(severity, now) if level == 0 else [role]
        role = " + ".join(role_names)
        people = [p for name in role_names for p in role_members(name, now)]
    else:
        people = role_members(role, now) if role else []
    people = list({p.pk: p for p in [*people, *(users or [])]}.values())
    role = role or "Named responders"
    escalation = Escalation.objects.create(
        incident=incident, severity=severity, level=level, role=role, trigger=trigger, reason=reason,
        users=[p.get_username() for p in people], at=now, actor=actor if getattr(actor, "is_authenticated", False) else None)
    existing = set(Responder.objects.filter(incident=incident).values_list("user_id", flat=True))
    Responder.objects.bulk_create([Responder(incident=incident, user=p, role=role, level=level, engaged_at=now)
                                   for p in people if p.pk not in existing])
    if level is not None and level > incident.escalation_level:
        incident.escalation_level = level
        incident.save(update_fields=["escalation_level", "updated_at"])
    where = f"level {level} ({LEVEL_LABELS[level]})" if level is not None else "beyond the matrix"
    names = ", ".join(p.get_username() for p in people) or "nobody holds this role"
    trigger_label = EscalationTrigger(trigger).label
    timeline_add(incident=incident, kind=TimelineKind.ESCALATION, actor=actor, at=now,
                 message=f"{'Engaged' if level == 0 else 'Escalated to'} {role}, {where}: {names}. "
                         f"{trigger_label}{': ' + reason if reason else ''}",
                 details={"escalation": escalation.pk, "level": level, "role": role, "trigger": trigger,
                          "users": escalation.users})
    audit_record(actor=actor if actor is not None else "escalation", action="incident.escalate",
                 target=incident.incident_id, reason=reason,
                 details={"severity": severity, "level": level, "role": role, "trigger": trigger, "users": escalation.users})
    headline = "declared" if trigger == EscalationTrigger.DECLARED else f"escalated to {role}"
    subject, body = _message(incident, headline, f"{trigger_label}{': ' + reason if reason else ''}")
    # Whoever escalated knows already; everyone else engaged is told on every channel.
    actor_pk = getattr(actor_user(actor), "pk", None)
    notifications_queue(incident=incident, subject=subject, body=body, users=[p for p in people if p.pk != actor_pk],
                        escalation=escalation, actor=actor, now=now)
    return escalation


def engaged_levels(incident: Incident, severity: str | None = None) -> set[int]:
    return set(Escalation.objects.filter(incident=incident, severity=severity or incident.severity, level__isnull=False)
               .values_list("level", flat=True))


def escalation_next(*, incident: Incident, trigger: str, reason: str = "", actor=None,
                    now: datetime | None = None) -> Escalation:
    """Escalate one step beyond what is engaged, ahead of the matrix's clock (automatic triggers and
    manual escalation). At the top of the matrix the top role is engaged again, beyond the matrix."""
    engaged = engaged_levels(incident)
    for level, _role in escalation_levels(incident.severity):
        if level not in engaged:
            return escalation_engage(incident=incident, level=level, trigger=trigger, reason=reason, actor=actor, now=now)
    top = escalation_levels(incident.severity)[-1][1]
    return escalation_engage(incident=incident, level=None, role=top, trigger=trigger,
                             reason=(reason + " " if reason else "") + "(the matrix is exhausted: top level engaged again)",
                             actor=actor, now=now)


def timers_schedule(*, incident: Incident) -> None:
    """Write the durable timers of the incident's current severity (matrix levels 1-3, the response and
    mitigation deadlines), re-arming unfired ones a reclassification cancelled, and cancel the pending
    timers of other severities."""
    severity = incident.severity
    needs = requirements(severity)
    wanted: dict[tuple[str, int], datetime] = {}
    for level, _role in escalation_levels(severity):
        if level:
            wanted[(TimerKind.ESCALATION, level)] = escalation_due(severity, level, incident.declared_at)
    if incident.acknowledged_at is None and incident.response_due_at:
        wanted[(TimerKind.RESPONSE, 0)] = incident.response_due_at
    if needs.mitigation and incident.mitigation_due_at:
        wanted[(TimerKind.MITIGATION, 0)] = incident.mitigation_due_at
    now = timezone.now()
    EscalationTimer.objects.filter(incident=incident, fired_at__isnull=True, cancelled_at__isnull=True).exclude(
        severity=severity).update(cancelled_at=now, outcome="severity changed")
    existing = {(t.kind, t.level): t for t in EscalationTimer.objects.filter(incident=incident, severity=severity)}
    for (kind, level), due_at in wanted.items():
        timer = existing.get((kind, level))
        if timer is None:
            EscalationTimer.objects.create(incident=incident, kind=kind, severity=severity, level=level, due_at=due_at)
        elif timer.fired_at is None:
            timer.due_at, timer.cancelled_at, timer.outcome = due_at, None, ""
            timer.save(update_fields=["due_at", "cancelled_at", "outcome"])


def timers_cancel(*, incident: Incident, outcome: str, kinds=None) -> int:
    pending = EscalationTimer.objects.filter(incident=incident, fired_at__isnull=True, cancelled_at__isnull=True)
    if kinds:
        pending = pending.filter(kind__in=kinds)
    return pending.update(cancelled_at=timezone.now(), outcome=outcome)


def _fire(timer: EscalationTimer, incident: Incident, now: datetime) -> tuple[str, bool]:
    """Act on a due timer; returns (outcome, fired) — fired False means cancelled instead."""
    if incident.status not in ACTIVE_STATUSES:
        return f"incident {incident.status}", False
    if timer.severity != incident.severity:
        return "severity changed", False
    due = timezone.localtime(timer.due_at).strftime("%Y-%m-%d %H:%M")
    if timer.kind == TimerKind.ESCALATION:
        if timer.level in engaged_levels(incident):
            return "level already engaged", True
        esc = escalation_engage(incident=incident, level=timer.level, trigger=EscalationTrigger.TIME, now=now,
                                reason=f"{LEVEL_LABELS[timer.level]} of the {incident.severity} matrix (due {due})")
        return f"engaged {esc.role}", True
    if timer.kind == TimerKind.RESPONSE:
        if incident.acknowledged_at is not None:
            return "response met", True
        trigger, what = EscalationTrigger.RESPONSE_TIME_EXCEEDED, f"no initial response by {due}"
    else:
        if incident.resolved_at is not None:
            return "mitigated", True
        trigger, what = EscalationTrigger.MITIGATION_TIME_EXCEEDED, f"not stabilized by {due}"
    timeline_add(incident=incident, kind=TimelineKind.TRIGGER, at=now, actor="escalation",
                 message=f"Automatic escalation trigger: {EscalationTrigger(trigger).label.lower()} ({what}).",
                 details={"timer": timer.pk, "trigger": trigger})
    esc = escalation_next(incident=incident, trigger=trigger, reason=what, now=now)
    return f"{trigger}: engaged {esc.role}", True


def escalation_timer_fire(*, timer_id: int, now: datetime | None = None) -> str | None:
    """Fire one timer if it is still pending and due; None when another run got there first."""
    now = now or timezone.now()
    incident_id = EscalationTimer.objects.filter(pk=timer_id).values_list("incident_id", flat=True).first()
    if incident_id is None:
        return None
    with transaction.atomic():
        # Lock order everywhere: incident, then its timers. Two runs for one incident queue here.
        incident = Incident.objects.select_for_update().get(pk=incident_id)
        timer = (EscalationTimer.objects.select_for_update()
                 .filter(pk=timer_id, fired_at__isnull=True, cancelled_at__isnull=True, due_at__lte=now).first())
        if timer is None:
            return None
        outcome, fired = _fire(timer, incident, now)
        if fired:
            timer.fired_at = now
        else:
            timer.cancelled_at = now
        timer.outcome = outcome[:200]
        timer.save(update_fields=["fired_at", "cancelled_at", "outcome"])
        logger.info("incident timer %s (%s L%s) of %s: %s", timer.pk, timer.kind, timer.level, incident.incident_id,
                    outcome, extra={"component": "incidents"})
        return outcome


def escalation_timers_fire_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Fire every due timer, oldest first (so levels fire in order after a long outage). Returns how many
    this run fired; concurrent runs share the work without firing anything twice."""
    now = now or timezone.now()
    ids = list(EscalationTimer.objects.filter(fired_at__isnull=True, cancelled_at__isnull=True, due_at__lte=now)
               .order_by("due_at", "level", "id").values_list("pk", flat=True)[:limit])
    fired = 0
    for timer_id in ids:
        if escalation_timer_fire(timer_id=timer_id, now=now) is not None:
            fired += 1
    return fired


def escalation_state(incident: Incident) -> list[dict]:
    """The matrix row of the current severity with what happened at each level (for the incident page)."""
    engaged = {e.level: e for e in incident.escalations.all() if e.severity == incident.severity and e.level is not None}
    timers = {t.level: t for t in incident.timers.all() if t.kind == TimerKind.ESCALATION and t.severity == incident.severity}
    rows = []
    for level, role in enumerate(ESCALATION_MATRIX[incident.severity]):
        esc, timer = engaged.get(level), timers.get(level)
        rows.append({
            "level": level, "label": LEVEL_LABELS[level], "role": role or "-",
            "due_at": timer.due_at if timer else (incident.declared_at if level == 0 else None),
            "engaged_at": esc.at if esc else None, "users": ", ".join(esc.users) if esc else "",
            "trigger": esc.get_trigger_display() if esc else "",
            "state": "engaged" if esc else ("n/a" if not role else timer.state if timer else "pending"),
        })
    return rows


__all__ = [
    "actor_label", "escalation_engage", "escalation_next", "escalation_state", "escalation_timer_fire",
    "escalation_timers_fire_due", "initial_roles", "role_members", "timers_cancel", "timers_schedule",
]
