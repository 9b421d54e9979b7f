"""Writing an incident's timeline (append-only). Every service that changes an incident calls this."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from .models import Incident, TimelineEntry


def actor_user(actor):
    """The user behind `actor`, or None for the system (a task, a pipeline signal, a string name)."""
    return actor if getattr(actor, "is_authenticated", False) else None


def actor_label(actor) -> str:
    user = actor_user(actor)
    if user is not None:
        return user.get_username()
    return actor if isinstance(actor, str) and actor else "system"


def timeline_add(*, incident: Incident, kind: str, message: str, actor=None, details: dict[str, Any] | None = None,
                 at: datetime | None = None) -> TimelineEntry:
    return TimelineEntry.objects.create(
        incident=incident, at=at or timezone.now(), kind=kind, actor=actor_user(actor), actor_name=actor_label(actor),
        message=message, details=details or {},
    )
