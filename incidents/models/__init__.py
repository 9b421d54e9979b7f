"""Incident response models (manual: "Incident Response")."""
from .communication import Communication, Notification
from .escalation import EscalationTimer
from .incident import (
    AffectedComponent,
    Escalation,
    Incident,
    IncidentDaySequence,
    Responder,
    TimelineEntry,
)
from .oncall import OnCallOverride, OnCallRota, OnCallRotaMember
from .review import ActionItem, PostIncidentReview

__all__ = [
    "ActionItem", "AffectedComponent", "Communication", "Escalation", "EscalationTimer", "Incident",
    "IncidentDaySequence", "Notification", "OnCallOverride", "OnCallRota", "OnCallRotaMember",
    "PostIncidentReview", "Responder", "TimelineEntry",
]
