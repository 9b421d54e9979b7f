"""Durable escalation timers: the beat task fires each due row once, in its own transaction."""
from django.db import models
from django.db.models import Q

from ..choices import Severity, TimerKind
from .incident import Incident


class EscalationTimer(models.Model):
    """A moment at which something must be checked: a matrix level coming due, or the response or
    mitigation deadline passing (automatic triggers). Fired at most once: the firing writes `fired_at`
    in the same transaction as the escalation it causes, so a restarted worker or beat neither skips a
    due timer (it is still unfired) nor repeats one (it is fired)."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timers")
    kind = models.CharField(max_length=20, choices=TimerKind.choices)
    severity = models.CharField(max_length=2, choices=Severity.choices)
    level = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [models.UniqueConstraint(fields=["incident", "kind", "severity", "level"], name="one_timer_per_step")]
        indexes = [models.Index(fields=["due_at"], condition=Q(fired_at__isnull=True, cancelled_at__isnull=True),
                                name="incident_timer_pending")]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind} {self.severity} L{self.level} due {self.due_at:%Y-%m-%d %H:%M}"

    @property
    def state(self) -> str:
        return "fired" if self.fired_at else "cancelled" if self.cancelled_at else "pending"
