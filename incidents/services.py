"""Incident services: everything that changes an incident goes through here.

Each service locks the incident row, performs the django-fsm transition (checking its source state,
conditions and permission), writes the timeline and the audit log, and queues notifications that are
sent after commit. The console, the API, the admin and the Celery tasks all call these.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_fsm import can_proceed

from opsconsole import roles
from opsconsole.audit import audit_record
from opsconsole.errors import ApplicationError

from .business_hours import business_days_deadline
from .choices import (
    ACTIVE_STATUSES,
    ActionItemStatus,
    Audience,
    CommunicationKind,
    ComponentKind,
    DetectionSource,
    EscalationTrigger,
    IncidentStatus,
    ManualEscalationReason,
    PipelineModule,
    ReviewStatus,
    Severity,
    TimelineKind,
    TimerKind,
)
from .communications import communication_render
from .escalation import (
    escalation_engage,
    escalation_next,
    role_members,
    timers_cancel,
    timers_schedule,
)
from .models import (
    ActionItem,
    AffectedComponent,
    Communication,
    Incident,
    IncidentDaySequence,
    PostIncidentReview,
    Responder,
    TimelineEntry,
)
from .notifications import notifications_queue
from .policy import EXECUTIVE_ROLES, SEVERITY_DEFINITIONS, requirements
from .timeline import actor_user, timeline_add

logger = logging.getLogger(__name__)
User = get_user_model()

EDITABLE_FIELDS = ("summary", "description", "impact", "detection_source", "began_at", "recent_changes",
                   "current_actions", "next_steps", "eta", "channel_links")
# Notes and timeline lines repeated by a signal are folded: at most one entry per signal per this long.
SIGNAL_REPEAT_QUIET = timedelta(minutes=15)


# ---------------------------------------------------------------- helpers

def incident_id_next(at: datetime) -> str:
    """Allocate INC-YYYYMMDD-NNNN for a declaration at `at` (day in settings.TIME_ZONE).

    One statement increments the day's counter row, creating it if needed; PostgreSQL (and SQLite)
    hold that row's lock until the surrounding transaction ends, so concurrent declarations queue on it
    and each gets the next number. Call it inside the transaction that creates the incident."""
    day = at.astimezone(ZoneInfo(settings.TIME_ZONE)).date()
    table = connection.ops.quote_name(IncidentDaySequence._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} ("day", "last") VALUES (%s, 1) '
            f'ON CONFLICT ("day") DO UPDATE SET "last" = {table}."last" + 1 RETURNING "last"', [day])
        number = cursor.fetchone()[0]
    return f"INC-{day:%Y%m%d}-{number:04d}"


def _lock(incident: Incident | str) -> Incident:
    lookup = {"incident_id": incident} if isinstance(incident, str) else {"pk": incident.pk}
    try:
        return Incident.objects.select_for_update().get(**lookup)
    except Incident.DoesNotExist:
        raise ApplicationError("No such incident.", status_code=404) from None


def _perform(incident: Incident, name: str, actor, *args):
    """Run transition `name` after checking, in order: the source state, the actor's permission and the
    conditions; each refusal is a clear ApplicationError."""
    method = getattr(incident, name)
    meta = method._django_fsm
    state = meta.field.get_state(incident)
    if not can_proceed(method, check_conditions=False):
        raise ApplicationError(f"{incident.incident_id} is {incident.get_status_display()}: cannot {name} it.", status_code=409)
    user = actor_user(actor)
    if user is not None and not meta.has_transition_perm(incident, state, user):
        raise ApplicationError(f"Your role does not allow {name} on incidents.", status_code=403)
    if actor is not None and user is None and not isinstance(actor, str):
        raise ApplicationError("Not logged in.", status_code=403)
    if not can_proceed(method):
        transition = meta.get_transition(state)
        unmet = [c.__doc__ or c.__name__ for c in transition.conditions or [] if not c(incident)]
        raise ApplicationError(f"Cannot {name} {incident.incident_id}: needs {'; '.join(unmet)}.", status_code=409)
    return method(*args)


def _require_operator(actor) -> None:
    user = actor_user(actor)
    if user is not None and not roles.is_operator(user):
        raise ApplicationError("This action needs an operator role (Operations Team or above).", status_code=403)


def _require_active(incident: Incident, what: str) -> None:
    if incident.status not in ACTIVE_STATUSES:
        raise ApplicationError(f"{incident.incident_id} is {incident.get_status_display()}: cannot {what}.", status_code=409)


def _text(value: str | None, label: str, *, required: bool = True, limit: int = 10000) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ApplicationError(f"{label} is required.")
    if len(value) > limit:
        raise ApplicationError(f"{label} is longer than {limit} characters.")
    return value


def _apply_requirements(incident: Incident) -> None:
    """Due times of the manual's response requirements for the incident's current severity."""
    needs = requirements(incident.severity)
    start = incident.declared_at
    incident.response_due_at = needs.response.due(start)
    incident.notification_audience = needs.notification_audience or ""
    incident.notification_due_at = needs.notification.due(start) if needs.notification else None
    incident.update_due_at = (needs.update_every.due(incident.last_update_at or start)
                              if needs.update_every and incident.status in ACTIVE_STATUSES else None)
    incident.mitigation_due_at = needs.mitigation.due(start) if needs.mitigation else None
    incident.resolution_due_at = needs.resolution.due(start) if needs.resolution else None


def component_exists(kind: str, identifier: str) -> bool:
    from delivery.models import Destination, RoutingRule
    from ingestion.models import Source
    from transform.models import TransformRule

    if kind == ComponentKind.MODULE:
        return identifier in PipelineModule.values
    if kind == ComponentKind.SOURCE:
        return Source.objects.filter(source_id=identifier).exists()
    if kind == ComponentKind.RULE:
        return (TransformRule.objects.filter(rule_id=identifier).exists()
                or RoutingRule.objects.filter(rule_id=identifier).exists())
    if kind == ComponentKind.DESTINATION:
        return Destination.objects.filter(destination_id=identifier).exists()
    return False


def _components(items: Iterable) -> list[tuple[str, str]]:
    """Validate (kind, identifier) pairs (or {"kind", "identifier"} dicts) against the applied configuration."""
    out: list[tuple[str, str]] = []
    for item in items or ():
        kind, identifier = (item.get("kind"), item.get("identifier")) if isinstance(item, dict) else item
        kind, identifier = str(kind or "").strip(), str(identifier or "").strip()
        if kind not in ComponentKind.values:
            raise ApplicationError(f"Unknown component kind {kind!r} (one of {', '.join(ComponentKind.values)}).")
        if not component_exists(kind, identifier):
            raise ApplicationError(f"No {ComponentKind(kind).label.lower()} {identifier!r} in the applied configuration.")
        if (kind, identifier) not in out:
            out.append((kind, identifier))
    return out


def _links(links) -> list[dict]:
    out = []
    for link in links or ():
        if isinstance(link, str):
            link = {"label": "", "url": link}
        url = str(link.get("url", "")).strip()
        if not url.startswith(("http://", "https://")):
            raise ApplicationError(f"Communication channel links must be http(s) URLs, not {url!r}.")
        out.append({"label": str(link.get("label", "")).strip()[:100], "url": url[:500]})
    return out


def _add_components(incident: Incident, pairs: list[tuple[str, str]], actor, now) -> list[tuple[str, str]]:
    existing = set(incident.components.values_list("kind", "identifier"))
    new = [p for p in pairs if p not in existing]
    AffectedComponent.objects.bulk_create([AffectedComponent(incident=incident, kind=k, identifier=i) for k, i in new])
    if new:
        timeline_add(incident=incident, kind=TimelineKind.COMPONENT, actor=actor, at=now,
                     message="Affected: " + ", ".join(f"{ComponentKind(k).label.lower()} {i}" for k, i in new),
                     details={"added": [f"{k}:{i}" for k, i in new]})
    return new


def _audit(actor, action: str, incident: Incident, reason: str = "", **details) -> None:
    audit_record(actor=actor if actor is not None else "system", action=action, target=incident.incident_id,
                 reason=reason, details=details)


def _status_change(incident: Incident, before: str, actor, now, note: str = "", **details) -> None:
    after = incident.get_status_display()
    message = f"Status {IncidentStatus(before).label} → {after}" + (f": {note}" if note else "")
    timeline_add(incident=incident, kind=TimelineKind.TRANSITION, actor=actor, at=now, message=message,
                 details={"from": before, "to": incident.status, **details})
    _audit(actor, f"incident.{incident.status}", incident, note, **{"from": before, "to": incident.status, **details})


# ---------------------------------------------------------------- declaring

@transaction.atomic
def incident_declare(*, actor, severity: str, summary: str, impact: str = "", description: str = "",
                     detection_source: str = DetectionSource.OPERATIONS, began_at: datetime | None = None,
                     recent_changes: str = "", current_actions: str = "", components: Sequence = (),
                     channel_links: Sequence = (), signal_key: str = "", details: dict | None = None,
                     now: datetime | None = None) -> Incident:
    """Open an incident: allocate its INC id, start the response clocks of its severity, engage the
    matrix's initial responders (notified on every channel) and arm the escalation timers."""
    _require_operator(actor)
    now = now or timezone.now()
    if severity not in Severity.values:
        raise ApplicationError(f"Severity must be one of {', '.join(Severity.values)}.")
    if detection_source not in DetectionSource.values:
        raise ApplicationError(f"Unknown detection source {detection_source!r}.")
    pairs = _components(components)
    incident = Incident(
        incident_id=incident_id_next(now), severity=severity, summary=_text(summary, "Summary", limit=200),
        impact=_text(impact, "Impact", required=False), description=_text(description, "Description", required=False),
        detection_source=detection_source, began_at=began_at, recent_changes=_text(recent_changes, "Recent changes", required=False),
        current_actions=_text(current_actions, "Actions", required=False), channel_links=_links(channel_links),
        declared_at=now, declared_by=actor_user(actor), signal_key=signal_key[:200],
    )
    _apply_requirements(incident)
    incident.save()
    definition = SEVERITY_DEFINITIONS[severity]
    timeline_add(incident=incident, kind=TimelineKind.DECLARED, actor=actor, at=now,
                 message=f"Declared {severity} - {definition['name']}: {incident.summary} "
                         f"(detected by {incident.get_detection_source_display().lower()})",
                 details={"severity": severity, "definition": definition["summary"], **(details or {})})
    _add_components(incident, pairs, actor, now)
    _audit(actor, "incident.declare", incident, incident.summary, severity=severity,
           components=[f"{k}:{i}" for k, i in pairs], signal_key=signal_key or None)
    user = actor_user(actor)
    if user is not None:
        Responder.objects.create(incident=incident, user=user, role="Declarer", level=None, engaged_at=now)
    escalation_engage(incident=incident, level=0, trigger=EscalationTrigger.DECLARED, actor=actor, now=now)
    timers_schedule(incident=incident)
    return incident


def signal_key_for_destination(destination_id: str) -> str:
    """The one signal key for "destination failing", so the DLQ detector and the circuit breakers open
    (and find) the same incident for a destination."""
    return f"gamma.destination.{destination_id}"


def incident_open_from_signal(*, key: str, severity: str, summary: str, impact: str = "", description: str = "",
                              components: Sequence = (), details: dict | None = None, source: str = "pipeline",
                              now: datetime | None = None) -> tuple[Incident, bool]:
    """Open an incident for a pipeline signal (circuit breaker opened, DLQ growth, stalled module, alert),
    or find the active one already open for the same `key`. Returns (incident, created).

    Race-free: one active incident per key is a unique constraint; a concurrent opener that loses the
    race gets the winner's incident. A repeated signal adds a timeline line at most every 15 minutes.
    Components that are not in the applied configuration are skipped rather than refused."""
    now = now or timezone.now()
    pairs = []
    for kind, identifier in components:
        if kind in ComponentKind.values and component_exists(kind, identifier):
            pairs.append((kind, identifier))
    for _attempt in range(3):
        existing = Incident.objects.filter(signal_key=key, status__in=ACTIVE_STATUSES).first()
        if existing is not None:
            with transaction.atomic():
                incident = _lock(existing)
                last = incident.timeline.filter(kind=TimelineKind.SIGNAL).order_by("-at").values_list("at", flat=True).first()
                if last is None or now - last >= SIGNAL_REPEAT_QUIET:
                    timeline_add(incident=incident, kind=TimelineKind.SIGNAL, actor=source, at=now,
                                 message=f"Signal still firing: {summary}", details={"key": key, **(details or {})})
                _add_components(incident, pairs, source, now)
                worse = severity in Severity.values and severity < incident.severity and incident.status in ACTIVE_STATUSES
                if worse and not incident.timeline.filter(kind=TimelineKind.TRIGGER, details__signal_severity=severity).exists():
                    timeline_add(incident=incident, kind=TimelineKind.TRIGGER, actor=source, at=now,
                                 message=f"Automatic escalation trigger: impact expanded; the signal now indicates "
                                         f"{severity}: {summary}. Consider reclassifying.",
                                 details={"signal_severity": severity, "trigger": EscalationTrigger.IMPACT_EXPANDED})
                    escalation_next(incident=incident, trigger=EscalationTrigger.IMPACT_EXPANDED, reason=summary,
                                    actor=source, now=now)
            return incident, False
        try:
            with transaction.atomic():
                incident = incident_declare(
                    actor=source, severity=severity, summary=summary, impact=impact, description=description,
                    detection_source=DetectionSource.PIPELINE_SIGNAL, components=pairs, signal_key=key,
                    details={"signal": key, **(details or {})}, now=now)
                timeline_add(incident=incident, kind=TimelineKind.SIGNAL, actor=source, at=now,
                             message=f"Opened automatically by signal {key}", details={"key": key, **(details or {})})
            return incident, True
        except IntegrityError:
            continue  # another opener won the race for this key: take its incident
    raise ApplicationError(f"Could not open or find the incident for signal {key}.", status_code=409)


# ---------------------------------------------------------------- the workflow

@transaction.atomic
def incident_investigate(*, actor, incident: Incident, note: str = "", now: datetime | None = None) -> Incident:
    """Open → Investigating: the initial response. Stops the response clock (met or late)."""
    now = now or timezone.now()
    incident = _lock(incident)
    before = incident.status
    _perform(incident, "investigate", actor)
    if incident.acknowledged_at is None:
        incident.acknowledged_at = now
        incident.acknowledged_by = actor_user(actor)
    incident.save()
    timers_cancel(incident=incident, outcome="response met", kinds=[TimerKind.RESPONSE])
    late = incident.response_due_at and now > incident.response_due_at
    _status_change(incident, before, actor, now, _text(note, "Note", required=False),
                   response="late" if late else "met")
    return incident


@transaction.atomic
def incident_mitigate(*, actor, incident: Incident, actions: str, now: datetime | None = None) -> Incident:
    """Investigating → Mitigating, recording the mitigation actions being taken."""
    now = now or timezone.now()
    incident = _lock(incident)
    actions = _text(actions, "Mitigation actions")
    before = incident.status
    _perform(incident, "mitigate", actor)
    incident.mitigating_at = incident.mitigating_at or now
    incident.current_actions = actions
    incident.save()
    _status_change(incident, before, actor, now, actions)
    return incident


def pipeline_evidence() -> dict:
    """The live pipeline status recorded beside the operator's confirmation of the criteria."""
    try:
        from monitoring.selectors import pipeline_status

        status = pipeline_status()
        return {"pipeline_status": status.level, "reasons": status.reasons}
    except Exception as exc:  # noqa: BLE001 - evidence only: never block a resolution on the status query
        logger.warning("pipeline status unavailable for resolution evidence: %s", exc, extra={"component": "incidents"})
        return {"pipeline_status": "unknown"}


RESOLUTION_CRITERIA = (
    ("root_cause_addressed", "root cause addressed (a fix that eliminates the underlying problem)"),
    ("processing_resumed", "normal processing resumed (records flowing at expected rates and quality)"),
    ("metrics_normal", "metrics returned to acceptable ranges (no threshold violations or anomalies)"),
    ("no_customer_impact", "no ongoing customer impact"),
)


@transaction.atomic
def incident_resolve(*, actor, incident: Incident, resolution: str, root_cause_addressed: bool = False,
                     processing_resumed: bool = False, metrics_normal: bool = False, no_customer_impact: bool = False,
                     root_cause: str = "", now: datetime | None = None) -> Incident:
    """Investigating/Mitigating → Resolved, only with all four of the manual's resolution criteria
    confirmed. Stops the escalation timers and, for P1/P2, opens the post-incident review (due in 5
    business days)."""
    now = now or timezone.now()
    _require_operator(actor)
    incident = _lock(incident)
    confirmed = {"root_cause_addressed": bool(root_cause_addressed), "processing_resumed": bool(processing_resumed),
                 "metrics_normal": bool(metrics_normal), "no_customer_impact": bool(no_customer_impact)}
    if incident.status in ACTIVE_STATUSES:
        unmet = [label for name, label in RESOLUTION_CRITERIA if not confirmed[name]]
        if unmet:
            raise ApplicationError("Cannot resolve: the manual's resolution criteria are not all confirmed. "
                                   "Unconfirmed: " + "; ".join(unmet) + ".", status_code=409, extra={"unconfirmed": [
                                       name for name, _ in RESOLUTION_CRITERIA if not confirmed[name]]})
        resolution = _text(resolution, "Resolution")
    for name, value in confirmed.items():
        setattr(incident, name, value)
    before = incident.status
    _perform(incident, "resolve", actor)
    incident.resolution = resolution
    incident.root_cause = _text(root_cause, "Root cause", required=False) or incident.root_cause
    incident.resolved_at = now
    incident.update_due_at = None
    incident.save()
    timers_cancel(incident=incident, outcome="resolved")
    evidence = pipeline_evidence()
    _status_change(incident, before, actor, now, resolution, criteria=confirmed, **evidence)
    _review_sync(incident, actor, now)
    return incident


@transaction.atomic
def incident_close(*, actor, incident: Incident, note: str = "", now: datetime | None = None) -> Incident:
    """Resolved → Closed, once follow-up is done: the post-incident review published where required and
    the resolution notification sent where the severity has notification requirements."""
    now = now or timezone.now()
    incident = _lock(incident)
    before = incident.status
    _perform(incident, "close", actor)
    incident.closed_at = now
    incident.save()
    _status_change(incident, before, actor, now, _text(note, "Note", required=False))
    return incident


@transaction.atomic
def incident_reopen(*, actor, incident: Incident, reason: str, now: datetime | None = None) -> Incident:
    """Resolved → Investigating when the issue recurs: the criteria must be confirmed again and the
    matrix's remaining levels are re-armed."""
    now = now or timezone.now()
    incident = _lock(incident)
    reason = _text(reason, "Reason")
    before = incident.status
    _perform(incident, "reopen", actor)
    for name, _label in RESOLUTION_CRITERIA:
        setattr(incident, name, False)
    incident.resolved_at = None
    _apply_requirements(incident)
    incident.save()
    timers_schedule(incident=incident)
    timers_cancel(incident=incident, outcome="reopened", kinds=[TimerKind.RESPONSE, TimerKind.MITIGATION])
    _status_change(incident, before, actor, now, reason)
    return incident


@transaction.atomic
def incident_reclassify(*, actor, incident: Incident, severity: str, reason: str, now: datetime | None = None) -> Incident:
    """Change the severity (a recorded transition with a reason). The response requirements and the
    escalation matrix switch to the new severity's, counted from the declaration; its initial responders
    are engaged now and its remaining levels armed."""
    now = now or timezone.now()
    incident = _lock(incident)
    reason = _text(reason, "Reason")
    if severity not in Severity.values:
        raise ApplicationError(f"Severity must be one of {', '.join(Severity.values)}.")
    if severity == incident.severity:
        raise ApplicationError(f"{incident.incident_id} is already {severity}.", status_code=409)
    before = incident.severity
    _perform(incident, "reclassify", actor, severity)
    _apply_requirements(incident)
    engaged = set(incident.escalations.filter(severity=severity, level__isnull=False).values_list("level", flat=True))
    incident.escalation_level = max(engaged, default=0)
    incident.save()
    definition = SEVERITY_DEFINITIONS[severity]
    timeline_add(incident=incident, kind=TimelineKind.RECLASSIFIED, actor=actor, at=now,
                 message=f"Reclassified {before} → {severity} - {definition['name']}: {reason}",
                 details={"from": before, "to": severity, "definition": definition["summary"]})
    _audit(actor, "incident.reclassify", incident, reason, **{"from": before, "to": severity})
    if incident.status in ACTIVE_STATUSES:
        if 0 not in engaged:
            escalation_engage(incident=incident, level=0, trigger=EscalationTrigger.RECLASSIFIED, actor=actor, now=now,
                              reason=f"{before} → {severity}")
        timers_schedule(incident=incident)
    else:
        _review_sync(incident, actor, now)
    return incident


# ---------------------------------------------------------------- working the incident

@transaction.atomic
def incident_note_add(*, actor, incident: Incident, text: str, now: datetime | None = None) -> TimelineEntry:
    """Add a note to the timeline (what was checked, found, decided)."""
    _require_operator(actor)
    incident = _lock(incident)
    if incident.status == IncidentStatus.CLOSED:
        raise ApplicationError(f"{incident.incident_id} is closed.", status_code=409)
    text = _text(text, "Note")
    entry = timeline_add(incident=incident, kind=TimelineKind.NOTE, actor=actor, at=now, message=text)
    _audit(actor, "incident.note", incident, details_len=len(text))
    return entry


@transaction.atomic
def incident_update(*, actor, incident: Incident, now: datetime | None = None, **fields) -> Incident:
    """Edit the ticket's descriptive fields (summary, impact, actions, next steps, ETA, links, ...)."""
    _require_operator(actor)
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Not editable here: {', '.join(sorted(unknown))}.")
    incident = _lock(incident)
    if incident.status == IncidentStatus.CLOSED:
        raise ApplicationError(f"{incident.incident_id} is closed.", status_code=409)
    changed = {}
    for name, value in fields.items():
        if name == "channel_links":
            value = _links(value)
        elif name == "began_at":
            pass
        elif name == "summary":
            value = _text(value, "Summary", limit=200)
        elif name == "detection_source":
            if value not in DetectionSource.values:
                raise ApplicationError(f"Unknown detection source {value!r}.")
        else:
            value = _text(value, name.replace("_", " ").capitalize(), required=False,
                          limit=200 if name == "eta" else 10000)
        if getattr(incident, name) != value:
            changed[name] = {"from": _jsonable(getattr(incident, name)), "to": _jsonable(value)}
            setattr(incident, name, value)
    if not changed:
        return incident
    incident.save()
    timeline_add(incident=incident, kind=TimelineKind.UPDATE, actor=actor, at=now,
                 message="Updated " + ", ".join(name.replace("_", " ") for name in changed), details=changed)
    _audit(actor, "incident.update", incident, changed=sorted(changed))
    return incident


def _jsonable(value):
    return value.isoformat() if isinstance(value, datetime) else value


@transaction.atomic
def incident_components_add(*, actor, incident: Incident, components: Sequence, now: datetime | None = None) -> list:
    """Link pipeline components (module, source, rule, destination) to the incident."""
    _require_operator(actor)
    incident = _lock(incident)
    pairs = _components(components)
    new = _add_components(incident, pairs, actor, now or timezone.now())
    if new:
        _audit(actor, "incident.components_add", incident, components=[f"{k}:{i}" for k, i in new])
    return new


@transaction.atomic
def incident_component_remove(*, actor, incident: Incident, kind: str, identifier: str, now: datetime | None = None) -> None:
    _require_operator(actor)
    incident = _lock(incident)
    deleted, _ = incident.components.filter(kind=kind, identifier=identifier).delete()
    if not deleted:
        raise ApplicationError(f"{kind} {identifier} is not linked to {incident.incident_id}.", status_code=404)
    timeline_add(incident=incident, kind=TimelineKind.COMPONENT, actor=actor, at=now,
                 message=f"No longer affected: {kind} {identifier}", details={"removed": f"{kind}:{identifier}"})
    _audit(actor, "incident.component_remove", incident, component=f"{kind}:{identifier}")


@transaction.atomic
def incident_responder_add(*, actor, incident: Incident, user, role: str = "Responder", now: datetime | None = None) -> Responder:
    """Add a person to the responders (notified in the console and by email)."""
    _require_operator(actor)
    now = now or timezone.now()
    incident = _lock(incident)
    _require_active(incident, "add responders")
    role = _text(role, "Role", required=False, limit=100) or "Responder"
    responder, created = Responder.objects.get_or_create(incident=incident, user=user,
                                                         defaults={"role": role, "engaged_at": now})
    if not created:
        raise ApplicationError(f"{user.get_username()} is already a responder.", status_code=409)
    timeline_add(incident=incident, kind=TimelineKind.RESPONDER, actor=actor, at=now,
                 message=f"{user.get_username()} joined as {role}")
    _audit(actor, "incident.responder_add", incident, user=user.get_username(), role=role)
    notifications_queue(incident=incident, users=[user], webhook=False, actor=actor, now=now,
                        subject=f"[{incident.severity}] {incident.incident_id}: you were added as {role}",
                        body=f"{incident.summary}\n\nImpact: {incident.impact or 'being assessed'}")
    return responder


@transaction.atomic
def incident_escalate(*, actor, incident: Incident, reason_kind: str, reason: str, role: str | None = None,
                      users: Sequence = (), now: datetime | None = None):
    """Manual escalation with a reason (the manual's four: expertise, resources, cross-team coordination,
    executive decision). Without role or users: the next level of the matrix, now. With a role or named
    people: those, beyond the matrix."""
    now = now or timezone.now()
    incident = _lock(incident)
    _require_operator(actor)
    _require_active(incident, "escalate")
    if reason_kind not in ManualEscalationReason.values:
        raise ApplicationError(f"Reason kind must be one of {', '.join(ManualEscalationReason.values)}.")
    full_reason = f"{ManualEscalationReason(reason_kind).label}: {_text(reason, 'Reason')}"
    if role and role not in roles.OPERATOR_GROUPS:
        raise ApplicationError(f"Cannot escalate to {role!r}: not a responder group.")
    if role or users:
        return escalation_engage(incident=incident, level=None, role=role, users=list(users),
                                 trigger=EscalationTrigger.MANUAL, reason=full_reason, actor=actor, now=now)
    return escalation_next(incident=incident, trigger=EscalationTrigger.MANUAL, reason=full_reason, actor=actor, now=now)


@transaction.atomic
def incident_impact_expand(*, actor, incident: Incident, impact: str, components: Sequence = (), now: datetime | None = None):
    """Customer impact expanded beyond the initial scope: the impact is rewritten, new components linked,
    and the automatic "impact expanded" trigger escalates one level."""
    now = now or timezone.now()
    _require_operator(actor)
    incident = _lock(incident)
    _require_active(incident, "expand its impact")
    impact = _text(impact, "Impact")
    pairs = _components(components)
    before = incident.impact
    incident.impact = impact
    incident.impact_expansions += 1
    incident.save()
    _add_components(incident, pairs, actor, now)
    timeline_add(incident=incident, kind=TimelineKind.TRIGGER, actor=actor, at=now,
                 message=f"Automatic escalation trigger: customer impact expanded. Impact now: {impact}",
                 details={"from": before, "to": impact, "trigger": EscalationTrigger.IMPACT_EXPANDED})
    _audit(actor, "incident.impact_expand", incident, impact, components=[f"{k}:{i}" for k, i in pairs])
    return escalation_next(incident=incident, trigger=EscalationTrigger.IMPACT_EXPANDED, reason=impact, actor=actor, now=now)


@transaction.atomic
def incident_data_loss_confirm(*, actor, incident: Incident, details: str, now: datetime | None = None):
    """Data loss confirmed (records permanently lost): recorded once, and the automatic trigger escalates
    one level. Data loss is a P1 condition in the manual; reclassify if the severity is lower."""
    now = now or timezone.now()
    _require_operator(actor)
    incident = _lock(incident)
    _require_active(incident, "confirm data loss")
    details = _text(details, "Details")
    if incident.data_loss_confirmed_at:
        raise ApplicationError(f"Data loss was already confirmed on {incident.incident_id}.", status_code=409)
    incident.data_loss_confirmed_at = now
    incident.save()
    hint = "" if incident.severity == Severity.P1 else " Data corruption or loss is a P1 condition: consider reclassifying."
    timeline_add(incident=incident, kind=TimelineKind.TRIGGER, actor=actor, at=now,
                 message=f"Automatic escalation trigger: data loss confirmed. {details}{hint}",
                 details={"trigger": EscalationTrigger.DATA_LOSS_CONFIRMED})
    _audit(actor, "incident.data_loss_confirm", incident, details)
    return escalation_next(incident=incident, trigger=EscalationTrigger.DATA_LOSS_CONFIRMED, reason=details,
                           actor=actor, now=now)


# ---------------------------------------------------------------- communications

def communication_recipients(incident: Incident, audiences: Sequence[str], at: datetime) -> tuple[list, list[str]]:
    users: dict[int, object] = {}
    emails: list[str] = []
    if Audience.RESPONDERS in audiences:
        users.update({r.user.pk: r.user for r in incident.responders.select_related("user") if r.user.is_active})
    if Audience.EXECUTIVES in audiences:
        users.update({u.pk: u for role in EXECUTIVE_ROLES for u in role_members(role, at)})
    if Audience.STAKEHOLDERS in audiences:
        emails = list(settings.INCIDENT_STAKEHOLDER_EMAILS)
    return list(users.values()), emails


@transaction.atomic
def communication_send(*, actor, incident: Incident, kind: str, audiences: Sequence[str], body: str = "",
                       subject: str = "", now: datetime | None = None) -> Communication:
    """Send one of the manual's templates, rendered from the live incident (or as the operator edited it),
    to responders, stakeholders and/or executives over every channel, and record it on the timeline.
    Initial notifications and status updates restart the status-update clock; the first communication to
    executives (P1) or stakeholders (P2/P3) meets the notification deadline."""
    now = now or timezone.now()
    _require_operator(actor)
    incident = _lock(incident)
    if kind not in CommunicationKind.values:
        raise ApplicationError(f"Kind must be one of {', '.join(CommunicationKind.values)}.")
    if kind == CommunicationKind.RESOLUTION:
        if incident.status not in (IncidentStatus.RESOLVED, IncidentStatus.CLOSED):
            raise ApplicationError("The resolution notification is sent once the incident is resolved.", status_code=409)
    else:
        _require_active(incident, f"send {CommunicationKind(kind).label.lower()}s")
    audiences = list(dict.fromkeys(audiences or []))
    if not audiences or any(a not in Audience.values for a in audiences):
        raise ApplicationError(f"Audiences: one or more of {', '.join(Audience.values)}.")
    rendered = communication_render(incident=incident, kind=kind, now=now)
    body = _text(body, "Body", required=False, limit=20000) or rendered["body"]
    subject = _text(subject, "Subject", required=False, limit=255) or rendered["subject"]
    communication = Communication.objects.create(incident=incident, kind=kind, audiences=audiences, subject=subject,
                                                 body=body, rendered_body=rendered["body"], sent_at=now,
                                                 sent_by=actor_user(actor))
    if kind in (CommunicationKind.INITIAL, CommunicationKind.UPDATE):
        incident.last_update_at = now
    if Audience.EXECUTIVES in audiences and incident.executives_notified_at is None:
        incident.executives_notified_at = now
    if Audience.STAKEHOLDERS in audiences and incident.stakeholders_notified_at is None:
        incident.stakeholders_notified_at = now
    _apply_requirements(incident)
    incident.save()
    labels = ", ".join(Audience(a).label.split(" (")[0].lower() for a in audiences)
    timeline_add(incident=incident, kind=TimelineKind.COMMUNICATION, actor=actor, at=now,
                 message=f"{CommunicationKind(kind).label} sent to {labels}{' (edited from the template)' if communication.edited else ''}",
                 details={"communication": communication.pk, "subject": subject, "body": body})
    _audit(actor, "incident.communicate", incident, subject, kind=kind, audiences=audiences, edited=communication.edited)
    users, emails = communication_recipients(incident, audiences, now)
    notifications_queue(incident=incident, subject=subject, body=body, users=users, emails=emails,
                        communication=communication, actor=actor, now=now)
    return communication


# ---------------------------------------------------------------- post-incident review

def review_timeline_text(incident: Incident) -> str:
    """Timeline reconstruction pre-filled from the incident's timeline (notifications left out)."""
    lines = []
    if incident.began_at:
        lines.append(f"{timezone.localtime(incident.began_at):%Y-%m-%d %H:%M} Issue began (earliest known symptom)")
    for entry in incident.timeline.exclude(kind=TimelineKind.NOTIFICATION).order_by("at", "id"):
        lines.append(f"{timezone.localtime(entry.at):%Y-%m-%d %H:%M} [{entry.get_kind_display()}] {entry.actor_name}: {entry.message}")
    from .selectors import incident_linked_changes

    changes = incident_linked_changes(incident)
    if changes:
        lines += ["", "Changes linked to this incident (review the emergency changes here):"]
        lines += [f"- {c.change_id} [{c.get_change_type_display()}, {c.get_status_display()}] {c.title}" for c in changes]
    return "\n".join(lines)


def _review_sync(incident: Incident, actor, now: datetime) -> PostIncidentReview | None:
    """After resolution or reclassification: a required review exists (due 5 business days after
    resolution); an optional one keeps existing but loses its due date."""
    needs = requirements(incident.severity)
    review = PostIncidentReview.objects.filter(incident=incident).first()
    if incident.resolved_at is None:
        return review
    if needs.review_required:
        due = business_days_deadline(incident.resolved_at, 5)
        if review is None:
            review = PostIncidentReview.objects.create(incident=incident, required=True, due_at=due,
                                                       timeline_reconstruction=review_timeline_text(incident),
                                                       created_by=actor_user(actor))
            timeline_add(incident=incident, kind=TimelineKind.REVIEW, actor=actor, at=now,
                         message=f"Post-incident review required ({incident.severity}), due "
                                 f"{timezone.localtime(due):%Y-%m-%d %H:%M}")
        elif not review.required:
            review.required, review.due_at = True, due
            review.save(update_fields=["required", "due_at", "updated_at"])
    elif review is not None and review.required:
        review.required, review.due_at = False, None
        review.save(update_fields=["required", "due_at", "updated_at"])
    return review


@transaction.atomic
def review_start(*, actor, incident: Incident, now: datetime | None = None) -> PostIncidentReview:
    """Start a post-incident review: required ones exist from resolution; optional for P3."""
    now = now or timezone.now()
    _require_operator(actor)
    incident = _lock(incident)
    if incident.resolved_at is None:
        raise ApplicationError("The post-incident review follows resolution.", status_code=409)
    existing = PostIncidentReview.objects.filter(incident=incident).first()
    if existing:
        return existing
    needs = requirements(incident.severity)
    if not needs.review_allowed:
        raise ApplicationError(f"A post-incident review is not required for {incident.severity} incidents.", status_code=409)
    if needs.review_required:
        return _review_sync(incident, actor, now)
    review = PostIncidentReview.objects.create(incident=incident, required=False,
                                               timeline_reconstruction=review_timeline_text(incident),
                                               created_by=actor_user(actor))
    timeline_add(incident=incident, kind=TimelineKind.REVIEW, actor=actor, at=now,
                 message="Optional post-incident review started")
    _audit(actor, "incident.review_start", incident)
    return review


REVIEW_FIELDS = ("timeline_reconstruction", "root_cause", "contributing_factors", "went_well", "went_badly",
                 "improvements", "scheduled_for")


@transaction.atomic
def review_update(*, actor, review: PostIncidentReview, now: datetime | None = None, **fields) -> PostIncidentReview:
    """Edit a draft review (published reviews are final)."""
    _require_operator(actor)
    unknown = set(fields) - set(REVIEW_FIELDS)
    if unknown:
        raise ApplicationError(f"Not a review field: {', '.join(sorted(unknown))}.")
    review = PostIncidentReview.objects.select_for_update().select_related("incident").get(pk=review.pk)
    if review.status != ReviewStatus.DRAFT:
        raise ApplicationError("This review is published.", status_code=409)
    changed = []
    for name, value in fields.items():
        if name != "scheduled_for":
            value = _text(value, name.replace("_", " "), required=False, limit=50000)
        if getattr(review, name) != value:
            setattr(review, name, value)
            changed.append(name)
    if changed:
        review.save()
        timeline_add(incident=review.incident, kind=TimelineKind.REVIEW, actor=actor, at=now,
                     message="Post-incident review updated: " + ", ".join(c.replace("_", " ") for c in changed))
        _audit(actor, "incident.review_update", review.incident, changed=changed)
    return review


@transaction.atomic
def review_publish(*, actor, review: PostIncidentReview, now: datetime | None = None) -> PostIncidentReview:
    """Publish the post-incident report (needs timeline, root cause and response effectiveness)."""
    now = now or timezone.now()
    review = PostIncidentReview.objects.select_for_update().select_related("incident").get(pk=review.pk)
    _perform_review(review, actor)
    review.published_at = now
    review.published_by = actor_user(actor)
    review.save()
    late = review.due_at and now > review.due_at
    timeline_add(incident=review.incident, kind=TimelineKind.REVIEW, actor=actor, at=now,
                 message="Post-incident review published" + (" (after its due date)" if late else ""))
    _audit(actor, "incident.review_publish", review.incident, late=bool(late))
    return review


def _perform_review(review: PostIncidentReview, actor) -> None:
    method = review.publish
    user = actor_user(actor)
    if not can_proceed(method, check_conditions=False):
        raise ApplicationError("This review is already published.", status_code=409)
    if user is None or not method._django_fsm.has_transition_perm(review, review.status, user):
        raise ApplicationError("Your role does not allow publishing reviews.", status_code=403)
    if not can_proceed(method):
        raise ApplicationError("Cannot publish: needs timeline reconstruction, root cause and what went well or badly.",
                               status_code=409)
    method()


@transaction.atomic
def action_item_add(*, actor, review: PostIncidentReview, description: str, owner, deadline,
                    now: datetime | None = None) -> ActionItem:
    """An improvement with an owner and a deadline; open items past their deadline are flagged overdue."""
    _require_operator(actor)
    description = _text(description, "Description", limit=2000)
    if owner is None or not owner.is_active:
        raise ApplicationError("An action item needs an active owner.")
    if deadline is None:
        raise ApplicationError("An action item needs a deadline.")
    review = PostIncidentReview.objects.select_for_update().select_related("incident").get(pk=review.pk)
    item = ActionItem.objects.create(review=review, description=description, owner=owner, deadline=deadline)
    timeline_add(incident=review.incident, kind=TimelineKind.REVIEW, actor=actor, at=now,
                 message=f"Action item for {owner.get_username()} by {deadline:%Y-%m-%d}: {description}")
    _audit(actor, "incident.action_item_add", review.incident, description, owner=owner.get_username(),
           deadline=deadline.isoformat(), item=item.pk)
    return item


@transaction.atomic
def action_item_complete(*, actor, item: ActionItem, now: datetime | None = None) -> ActionItem:
    now = now or timezone.now()
    _require_operator(actor)
    item = ActionItem.objects.select_for_update().select_related("review__incident").get(pk=item.pk)
    if item.status == ActionItemStatus.DONE:
        raise ApplicationError("This action item is already done.", status_code=409)
    item.status, item.completed_at = ActionItemStatus.DONE, now
    item.save(update_fields=["status", "completed_at"])
    late = now.date() > item.deadline
    timeline_add(incident=item.review.incident, kind=TimelineKind.REVIEW, actor=actor, at=now,
                 message=f"Action item done{' (late)' if late else ''}: {item.description}")
    _audit(actor, "incident.action_item_complete", item.review.incident, item=item.pk, late=late)
    return item

