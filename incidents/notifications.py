"""Notification channels: in-console, email (Django's email backend) and a generic Slack-compatible webhook.

Queuing writes one Notification row per recipient and channel in the caller's transaction; sending
happens after commit (a task per notification) and again from the beat task for anything still pending,
so a lost message or a crashed worker only delays a notification. A row is locked while it is sent and
marked sent in the same transaction, so two senders never both send it.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from configuration.secrets import SecretError, is_reference, resolve_secret
from opsconsole.dispatch import send_after_commit

from .choices import NotificationChannel, NotificationStatus, TimelineKind
from .models import Communication, Escalation, Incident, Notification
from .timeline import timeline_add

logger = logging.getLogger(__name__)

SEND_TASK = "ops.incidents_send_notification"


class ChannelError(Exception):
    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class Channel:
    """A way of reaching people. `send` raises ChannelError when the message did not go out."""

    name: str = ""

    def send(self, notification: Notification) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class ConsoleChannel(Channel):
    """Stored notifications shown in the console; delivered by being written."""

    name = NotificationChannel.CONSOLE

    def send(self, notification: Notification) -> None:
        return None


class EmailChannel(Channel):
    name = NotificationChannel.EMAIL

    def send(self, notification: Notification) -> None:
        if not notification.address:
            raise ChannelError("no email address", permanent=True)
        try:
            EmailMessage(subject=notification.subject, body=notification.body, from_email=settings.DEFAULT_FROM_EMAIL,
                         to=[notification.address]).send(fail_silently=False)
        except (OSError, ValueError) as exc:  # smtplib errors are OSErrors
            raise ChannelError(f"email to {notification.address} failed: {exc}") from exc


def webhook_url() -> str:
    """The configured webhook URL; a secret reference (env:, file:, vault:) is resolved at use."""
    url = settings.INCIDENT_WEBHOOK_URL or ""
    if is_reference(url):
        try:
            return resolve_secret(url)
        except SecretError as exc:
            raise ChannelError(str(exc)) from exc
    return url


def webhook_payload(notification: Notification) -> dict:
    """Slack-compatible: `text` (mrkdwn) for Slack, Mattermost, Teams connectors and the like, plus the
    structured incident for generic receivers (Slack ignores fields it does not know)."""
    incident = notification.incident
    return {
        "text": f"*{notification.subject}*\n{notification.body}",
        "incident": {
            "id": incident.incident_id, "severity": incident.severity, "status": incident.status,
            "summary": incident.summary, "url": incident_url(incident),
        },
    }


class WebhookChannel(Channel):
    name = NotificationChannel.WEBHOOK

    def send(self, notification: Notification) -> None:
        url = webhook_url()
        if not url:
            raise ChannelError("INCIDENT_WEBHOOK_URL is not set", permanent=True)
        try:
            response = httpx.post(url, json=webhook_payload(notification), timeout=settings.INCIDENT_WEBHOOK_TIMEOUT_SECONDS)
        except httpx.HTTPError as exc:
            raise ChannelError(f"webhook unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
            raise ChannelError(f"webhook answered {response.status_code}: {response.text[:200]}", permanent=permanent)


CHANNELS: dict[str, Channel] = {c.name: c for c in (ConsoleChannel(), EmailChannel(), WebhookChannel())}


def enabled_channels() -> list[str]:
    return [c for c in settings.INCIDENT_NOTIFICATION_CHANNELS if c in CHANNELS]


def incident_url(incident: Incident) -> str:
    return settings.CONSOLE_BASE_URL.rstrip("/") + reverse("console:incident-detail", args=[incident.incident_id])


def notifications_queue(*, incident: Incident, subject: str, body: str, users: Iterable = (), emails: Iterable[str] = (),
                        webhook: bool = True, escalation: Escalation | None = None,
                        communication: Communication | None = None, actor=None, now: datetime | None = None) -> list[Notification]:
    """Record a notification for each user on each enabled channel (plus extra email addresses and the
    webhook), write one timeline entry saying who is being notified, and send them after commit."""
    now = now or timezone.now()
    channels = enabled_channels()
    common = {"incident": incident, "subject": subject[:255], "body": body, "escalation": escalation,
              "communication": communication, "created_at": now}
    rows: list[Notification] = []
    seen: set = set()
    for user in users:
        if user.pk in seen:
            continue
        seen.add(user.pk)
        if NotificationChannel.CONSOLE in channels:
            rows.append(Notification(channel=NotificationChannel.CONSOLE, recipient=user, address=user.get_username(),
                                     status=NotificationStatus.SENT, attempts=1, sent_at=now, **common))
        if NotificationChannel.EMAIL in channels:
            if user.email:
                rows.append(Notification(channel=NotificationChannel.EMAIL, recipient=user, address=user.email,
                                         next_attempt_at=now, **common))
            else:
                rows.append(Notification(channel=NotificationChannel.EMAIL, recipient=user, address="",
                                         status=NotificationStatus.SKIPPED, last_error="no email address", **common))
    if NotificationChannel.EMAIL in channels:
        for address in dict.fromkeys(emails):
            rows.append(Notification(channel=NotificationChannel.EMAIL, address=address, next_attempt_at=now, **common))
    if webhook and NotificationChannel.WEBHOOK in channels and settings.INCIDENT_WEBHOOK_URL:
        rows.append(Notification(channel=NotificationChannel.WEBHOOK, address="webhook", next_attempt_at=now, **common))
    if not rows:
        return []
    created = Notification.objects.bulk_create(rows)
    counts = Counter(n.channel for n in created if n.status != NotificationStatus.SKIPPED)
    recipients = sorted({n.recipient.get_username() for n in created if n.recipient} | {n.address for n in created if not n.recipient and n.channel == NotificationChannel.EMAIL})
    timeline_add(incident=incident, kind=TimelineKind.NOTIFICATION, actor=actor, at=now,
                 message=f"Notifying {', '.join(recipients) or 'the team channel'} "
                         f"({', '.join(f'{c} {n}' for c, n in sorted(counts.items()))}): {subject}",
                 details={"notifications": [n.pk for n in created], "skipped": [n.address or n.recipient.get_username()
                                                                                for n in created if n.status == NotificationStatus.SKIPPED]})
    for notification in created:
        if notification.status == NotificationStatus.PENDING:
            send_after_commit(SEND_TASK, [notification.pk])
    return created


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** max(0, attempts - 1), 1800))


def notification_send(*, notification_id: int, now: datetime | None = None) -> str:
    """Send one pending notification if it is due. Returns sent, retry, failed or skipped (not pending,
    not due, or locked by another sender). Safe to run twice: the second run finds it sent."""
    now = now or timezone.now()
    with transaction.atomic():
        notification = (Notification.objects.select_for_update(skip_locked=True).select_related("incident")
                        .filter(pk=notification_id, status=NotificationStatus.PENDING).first())
        if notification is None or (notification.next_attempt_at and notification.next_attempt_at > now):
            return "skipped"
        channel = CHANNELS.get(notification.channel)
        notification.attempts += 1
        try:
            if channel is None:
                raise ChannelError(f"unknown channel {notification.channel}", permanent=True)
            channel.send(notification)
        except ChannelError as exc:
            notification.last_error = str(exc)[:2000]
            if exc.permanent or notification.attempts >= settings.INCIDENT_NOTIFICATION_MAX_ATTEMPTS:
                notification.status = NotificationStatus.FAILED
                notification.next_attempt_at = None
                timeline_add(incident=notification.incident, kind=TimelineKind.NOTIFICATION, at=now,
                             message=f"{notification.get_channel_display()} notification to "
                                     f"{notification.address or notification.recipient} failed after "
                                     f"{notification.attempts} attempt(s): {exc}",
                             details={"notification": notification.pk})
                outcome = "failed"
            else:
                notification.next_attempt_at = now + _backoff(notification.attempts)
                outcome = "retry"
            logger.warning("incident notification %s via %s: %s", notification.pk, notification.channel, exc,
                           extra={"component": "incidents"})
        else:
            notification.status = NotificationStatus.SENT
            notification.sent_at = now
            notification.last_error = ""
            notification.next_attempt_at = None
            outcome = "sent"
        notification.save(update_fields=["attempts", "status", "sent_at", "last_error", "next_attempt_at"])
        return outcome


def notifications_send_due(*, now: datetime | None = None, limit: int = 200) -> Counter:
    """Send every pending notification whose next attempt is due (the beat task's safety net)."""
    now = now or timezone.now()
    ids = list(Notification.objects.filter(status=NotificationStatus.PENDING, next_attempt_at__lte=now)
               .order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])
    return Counter(notification_send(notification_id=pk, now=now) for pk in ids)


def notification_mark_read(*, user, notification: Notification, now: datetime | None = None) -> Notification:
    """Mark one of the user's in-console notifications read."""
    if notification.recipient_id != user.pk:
        from opsconsole.errors import ApplicationError

        raise ApplicationError("That notification is not yours.", status_code=403)
    if notification.read_at is None:
        notification.read_at = now or timezone.now()
        notification.save(update_fields=["read_at"])
    return notification
