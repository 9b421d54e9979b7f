"""Choices of the incident workflow (manual: "Incident Response")."""
from django.db import models


class Severity(models.TextChoices):
    P1 = "P1", "P1 - Critical"
    P2 = "P2", "P2 - High"
    P3 = "P3", "P3 - Medium"
    P4 = "P4", "P4 - Low"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    INVESTIGATING = "investigating", "Investigating"
    MITIGATING = "mitigating", "Mitigating"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


ACTIVE_STATUSES = (IncidentStatus.OPEN, IncidentStatus.INVESTIGATING, IncidentStatus.MITIGATING)


class DetectionSource(models.TextChoices):
    """The manual's detection sources (Phase 1)."""

    MONITORING_ALERT = "monitoring_alert", "Automated monitoring alert"
    USER_REPORT = "user_report", "User or customer report"
    OPERATIONS = "operations", "Operations team observation"
    HEALTH_CHECK = "health_check", "Scheduled health check"
    EXTERNAL = "external", "External system notification"
    PIPELINE_SIGNAL = "pipeline_signal", "Pipeline signal (automatic)"


class ComponentKind(models.TextChoices):
    MODULE = "module", "Module"
    SOURCE = "source", "Source"
    RULE = "rule", "Transformation rule"
    DESTINATION = "destination", "Destination"


class PipelineModule(models.TextChoices):
    ALPHA = "alpha", "Module Alpha (ingestion)"
    BETA = "beta", "Module Beta (transformation)"
    GAMMA = "gamma", "Module Gamma (delivery)"


class TimelineKind(models.TextChoices):
    DECLARED = "declared", "Declared"
    TRANSITION = "transition", "Status change"
    RECLASSIFIED = "reclassified", "Reclassified"
    NOTE = "note", "Note"
    UPDATE = "update", "Ticket updated"
    ESCALATION = "escalation", "Escalation"
    TRIGGER = "trigger", "Escalation trigger"
    RESPONDER = "responder", "Responder"
    COMPONENT = "component", "Affected component"
    NOTIFICATION = "notification", "Notification"
    COMMUNICATION = "communication", "Communication"
    SIGNAL = "signal", "Pipeline signal"
    REVIEW = "review", "Post-incident review"


class EscalationTrigger(models.TextChoices):
    DECLARED = "declared", "Initial responders (declaration)"
    RECLASSIFIED = "reclassified", "Initial responders (reclassification)"
    TIME = "time", "Escalation matrix interval elapsed"
    RESPONSE_TIME_EXCEEDED = "response_time_exceeded", "Response time exceeded"
    MITIGATION_TIME_EXCEEDED = "mitigation_time_exceeded", "Mitigation time exceeded"
    IMPACT_EXPANDED = "impact_expanded", "Customer impact expanded"
    DATA_LOSS_CONFIRMED = "data_loss_confirmed", "Data loss confirmed"
    MANUAL = "manual", "Manual escalation"


AUTOMATIC_TRIGGERS = (
    EscalationTrigger.RESPONSE_TIME_EXCEEDED, EscalationTrigger.MITIGATION_TIME_EXCEEDED,
    EscalationTrigger.IMPACT_EXPANDED, EscalationTrigger.DATA_LOSS_CONFIRMED,
)


class ManualEscalationReason(models.TextChoices):
    """The manual's reasons for manual escalation."""

    EXPERTISE = "expertise", "Additional expertise needed"
    RESOURCES = "resources", "Resource constraints (responders overwhelmed or unavailable)"
    CROSS_TEAM = "cross_team", "Cross-team coordination needed"
    EXECUTIVE_DECISION = "executive_decision", "Executive decision required"


class TimerKind(models.TextChoices):
    ESCALATION = "escalation", "Escalation matrix level"
    RESPONSE = "response", "Initial response deadline"
    MITIGATION = "mitigation", "Mitigation deadline"


class NotificationChannel(models.TextChoices):
    CONSOLE = "console", "In-console"
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (Slack-compatible)"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class CommunicationKind(models.TextChoices):
    INITIAL = "initial", "Initial notification"
    UPDATE = "update", "Status update"
    RESOLUTION = "resolution", "Resolution notification"


class Audience(models.TextChoices):
    RESPONDERS = "responders", "Responders"
    STAKEHOLDERS = "stakeholders", "Stakeholders"
    EXECUTIVES = "executives", "Executives (Director, VP/CTO)"


class ReviewStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"


class ActionItemStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
