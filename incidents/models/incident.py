"""The incident ticket of the manual (Phase 1 "Incident Ticket Requirements") and its timeline."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from opsconsole.roles import is_operator

from ..choices import (
    ACTIVE_STATUSES,
    ComponentKind,
    DetectionSource,
    EscalationTrigger,
    IncidentStatus,
    Severity,
    TimelineKind,
)


def _operator(instance, user) -> bool:
    return is_operator(user)


class IncidentDaySequence(models.Model):
    """The per-day counter behind INC-YYYYMMDD-NNNN; incremented by one atomic upsert (row-locked)."""

    day = models.DateField(primary_key=True)
    last = models.PositiveIntegerField(default=0)


class Incident(FSMModelMixin, models.Model):
    """One incident. `status` and `severity` are protected: only transitions change them, and only the
    services in incidents.services call transitions (they write the timeline and the audit log)."""

    incident_id = models.CharField(max_length=24, unique=True, editable=False, help_text="INC-YYYYMMDD-NNNN")
    severity = FSMField(choices=Severity.choices, protected=True)
    status = FSMField(default=IncidentStatus.OPEN, choices=IncidentStatus.choices, protected=True, db_index=True)
    summary = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Symptoms observed and how they manifest.")
    impact = models.TextField(blank=True, help_text="What users, data flows or capabilities are affected.")
    detection_source = models.CharField(max_length=30, choices=DetectionSource.choices, default=DetectionSource.OPERATIONS)
    began_at = models.DateTimeField(null=True, blank=True, help_text="When the issue began (metrics, logs).")
    recent_changes = models.TextField(blank=True, help_text="Deployments, configuration updates, external factors.")
    current_actions = models.TextField(blank=True, help_text="Actions being taken (communication templates).")
    next_steps = models.TextField(blank=True)
    eta = models.CharField(max_length=200, blank=True, help_text="Estimated resolution time, if known.")
    channel_links = models.JSONField(default=list, blank=True, help_text='[{"label": ..., "url": ...}]')

    declared_at = models.DateTimeField(db_index=True)
    declared_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True, help_text="Initial response (investigation began).")
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    mitigating_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    # Response requirements for the current severity (manual), recomputed by the services.
    response_due_at = models.DateTimeField(null=True, blank=True)
    notification_audience = models.CharField(max_length=20, blank=True)
    notification_due_at = models.DateTimeField(null=True, blank=True)
    executives_notified_at = models.DateTimeField(null=True, blank=True)
    stakeholders_notified_at = models.DateTimeField(null=True, blank=True)
    last_update_at = models.DateTimeField(null=True, blank=True, help_text="Last status communication sent.")
    update_due_at = models.DateTimeField(null=True, blank=True)
    mitigation_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0, help_text="Highest matrix level engaged.")

    data_loss_confirmed_at = models.DateTimeField(null=True, blank=True)
    impact_expansions = models.PositiveIntegerField(default=0)

    # The manual's resolution criteria, confirmed by the resolving operator.
    root_cause_addressed = models.BooleanField(default=False)
    processing_resumed = models.BooleanField(default=False)
    metrics_normal = models.BooleanField(default=False)
    no_customer_impact = models.BooleanField(default=False)
    root_cause = models.TextField(blank=True)
    resolution = models.TextField(blank=True, help_text="How the incident was resolved.")

    signal_key = models.CharField(max_length=200, blank=True, db_index=True,
                                  help_text="Pipeline signal that opened it; one active incident per signal.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-declared_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["signal_key"], condition=Q(status__in=[s.value for s in ACTIVE_STATUSES])
                                    & ~Q(signal_key=""), name="one_active_incident_per_signal"),
        ]
        indexes = [models.Index(fields=["status", "severity"])]

    def __str__(self) -> str:
        return f"{self.incident_id} [{self.severity}] {self.summary}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    # Conditions (named: the services report them when a transition is refused).
    def resolution_criteria_confirmed(self) -> bool:
        """root cause addressed, processing resumed, metrics normal, no customer impact"""
        return all((self.root_cause_addressed, self.processing_resumed, self.metrics_normal, self.no_customer_impact))

    def follow_up_done(self) -> bool:
        """post-incident review published where required, resolution notification sent where notifications are"""
        from ..policy import requirements

        needs = requirements(self.severity)
        if needs.review_required:
            review = getattr(self, "review", None)
            if review is None or review.status != "published":
                return False
        return not (needs.notification_audience and not self.communications.filter(kind="resolution").exists())

    def not_closed(self) -> bool:
        """the incident is not closed"""
        return self.status != IncidentStatus.CLOSED

    # The workflow: Open → Investigating → Mitigating → Resolved → Closed (and Resolved → Investigating).
    @transition(field=status, source=IncidentStatus.OPEN, target=IncidentStatus.INVESTIGATING, permission=_operator)
    def investigate(self):
        """Acknowledge and begin investigation (the initial response)."""

    @transition(field=status, source=IncidentStatus.INVESTIGATING, target=IncidentStatus.MITIGATING, permission=_operator)
    def mitigate(self):
        """Begin mitigation actions."""

    @transition(field=status, source=[IncidentStatus.INVESTIGATING, IncidentStatus.MITIGATING],
                target=IncidentStatus.RESOLVED, conditions=[resolution_criteria_confirmed], permission=_operator)
    def resolve(self):
        """Resolve, once the manual's resolution criteria are confirmed."""

    @transition(field=status, source=IncidentStatus.RESOLVED, target=IncidentStatus.CLOSED,
                conditions=[follow_up_done], permission=_operator)
    def close(self):
        """Close once follow-up is done."""

    @transition(field=status, source=IncidentStatus.RESOLVED, target=IncidentStatus.INVESTIGATING, permission=_operator)
    def reopen(self):
        """The issue recurred after resolution."""

    @transition(field=severity, source="*", target=RETURN_VALUE(*Severity.values), conditions=[not_closed],
                permission=_operator)
    def reclassify(self, severity: str) -> str:
        """Change the severity (a recorded transition with a reason)."""
        return severity


class AffectedComponent(models.Model):
    """A pipeline component the incident affects: a module, source, transformation rule or destination."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="components")
    kind = models.CharField(max_length=20, choices=ComponentKind.choices)
    identifier = models.CharField(max_length=100)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "identifier"]
        constraints = [models.UniqueConstraint(fields=["incident", "kind", "identifier"], name="component_once_per_incident")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.identifier}"


class Responder(models.Model):
    """A person engaged in the incident, with the role (matrix cell or manual) they were engaged as."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="responders")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incident_responses")
    role = models.CharField(max_length=100)
    level = models.PositiveSmallIntegerField(null=True, blank=True)
    engaged_at = models.DateTimeField()

    class Meta:
        ordering = ["engaged_at", "id"]
        constraints = [models.UniqueConstraint(fields=["incident", "user"], name="responder_once_per_incident")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"


class TimelineEntry(models.Model):
    """Append-only: every transition, note, escalation, notification and operator action of an incident."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=20, choices=TimelineKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_name = models.CharField(max_length=150)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "timeline entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.message[:60]}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise RuntimeError("Timeline entries are append-only.")
        super().save(*args, **kwargs)


class Escalation(models.Model):
    """One engagement of a role: a matrix level (0 = initial responder) or a manual escalation."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="escalations")
    severity = models.CharField(max_length=2, choices=Severity.choices)
    level = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Matrix level; empty: beyond the matrix.")
    role = models.CharField(max_length=100)
    trigger = models.CharField(max_length=30, choices=EscalationTrigger.choices)
    reason = models.TextField(blank=True)
    users = models.JSONField(default=list, help_text="Usernames engaged.")
    at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # Each matrix level of a severity is engaged once, whichever of timer, trigger or operator gets there first.
            models.UniqueConstraint(fields=["incident", "severity", "level"], condition=Q(level__isnull=False),
                                    name="matrix_level_engaged_once"),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.severity} L{self.level} {self.role}"
