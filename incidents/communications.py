"""The manual's three communication templates, rendered from the live incident.

The console and the API show the rendered text for editing; `communication_send` (incidents.services)
records what was actually sent next to what was rendered.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from .choices import CommunicationKind, TimelineKind
from .models import Incident
from .notifications import incident_url
from .policy import SEVERITY_DEFINITIONS

# Timeline entries that count as progress in a status update.
PROGRESS_KINDS = (TimelineKind.TRANSITION, TimelineKind.NOTE, TimelineKind.ESCALATION, TimelineKind.RECLASSIFIED,
                  TimelineKind.UPDATE, TimelineKind.COMPONENT, TimelineKind.TRIGGER)


def format_duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes or not (days or hours) else ""]
    return " ".join(p for p in parts if p)


def _severity(incident: Incident) -> str:
    return f"{incident.severity} - {SEVERITY_DEFINITIONS[incident.severity]['name']}"


def _updates_where(incident: Incident) -> str:
    links = [f"{link.get('label') or 'link'}: {link.get('url')}" for link in incident.channel_links or [] if link.get("url")]
    return "; ".join([*links, incident_url(incident)])


def _progress(incident: Incident) -> str:
    since = incident.last_update_at or incident.declared_at
    entries = list(incident.timeline.filter(at__gt=since, kind__in=PROGRESS_KINDS).order_by("at", "id")[:10])
    if not entries:
        return "No change since the last update."
    return "\n".join(f"- {timezone.localtime(e.at):%H:%M} {e.message}" for e in entries)


def _follow_up(incident: Incident) -> str:
    parts = []
    review = getattr(incident, "review", None)
    if review is not None:
        due = f", due {timezone.localtime(review.due_at):%Y-%m-%d}" if review.due_at else ""
        parts.append(f"post-incident review {'required' if review.required else 'planned'}{due}")
        parts += [f"{item.description} ({item.owner.get_username()}, by {item.deadline:%Y-%m-%d})"
                  for item in review.action_items.filter(status="open").select_related("owner")]
    return "; ".join(parts) or "None."


def communication_render(*, incident: Incident, kind: str, now: datetime | None = None) -> dict[str, str]:
    """{subject, body} of the manual's template `kind` (initial, update, resolution) for the incident now."""
    now = now or timezone.now()
    eta = incident.eta or "Unknown"
    if kind == CommunicationKind.INITIAL:
        subject = f"INCIDENT ALERT: {_severity(incident)} - {incident.summary}"
        body = [
            subject, "",
            f"Impact: {incident.impact or 'Being assessed.'}",
            f"Status: {incident.get_status_display()}",
            f"Actions: {incident.current_actions or 'Investigation under way.'}",
            f"ETA: {eta}",
            f"Updates: {_updates_where(incident)}",
        ]
    elif kind == CommunicationKind.UPDATE:
        subject = f"INCIDENT UPDATE: {incident.incident_id} - {_severity(incident)}"
        current = incident.get_status_display() + (f": {incident.current_actions}" if incident.current_actions else "")
        body = [
            subject, "",
            f"Current Status: {current}",
            f"Progress: {_progress(incident)}",
            f"Next Steps: {incident.next_steps or 'To be decided.'}",
            f"ETA: {eta}",
        ]
    elif kind == CommunicationKind.RESOLUTION:
        subject = f"INCIDENT RESOLVED: {incident.incident_id}"
        end = incident.resolved_at or now
        body = [
            subject, "",
            f"Resolution: {incident.resolution or 'To be described.'}",
            f"Duration: {format_duration(end - incident.declared_at)}",
            f"Impact Summary: {incident.impact or 'None recorded.'}",
            f"Follow-up: {_follow_up(incident)}",
        ]
    else:
        raise ValueError(f"unknown communication kind {kind!r}")
    return {"subject": subject, "body": "\n".join(body)}
