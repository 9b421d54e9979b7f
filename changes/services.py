"""Change management services: every write of the workflow, for the API, the console and the admin.

Each service locks the change, performs one django-fsm transition (or records a vote, a checklist tick,
a note) inside a transaction, and writes the change timeline and the audit log in that transaction.
Expected refusals raise ApplicationError: 403 for a role that may not act, 409 for a state or condition
that does not allow it, 400 for bad input.
"""
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_fsm import can_proceed

from opsconsole.audit import audit_record
from opsconsole.errors import ApplicationError

from . import permissions as perms
from .approvals import approval_status
from .choices import (
    APPROVAL_TABLE, CHANGE_APPROVED_ITEM, CHECKLIST_STATES, MANUAL_CHECKLIST_KEYS, POST_IMPLEMENTATION_POINTS,
    PRE_IMPLEMENTATION_CHECKLIST, TECHNICAL_REVIEW_POINTS, VALIDATION_POINTS, ChangeState, ChangeType, Impact,
    Likelihood, Priority, RollbackTrigger, TimelineKind, Vote,
)
from .models import CABApproval, ChangeEvent, ChangeRequest, ChangeSequence, StandardChangeKind
from .selectors import change_conflicts
from .systems import systems_normalize

# The form's fields an operator writes (create, edit, and the formal request of an emergency change).
FORM_INPUT_FIELDS = [
    "title", "change_type", "standard_kind", "priority", "description", "business_justification", "technical_details",
    "affected_systems", "impact", "likelihood", "risk_assessment", "testing_performed", "implementation_plan",
    "rollback_plan", "scheduled_start", "scheduled_end", "incident",
]
_CHOICES = {"change_type": ChangeType, "priority": Priority, "impact": Impact, "likelihood": Likelihood}
_LABELS = {item.key: item.label for items in PRE_IMPLEMENTATION_CHECKLIST.values() for item in items}


def _actor_name(actor) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else "system"


def _actor_user(actor):
    return actor if getattr(actor, "is_authenticated", False) else None


def change_id_next(*, day=None) -> str:
    """The next CHG-YYYY-MMDD-NNN of `day` (today in the configured time zone).

    One upsert on the day's counter row: concurrent callers serialize on that row, so no two
    changes get the same number (PostgreSQL and SQLite both support ON CONFLICT ... RETURNING)."""
    day = day or timezone.localdate()
    table = connection.ops.quote_name(ChangeSequence._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (day, last) VALUES (%s, 1) "
            f"ON CONFLICT (day) DO UPDATE SET last = {table}.last + 1 RETURNING last",
            [day],
        )
        (number,) = cursor.fetchone()
    return f"CHG-{day:%Y}-{day:%m%d}-{number:03d}"


def _event(change: ChangeRequest, actor, kind: str, message: str, *, from_state: str = "", to_state: str = "",
           details: dict | None = None) -> ChangeEvent:
    return ChangeEvent.objects.create(change=change, actor=_actor_user(actor), actor_name=_actor_name(actor),
                                      kind=kind, message=message, from_state=from_state, to_state=to_state,
                                      details=details or {})


def _audit(change: ChangeRequest, actor, action: str, *, reason: str = "", details: dict | None = None) -> None:
    audit_record(actor=actor, action=f"change.{action}", target=change.change_id, reason=reason, details=details)


def _lock(change: ChangeRequest | str) -> ChangeRequest:
    change_id = change if isinstance(change, str) else change.change_id
    try:
        return ChangeRequest.objects.select_for_update(of=("self",)).select_related("standard_kind").get(change_id=change_id)
    except ChangeRequest.DoesNotExist:
        raise ApplicationError(f"Unknown change request {change_id}.", status_code=404) from None


def transition_refusal(change: ChangeRequest, name: str, user) -> ApplicationError | None:
    """Why `user` may not run transition `name` on `change` now, or None when they may."""
    method = getattr(change, name)
    label = name.replace("_", " ")
    if not can_proceed(method, check_conditions=False):
        return ApplicationError(f"A change in state '{change.get_status_display()}' cannot {label}.", status_code=409)
    transition = method._django_fsm.get_transition(change.status)
    if not transition.has_perm(change, user):
        return ApplicationError(f"Your role does not allow you to {label} {change.change_id}.", status_code=403)
    unmet = [condition.message for condition in transition.conditions if not condition(change)]
    if unmet:
        return ApplicationError(f"Cannot {label} {change.change_id}: " + "; ".join(unmet) + ".", status_code=409,
                                extra={"unmet": unmet})
    return None


def _transition(change: ChangeRequest, name: str, actor, *, reason: str = "", message: str = "",
                details: dict | None = None) -> ChangeRequest:
    refusal = transition_refusal(change, name, actor)
    if refusal is not None:
        raise refusal
    before = change.status
    getattr(change, name)()
    change.save()
    after = change.status
    text = message or f"{ChangeState(before).label} → {ChangeState(after).label}"
    _event(change, actor, TimelineKind.TRANSITION, text + (f": {reason}" if reason else ""), from_state=before,
           to_state=after, details=details)
    _audit(change, actor, name, reason=reason, details={"from": before, "to": after, **(details or {})})
    return change


def _record_conflicts(change: ChangeRequest, actor) -> None:
    """Flag window overlaps on shared systems on both changes' timelines (flagged, not blocked)."""
    for conflict in change_conflicts(change):
        shared = ", ".join(conflict.shared)
        _event(change, actor, TimelineKind.CONFLICT,
               f"Window overlaps {conflict.other_id} ({conflict.other.get_status_display()}) on {shared}",
               details={"other": conflict.other_id, "shared": conflict.shared})
        _event(conflict.other, actor, TimelineKind.CONFLICT,
               f"Window overlaps {change.change_id} ({change.get_status_display()}) on {shared}",
               details={"other": change.change_id, "shared": conflict.shared})


def _clean_form(data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    unknown = set(data) - set(FORM_INPUT_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    clean: dict[str, Any] = {}
    for key, value in data.items():
        if key in _CHOICES:
            try:
                clean[key] = _CHOICES[key](value).value
            except ValueError:
                allowed = ", ".join(c.value for c in _CHOICES[key])
                raise ApplicationError(f"{key}: '{value}' is not one of {allowed}.", extra={"field": key}) from None
        elif key == "affected_systems":
            clean[key] = systems_normalize(value)
        elif key == "standard_kind":
            if value in (None, ""):
                clean[key] = None
            elif isinstance(value, StandardChangeKind):
                clean[key] = value
            else:
                kind = StandardChangeKind.objects.filter(key=str(value), active=True).first()
                if kind is None:
                    raise ApplicationError(f"standard_kind: '{value}' is not in the catalogue of pre-approved changes.",
                                           extra={"field": key})
                clean[key] = kind
        elif key == "incident":
            clean[key] = _incident(value)
        elif key in ("scheduled_start", "scheduled_end"):
            if value is not None and not isinstance(value, datetime):
                raise ApplicationError(f"{key}: expected a date and time.", extra={"field": key})
            if value is not None and timezone.is_naive(value):
                value = timezone.make_aware(value)
            clean[key] = value
        else:
            clean[key] = "" if value is None else str(value).strip()
    if not partial and not clean.get("title"):
        raise ApplicationError("title: a change request needs a title.", extra={"field": "title"})
    if "title" in clean and not clean["title"]:
        raise ApplicationError("title: a change request needs a title.", extra={"field": "title"})
    if clean.get("change_type") == ChangeType.EMERGENCY:
        raise ApplicationError("Emergency changes are declared (emergency_change_declare), not raised as a form.")
    return clean


def _incident(value):
    """An Incident, from itself or its INC-... id; None clears the link."""
    from incidents.models import Incident

    if value in (None, ""):
        return None
    if isinstance(value, Incident):
        return value
    incident = Incident.objects.filter(incident_id=str(value).strip()).first()
    if incident is None:
        raise ApplicationError(f"incident: no incident '{value}'.", extra={"field": "incident"})
    return incident


def _incident_note(change: ChangeRequest, actor) -> None:
    """Say on the incident's own timeline that a change is linked to it (it is reviewed in its post-incident review)."""
    from incidents.choices import TimelineKind as IncidentTimelineKind
    from incidents.timeline import timeline_add

    what = "Emergency change" if change.is_emergency else "Change"
    timeline_add(incident=change.incident, kind=IncidentTimelineKind.NOTE, actor=actor,
                 message=f"{what} {change.change_id} linked: {change.title}",
                 details={"change": change.change_id, "change_type": change.change_type})


def _check_window(change: ChangeRequest) -> None:
    if change.scheduled_start and change.scheduled_end and change.scheduled_end <= change.scheduled_start:
        raise ApplicationError("The scheduled window must end after it starts.", extra={"field": "scheduled_end"})


@transaction.atomic
def change_create(*, actor, data: dict[str, Any]) -> ChangeRequest:
    """Raise a change request (a draft) from the manual's form fields; the requester is the actor."""
    if not perms.may_raise(actor):
        raise ApplicationError("Your role does not allow raising change requests.", status_code=403)
    clean = _clean_form(data, partial=False)
    change = ChangeRequest(change_id=change_id_next(), requester=_actor_user(actor), **clean)
    _check_window(change)
    if change.change_type != ChangeType.STANDARD:
        change.standard_kind = None
    change.save()
    _event(change, actor, TimelineKind.CREATED, f"Change request raised as {change.get_change_type_display()}",
           to_state=change.status)
    _audit(change, actor, "create", details={"type": change.change_type, "risk": change.risk_level})
    if change.incident_id:
        _incident_note(change, actor)
    return change


@transaction.atomic
def change_update(*, change: ChangeRequest, actor, data: dict[str, Any]) -> ChangeRequest:
    """Edit the form of a draft (or the formal request of an emergency change not yet formalized)."""
    change = _lock(change)
    if not perms.may_edit(change, actor):
        raise ApplicationError("Your role does not allow editing change requests.", status_code=403)
    if not change.is_editable:
        raise ApplicationError(f"{change.change_id} is {change.get_status_display()}: only drafts can be edited.",
                               status_code=409)
    clean = _clean_form(data, partial=True)
    if change.is_emergency and "change_type" in clean:
        raise ApplicationError("An emergency change stays an emergency change.")
    changed = {}
    incident_before = change.incident_id
    for key, value in clean.items():
        if getattr(change, key) != value:
            changed[key] = str(value) if key in ("standard_kind", "incident") else value
            setattr(change, key, value)
    if change.change_type != ChangeType.STANDARD:
        change.standard_kind = None
    _check_window(change)
    change.save()
    if changed:
        _event(change, actor, TimelineKind.EDITED, "Edited: " + ", ".join(sorted(changed)),
               details={"fields": sorted(changed)})
        _audit(change, actor, "update", details={"fields": sorted(changed)})
    if change.incident_id and change.incident_id != incident_before:
        _incident_note(change, actor)
    return change


@transaction.atomic
def change_submit(*, change: ChangeRequest, actor) -> ChangeRequest:
    """Submit the form. A standard change of a catalogued kind is pre-approved at once; a normal one
    waits for technical review. Overlapping windows on shared systems are flagged on both changes."""
    change = _lock(change)
    change = _transition(change, "submit", actor)
    if change.change_type == ChangeType.STANDARD:
        change = _transition(change, "preapprove", actor,
                             message=f"Pre-approved standard change ({change.standard_kind.name})")
    _record_conflicts(change, actor)
    return change


@transaction.atomic
def change_review_start(*, change: ChangeRequest, actor) -> ChangeRequest:
    """A technical reviewer (Senior Engineer or above, not the requester) takes the change into review."""
    change = _lock(change)
    change = _transition(change, "review_start", actor)
    change.technical_reviewer = _actor_user(actor)
    change.save(update_fields=["technical_reviewer", "updated_at"])
    return change


def _points(points, items, what: str) -> dict[str, bool]:
    """Checklist input as a list of confirmed keys or a {key: bool} mapping."""
    keys = [p.key for p in items]
    if isinstance(points, dict):
        confirmed = [k for k, v in points.items() if v]
        given = list(points)
    else:
        confirmed = given = list(points or [])
    unknown = [k for k in given if k not in keys]
    if unknown:
        raise ApplicationError(f"Unknown {what} point(s): {', '.join(map(str, unknown))} (known: {', '.join(keys)}).")
    return {k: k in confirmed for k in keys}


@transaction.atomic
def change_review_pass(*, change: ChangeRequest, actor, points, notes: str = "") -> ChangeRequest:
    """Record the technical review (all five points of Step 2 confirmed) and send the change to CAB review."""
    change = _lock(change)
    if change.status == ChangeState.TECHNICAL_REVIEW and perms.may_review_technically(change, actor):
        change.technical_review = _points(points, TECHNICAL_REVIEW_POINTS, "technical review")
        change.technical_review_notes = notes.strip()
        change.technical_reviewer = _actor_user(actor)
    requirement = APPROVAL_TABLE[change.risk_level]
    return _transition(change, "review_pass", actor, reason=notes.strip(),
                       message=f"Technical review passed; to CAB review (needs {requirement.label})",
                       details={"points": change.technical_review})


def _reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(f"Give a reason to {what}.", extra={"field": "reason"})
    return reason


def _decide(change: ChangeRequest, actor, reason: str, *, method: str, what: str, message: str) -> ChangeRequest:
    """A transition that needs a reason, kept on the change as its decision reason."""
    change = _lock(change)
    reason = _reason(reason, what)
    change = _transition(change, method, actor, reason=reason, message=message)
    change.decision_reason = reason
    change.save(update_fields=["decision_reason", "updated_at"])
    return change


@transaction.atomic
def change_return(*, change: ChangeRequest, actor, reason: str) -> ChangeRequest:
    """The technical reviewer sends the change back to its requester as a draft, saying what to fix."""
    return _decide(change, actor, reason, method="return_to_draft", what="return a change",
                   message="Returned to draft for rework")


@transaction.atomic
def change_reject(*, change: ChangeRequest, actor, reason: str, via: str = "api") -> ChangeRequest:
    """Reject: in technical review by the reviewer; in CAB review this is a reject vote (change_vote)."""
    if change.status == ChangeState.CAB_REVIEW:
        return change_vote(change=change, actor=actor, decision=Vote.REJECT, comment=reason, via=via)
    return _decide(change, actor, reason, method="review_reject", what="reject a change",
                   message="Rejected in technical review")


@transaction.atomic
def change_vote(*, change: ChangeRequest, actor, decision: str, comment: str = "", via: str = "api") -> ChangeRequest:
    """A CAB member or approver votes on a change in CAB review (the same rules in admin, console and API).

    The vote is recorded with who, in which roles and when. When the approval table's requirement is met
    the change is approved; when it can no longer be met (the approver refuses, or too many CAB members
    do) it is rejected."""
    change = _lock(change)
    try:
        decision = Vote(decision).value
    except ValueError:
        raise ApplicationError("decision must be 'approve' or 'reject'.") from None
    if change.status != ChangeState.CAB_REVIEW:
        raise ApplicationError(f"{change.change_id} is {change.get_status_display()}, not in CAB review.", status_code=409)
    requirement = APPROVAL_TABLE[change.risk_level]
    capacities = perms.approval_capacities(change, actor)
    if not capacities:
        if change.requester_id and change.requester_id == getattr(actor, "pk", None):
            raise ApplicationError("You requested this change; someone else must approve it.", status_code=403)
        needed = requirement.approver_group + (" or a more senior manager" if requirement.approver_group != "VP/CTO" else "")
        if requirement.cab != "none":
            needed += ", and CAB members"
        raise ApplicationError(f"A {change.get_risk_level_display()} risk change needs {requirement.label}: "
                               f"votes from {needed}. Your role cannot vote on it.", status_code=403)
    comment = (comment or "").strip()
    if decision == Vote.REJECT and not comment:
        raise ApplicationError("A rejection needs a comment.", extra={"field": "comment"})
    if CABApproval.objects.filter(change=change, round=change.cab_round, voter=actor).exists():
        raise ApplicationError(f"You have already voted on {change.change_id}.", status_code=409)
    try:
        with transaction.atomic():
            vote = CABApproval.objects.create(change=change, round=change.cab_round, voter=actor,
                                              voter_name=actor.get_username(), capacities=capacities,
                                              voter_groups=sorted(actor.groups.values_list("name", flat=True)),
                                              decision=decision, comment=comment, via=via)
    except IntegrityError:
        raise ApplicationError(f"You have already voted on {change.change_id}.", status_code=409) from None
    verb = "approved" if decision == Vote.APPROVE else "rejected"
    _event(change, actor, TimelineKind.APPROVAL,
           f"{verb.capitalize()} as {' + '.join(capacities)}" + (f": {comment}" if comment else ""),
           details={"decision": decision, "capacities": capacities, "round": change.cab_round, "via": via})
    _audit(change, actor, f"vote.{decision}", reason=comment, details={"capacities": capacities, "via": via,
                                                                         "round": change.cab_round, "vote": vote.pk})
    status = approval_status(change)
    if status.refused:
        change = _transition(change, "cab_reject", actor, reason=comment, message="Rejected by CAB review")
        change.decision_reason = comment
        change.save(update_fields=["decision_reason", "updated_at"])
    elif status.granted:
        change = _transition(change, "cab_approve", actor,
                             message=f"Approved ({requirement.label}: {', '.join(status.approver_approved_by)}"
                                     + (f"; CAB {', '.join(status.cab_approved_by)}" if status.cab_approved_by else "")
                                     + ")")
    return change


@transaction.atomic
def change_schedule(*, change: ChangeRequest, actor, start: datetime | None = None,
                    end: datetime | None = None) -> ChangeRequest:
    """Confirm (or move) the implementation window of an approved change; overlaps are flagged."""
    change = _lock(change)
    moved = {}
    if start is not None or end is not None:
        if not perms.may_implement(change, actor):
            raise ApplicationError("Your role does not allow you to schedule changes.", status_code=403)
        for key, value in (("scheduled_start", start), ("scheduled_end", end)):
            if value is not None:
                value = timezone.make_aware(value) if timezone.is_naive(value) else value
                if getattr(change, key) != value:
                    moved[key] = value.isoformat()
                    setattr(change, key, value)
        _check_window(change)
    window = f"{timezone.localtime(change.scheduled_start):%Y-%m-%d %H:%M} – {timezone.localtime(change.scheduled_end):%Y-%m-%d %H:%M}" \
        if change.scheduled_start and change.scheduled_end else ""
    change = _transition(change, "schedule", actor, message=("Rescheduled" if moved else "Scheduled") + f" for {window}",
                         details={"moved": moved} if moved else None)
    _record_conflicts(change, actor)
    return change


@transaction.atomic
def change_checklist_set(*, change: ChangeRequest, actor, items: dict[str, bool]) -> ChangeRequest:
    """Tick or untick items of the pre-implementation checklist (each tick records who and when)."""
    change = _lock(change)
    if not perms.may_implement(change, actor):
        raise ApplicationError("Your role does not allow you to work the checklist.", status_code=403)
    if change.status not in CHECKLIST_STATES:
        raise ApplicationError(f"The checklist of a change in state '{change.get_status_display()}' is closed.",
                               status_code=409)
    if not isinstance(items, dict):
        raise ApplicationError("items must map checklist keys to true or false.")
    if CHANGE_APPROVED_ITEM in items:
        raise ApplicationError("'Change request approved' is ticked by the workflow when the change is approved.")
    unknown = [k for k in items if k not in MANUAL_CHECKLIST_KEYS]
    if unknown:
        raise ApplicationError(f"Unknown checklist item(s): {', '.join(map(str, unknown))}.")
    ticked, unticked = [], []
    checklist = dict(change.checklist)
    for key, value in items.items():
        if value and key not in checklist:
            checklist[key] = {"by": _actor_name(actor), "at": timezone.now().isoformat()}
            ticked.append(key)
        elif not value and key in checklist:
            del checklist[key]
            unticked.append(key)
    if not (ticked or unticked):
        return change
    change.checklist = checklist
    change.save(update_fields=["checklist", "updated_at"])
    parts = []
    if ticked:
        parts.append("Ticked: " + "; ".join(_LABELS[k] for k in ticked))
    if unticked:
        parts.append("Unticked: " + "; ".join(_LABELS[k] for k in unticked))
    _event(change, actor, TimelineKind.CHECKLIST, ". ".join(parts), details={"ticked": ticked, "unticked": unticked})
    _audit(change, actor, "checklist", details={"ticked": ticked, "unticked": unticked})
    return change


@transaction.atomic
def change_start(*, change: ChangeRequest, actor) -> ChangeRequest:
    """Announce the change start and begin implementation: the checklist must be complete and the window open."""
    change = _lock(change)
    return _transition(change, "start", actor, message="Change start announced; implementation in progress")


@transaction.atomic
def change_implementation_done(*, change: ChangeRequest, actor, notes: str = "") -> ChangeRequest:
    """The implementation plan is executed; record deviations and evidence, then validate."""
    change = _lock(change)
    change = _transition(change, "implementation_done", actor, reason=notes.strip(),
                         message="Implementation executed; validating")
    if notes.strip():
        change.implementation_notes = notes.strip()
        change.save(update_fields=["implementation_notes", "updated_at"])
    return change


@transaction.atomic
def change_complete(*, change: ChangeRequest, actor, points, notes: str = "") -> ChangeRequest:
    """Validation succeeded (the four points of "Validate Change"): announce the change complete.
    The post-implementation review is then due within 24 hours."""
    change = _lock(change)
    if change.status == ChangeState.VALIDATING:
        change.validation = _points(points, VALIDATION_POINTS, "validation")
        change.validation_notes = notes.strip()
    return _transition(change, "complete", actor, reason=notes.strip(), message="Change complete announced",
                       details={"points": change.validation})


@transaction.atomic
def change_roll_back(*, change: ChangeRequest, actor, trigger: str, details: str = "") -> ChangeRequest:
    """Roll the change back, recording which of the manual's rollback triggers fired.
    The post-implementation review is then due within 24 hours."""
    change = _lock(change)
    try:
        trigger = RollbackTrigger(trigger).value
    except ValueError:
        allowed = ", ".join(t.value for t in RollbackTrigger)
        raise ApplicationError(f"trigger: '{trigger}' is not one of {allowed}.", extra={"field": "trigger"}) from None
    if change.status in (ChangeState.IN_PROGRESS, ChangeState.VALIDATING):
        change.rollback_trigger = trigger
        change.rollback_details = (details or "").strip()
    label = RollbackTrigger(trigger).label
    return _transition(change, "roll_back", actor, reason=(details or "").strip(),
                       message=f"Rolled back (trigger: {label})", details={"trigger": trigger})


@transaction.atomic
def change_close(*, change: ChangeRequest, actor, points, lessons_learned: str, results: str) -> ChangeRequest:
    """The post-implementation review (Immediate Review): stability, issues, monitoring, lessons learned
    and results are recorded and the change request is closed."""
    change = _lock(change)
    if change.status in (ChangeState.COMPLETED, ChangeState.ROLLED_BACK) and perms.may_implement(change, actor):
        change.post_review = _points(points, POST_IMPLEMENTATION_POINTS, "post-implementation review")
        change.lessons_learned = (lessons_learned or "").strip()
        change.review_results = (results or "").strip()
        change.reviewed_by = _actor_user(actor)
    late = change.post_review_overdue()
    return _transition(change, "close", actor, message="Post-implementation review done; closed"
                       + (" (review was overdue)" if late else ""), details={"late": late})


@transaction.atomic
def change_cancel(*, change: ChangeRequest, actor, reason: str) -> ChangeRequest:
    """Withdraw a change that has not started (its requester, or the Operations Lead and above)."""
    return _decide(change, actor, reason, method="cancel", what="cancel a change", message="Cancelled")


@transaction.atomic
def change_note_add(*, change: ChangeRequest, actor, text: str) -> ChangeEvent:
    """A free note on the timeline (progress, evidence, checkpoints)."""
    change = _lock(change)
    if not perms.may_implement(change, actor):
        raise ApplicationError("Your role does not allow adding notes to changes.", status_code=403)
    text = (text or "").strip()
    if not text:
        raise ApplicationError("The note is empty.", extra={"field": "text"})
    event = _event(change, actor, TimelineKind.NOTE, text)
    _audit(change, actor, "note", reason=text)
    return event


def _on_call_engineer_name(at: datetime) -> str:
    """Who the incident rota names as on call at `at`, if the rota is set up."""
    from incidents.oncall import on_call_engineer

    person = on_call_engineer(at)
    if person is None:
        return ""
    return person.get_username() if hasattr(person, "get_username") else str(person)


@transaction.atomic
def emergency_change_declare(*, actor, title: str, description: str, affected_systems, verbal_approver,
                             impact: str, likelihood: str, verbal_approval_notes: str = "",
                             expected_end: datetime | None = None, incident=None) -> ChangeRequest:
    """Declare an emergency change (Emergency Change Process): the on-call manager's verbal approval is
    recorded and implementation starts at once. The formal change request is due within 24 hours.
    `incident` (an Incident or its INC-... id) is the incident it remediates: the link is noted on the
    incident's timeline, and the change is listed for its post-incident review."""
    if not perms.may_raise(actor):
        raise ApplicationError("Your role does not allow declaring emergency changes.", status_code=403)
    if verbal_approver is None or not perms.is_on_call_manager(verbal_approver):
        raise ApplicationError("The verbal approval must come from an on-call manager (Engineering Manager, "
                               "Director or VP/CTO).", status_code=400, extra={"field": "verbal_approver"})
    if getattr(verbal_approver, "pk", None) == getattr(actor, "pk", None):
        raise ApplicationError("Someone other than the declarer must give the verbal approval.",
                               extra={"field": "verbal_approver"})
    clean = _clean_form({"title": title, "description": description, "affected_systems": affected_systems,
                         "impact": impact, "likelihood": likelihood, "incident": incident}, partial=False)
    if not clean["description"]:
        raise ApplicationError("description: say what is being changed and why.", extra={"field": "description"})
    if not clean["affected_systems"]:
        raise ApplicationError("affected_systems: name at least one affected component.",
                               extra={"field": "affected_systems"})
    now = timezone.now()
    expected_end = expected_end or now + timedelta(hours=2)
    if timezone.is_naive(expected_end):
        expected_end = timezone.make_aware(expected_end)
    if expected_end <= now:
        raise ApplicationError("expected_end: the emergency window must end in the future.",
                               extra={"field": "expected_end"})
    change = ChangeRequest(change_id=change_id_next(), change_type=ChangeType.EMERGENCY, requester=_actor_user(actor),
                           priority=Priority.HIGH, scheduled_start=now, scheduled_end=expected_end,
                           verbal_approver=verbal_approver, verbal_approved_at=now,
                           verbal_approval_notes=(verbal_approval_notes or "").strip(),
                           on_call_engineer=_on_call_engineer_name(now), **clean)
    change.save()
    _event(change, actor, TimelineKind.EMERGENCY,
           f"Emergency change declared; verbal approval by {verbal_approver.get_username()} (on-call manager)"
           + (f": {change.verbal_approval_notes}" if change.verbal_approval_notes else ""),
           details={"verbal_approver": verbal_approver.get_username(), "on_call_engineer": change.on_call_engineer,
                    "incident": change.incident.incident_id if change.incident else None})
    _audit(change, actor, "emergency.declare", reason=change.verbal_approval_notes,
           details={"verbal_approver": verbal_approver.get_username(),
                    "incident": change.incident.incident_id if change.incident else None})
    if change.incident:
        _incident_note(change, actor)
    change = _transition(change, "declare", actor, message="Implementation in progress (emergency)")
    _record_conflicts(change, actor)
    return change


@transaction.atomic
def change_formalize(*, change: ChangeRequest, actor, data: dict[str, Any] | None = None) -> ChangeRequest:
    """Complete the formal change request of an emergency change (due within 24 hours of its declaration)."""
    if data:
        change = change_update(change=change, actor=actor, data=data)
    change = _lock(change)
    if not change.is_emergency:
        raise ApplicationError("Only emergency changes have a formal request to complete afterwards.", status_code=409)
    if change.formal_request_at:
        raise ApplicationError(f"The formal request of {change.change_id} is already complete.", status_code=409)
    if not perms.may_edit(change, actor):
        raise ApplicationError("Your role does not allow editing change requests.", status_code=403)
    missing = change.missing_form_fields()
    if missing:
        raise ApplicationError("Complete the formal change request first: missing " + ", ".join(missing) + ".",
                               status_code=409, extra={"missing": missing})
    late = change.formal_request_overdue()
    change.formal_request_at = timezone.now()
    change.save(update_fields=["formal_request_at", "updated_at"])
    _event(change, actor, TimelineKind.EMERGENCY,
           "Formal change request completed" + (" (overdue: due within 24 hours of the declaration)" if late else ""),
           details={"late": late})
    _audit(change, actor, "emergency.formalize", details={"late": late})
    return change
