"""Notifications (each one recorded) and the manual's communication templates as sent."""
from django.conf import settings
from django.db import models

from ..choices import CommunicationKind, NotificationChannel, NotificationStatus
from .incident import Escalation, Incident


class Communication(models.Model):
    """One of the manual's three templates, rendered from the live incident, possibly edited, then sent."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="communications")
    kind = models.CharField(max_length=20, choices=CommunicationKind.choices)
    audiences = models.JSONField(default=list)
    subject = models.CharField(max_length=255)
    body = models.TextField(help_text="As sent.")
    rendered_body = models.TextField(help_text="As rendered from the incident, before edits.")
    sent_at = models.DateTimeField()
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["sent_at", "id"]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind} {self.sent_at:%Y-%m-%d %H:%M}"

    @property
    def edited(self) -> bool:
        return self.body.strip() != self.rendered_body.strip()


class Notification(models.Model):
    """A message to one recipient through one channel. In-console notifications are delivered by being
    stored; email and webhook ones are sent by a task and retried with backoff until sent or failed."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    channel = models.CharField(max_length=20, choices=NotificationChannel.choices)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="incident_notifications")
    address = models.CharField(max_length=255, blank=True, help_text="Email address, or the webhook's label.")
    subject = models.CharField(max_length=255)
    body = models.TextField()
    escalation = models.ForeignKey(Escalation, null=True, blank=True, on_delete=models.SET_NULL, related_name="notifications")
    communication = models.ForeignKey(Communication, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="notifications")
    status = models.CharField(max_length=20, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"]), models.Index(fields=["recipient", "channel", "read_at"])]

    def __str__(self) -> str:
        return f"{self.channel} → {self.address or self.recipient}: {self.subject}"
