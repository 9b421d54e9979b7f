"""Reads of incidents: the list (active first, by severity), due/overdue flags, timelines, notifications."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import (
    Case,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone

from .choices import (
    ACTIVE_STATUSES,
    ActionItemStatus,
    Audience,
    IncidentStatus,
    NotificationChannel,
    ReviewStatus,
)
from .models import (
    ActionItem,
    Incident,
    Notification,
    PostIncidentReview,
    TimelineEntry,
)


@dataclass(frozen=True)
class DueItem:
    """One response requirement of an incident: when it is due, when (if) it was met."""

    key: str
    label: str
    due_at: datetime | None
    met_at: datetime | None
    state: str  # met, late (met after the due time), due, overdue

    @property
    def overdue(self) -> bool:
        return self.state == "overdue"


def _item(key: str, label: str, due_at, met_at, now: datetime, *, open_: bool = True) -> DueItem | None:
    if due_at is None:
        return None
    if met_at is not None:
        state = "late" if met_at > due_at else "met"
    elif not open_:
        state = "met"
    else:
        state = "overdue" if now > due_at else "due"
    return DueItem(key, label, due_at, met_at, state)


def incident_due_items(incident: Incident, *, now: datetime | None = None) -> list[DueItem]:
    """The manual's response requirements for the incident, each with its due time and state."""
    now = now or timezone.now()
    active = incident.status in ACTIVE_STATUSES
    open_ticket = incident.status != IncidentStatus.CLOSED
    items = [
        _item("response", "Initial response", incident.response_due_at, incident.acknowledged_at, now, open_=open_ticket),
    ]
    if incident.notification_audience == Audience.EXECUTIVES:
        items.append(_item("notification", "Executive notification", incident.notification_due_at,
                           incident.executives_notified_at, now, open_=open_ticket))
    elif incident.notification_audience == Audience.STAKEHOLDERS:
        items.append(_item("notification", "Stakeholder notification", incident.notification_due_at,
                           incident.stakeholders_notified_at, now, open_=open_ticket))
    if active:
        items.append(_item("update", "Next status update", incident.update_due_at, None, now))
    items.append(_item("mitigation", "Stabilized (mitigation time)", incident.mitigation_due_at, incident.resolved_at, now,
                       open_=open_ticket))
    items.append(_item("resolution", "Resolution (within one week)", incident.resolution_due_at, incident.resolved_at, now,
                       open_=open_ticket))
    review = getattr(incident, "review", None)
    if review is not None and review.due_at:
        items.append(_item("review", "Post-incident review", review.due_at, review.published_at, now))
    return [i for i in items if i is not None]


def incident_overdue(incident: Incident, *, now: datetime | None = None) -> list[DueItem]:
    return [i for i in incident_due_items(incident, now=now) if i.overdue]


def overdue_action_items_q(now: datetime) -> Q:
    return Q(status=ActionItemStatus.OPEN, deadline__lt=timezone.localdate(now))


def overdue_q(now: datetime | None = None) -> Q:
    """Incidents with any requirement overdue (database-side twin of incident_overdue, plus action items)."""
    now = now or timezone.now()
    not_closed = ~Q(status=IncidentStatus.CLOSED)
    ticket = (
        Q(acknowledged_at__isnull=True, response_due_at__lt=now)
        | Q(notification_audience=Audience.EXECUTIVES, executives_notified_at__isnull=True, notification_due_at__lt=now)
        | Q(notification_audience=Audience.STAKEHOLDERS, stakeholders_notified_at__isnull=True, notification_due_at__lt=now)
        | Q(status__in=ACTIVE_STATUSES, update_due_at__lt=now)
        | Q(resolved_at__isnull=True, mitigation_due_at__lt=now)
        | Q(resolved_at__isnull=True, resolution_due_at__lt=now)
    )
    review = Q(review__status=ReviewStatus.DRAFT, review__due_at__lt=now)
    items = Exists(ActionItem.objects.filter(overdue_action_items_q(now), review__incident=OuterRef("pk")))
    return (not_closed & ticket) | review | Q(items)


def incident_list(*, now: datetime | None = None) -> QuerySet[Incident]:
    """Active incidents first, then by severity (P1 first), newest first."""
    return (Incident.objects.select_related("declared_by", "review")
            .annotate(active_rank=Case(When(status__in=ACTIVE_STATUSES, then=Value(0)), default=Value(1),
                                       output_field=IntegerField()))
            .order_by("active_rank", "severity", "-declared_at", "-id"))


def incident_get(incident_id: str) -> Incident | None:
    return (Incident.objects.select_related("declared_by", "acknowledged_by")
            .prefetch_related("components", Prefetch("responders", queryset=_responders()), "escalations", "timers")
            .filter(incident_id=incident_id).first())


def _responders():
    from .models import Responder

    return Responder.objects.select_related("user").order_by("engaged_at", "id")


def incident_timeline(incident: Incident) -> QuerySet[TimelineEntry]:
    return incident.timeline.select_related("actor").order_by("at", "id")


def incident_review(incident: Incident) -> PostIncidentReview | None:
    return PostIncidentReview.objects.filter(incident=incident).prefetch_related("action_items__owner").first()


def action_item_list() -> QuerySet[ActionItem]:
    return ActionItem.objects.select_related("owner", "review__incident").order_by("status", "deadline", "id")


def notification_list() -> QuerySet[Notification]:
    return Notification.objects.select_related("incident", "recipient").order_by("-created_at", "-id")


def console_notifications_for(user) -> QuerySet[Notification]:
    return notification_list().filter(channel=NotificationChannel.CONSOLE, recipient=user)


def unread_notification_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(channel=NotificationChannel.CONSOLE, recipient=user, read_at__isnull=True).count()


def incident_linked_changes(incident: Incident) -> list:
    """Change requests linked to the incident (emergency changes that remediated it: they are reviewed in its
    post-incident review). Empty when the changes app is not installed."""
    from django.apps import apps

    if not apps.is_installed("changes"):
        return []
    from changes.selectors import incident_changes

    return list(incident_changes(incident))


def active_incident_count() -> int:
    return Incident.objects.filter(status__in=ACTIVE_STATUSES).count()
