"""The manual's incident policy as data: severity definitions, response requirements, escalation matrix.

Everything here is quoted or derived from the manual's "Incident Response" section. Where the manual
gives no number ("within minutes", mitigation "varies") the setting named beside it supplies one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from opsconsole import roles

from . import business_hours
from .choices import Audience, Severity

# Shown when an operator classifies or reclassifies an incident.
SEVERITY_DEFINITIONS: dict[str, dict] = {
    Severity.P1: {
        "name": "Critical",
        "summary": "Complete system failures or data integrity events that affect the fundamental ability of the "
                   "Data Pipeline System to process production data safely and reliably.",
        "examples": [
            "Complete cessation of pipeline processing: no records flowing through any stage",
            "Data corruption affecting production records (contents altered incorrectly or lost)",
            "Confirmed security breach (unauthorized access to components or data verified)",
            "All configured delivery destinations unavailable at once",
            "Complete loss of monitoring visibility",
        ],
        "response": "Immediate engagement at any hour, investigation within minutes; all-hands escalation; "
                    "executive notification within 30 minutes; status updates every 15 minutes; "
                    "post-incident review mandatory.",
    },
    Severity.P2: {
        "name": "High",
        "summary": "Significant operational degradation that substantially impairs the ability to meet performance "
                   "commitments or process data with acceptable quality.",
        "examples": [
            "Complete failure of a single processing module (others continue in buffered mode)",
            "Throughput below 50% of the normal baseline",
            "Multiple delivery destinations unavailable",
            "Quality scores below acceptable thresholds",
            "Dead letter queue growth exceeding its storage capacity allocation",
        ],
        "response": "Engagement within 15 minutes at all hours with senior engineer escalation; stakeholder "
                    "notification within 1 hour; status updates every 30 minutes; post-incident review required.",
    },
    Severity.P3: {
        "name": "Medium",
        "summary": "Issues that affect specific functions or user populations without broadly impairing processing "
                   "or overall service commitments; workarounds may exist.",
        "examples": [
            "Failure of a single source adapter",
            "A single delivery destination unavailable",
            "Error rates above normal thresholds without stopping processing",
            "Enrichment cache degradation (latency up or hit rate down)",
            "Batch job failures",
        ],
        "response": "Initial response within 1 hour during business hours; on-call engineer engaged after hours; "
                    "stakeholder notification within 4 hours; status updates every 2 hours; review optional.",
    },
    Severity.P4: {
        "name": "Low",
        "summary": "Minor issues that do not materially affect data processing or service delivery; workarounds "
                   "available, minimal urgency.",
        "examples": [
            "Dashboard display issues (underlying data still accessible)",
            "Failures in non-critical report generation",
            "Single record processing failures that are not systemic",
            "Minor configuration drift that does not affect operation",
            "Documentation gaps or inaccuracies",
        ],
        "response": "Response within 4 business hours; after hours deferred to the next business day; no "
                    "stakeholder notification; resolution within one week; no post-incident review.",
    },
}

# The escalation matrix, exactly as the manual's table: initial responder, 30 min, 1 hour, 4 hour.
ESCALATION_AFTER = (timedelta(0), timedelta(minutes=30), timedelta(hours=1), timedelta(hours=4))
ESCALATION_MATRIX: dict[str, tuple[str | None, ...]] = {
    Severity.P1: (roles.ON_CALL_ENGINEER, roles.ENGINEERING_MANAGER, roles.DIRECTOR, roles.VP_CTO),
    Severity.P2: (roles.ON_CALL_ENGINEER, roles.SENIOR_ENGINEER, roles.ENGINEERING_MANAGER, roles.DIRECTOR),
    Severity.P3: (roles.OPERATIONS_TEAM, roles.ON_CALL_ENGINEER, roles.SENIOR_ENGINEER, roles.ENGINEERING_MANAGER),
    Severity.P4: (roles.OPERATIONS_TEAM, roles.OPERATIONS_LEAD, None, None),
}
LEVEL_LABELS = ("Initial responder", "30 min escalation", "1 hour escalation", "4 hour escalation")

# Who receives communications addressed to executives.
EXECUTIVE_ROLES = (roles.DIRECTOR, roles.VP_CTO)


@dataclass(frozen=True)
class Clock:
    """A span measured in wall-clock time or in business hours."""

    hours: float
    business: bool = False

    def due(self, start: datetime) -> datetime:
        if self.business:
            return business_hours.business_deadline(start, self.hours)
        return start + timedelta(hours=self.hours)

    def describe(self) -> str:
        if self.hours < 1:
            text = f"{round(self.hours * 60):g} min"
        else:
            text = f"{self.hours:g} h" if self.hours < 24 or self.hours % 24 else f"{self.hours / 24:g} days"
        return text + (" (business hours)" if self.business else "")


@dataclass(frozen=True)
class ResponseRequirements:
    severity: str
    response: Clock
    notification_audience: str | None
    notification: Clock | None
    update_every: Clock | None
    mitigation: Clock | None
    resolution: Clock | None
    review: str  # required, optional, not required

    @property
    def review_required(self) -> bool:
        return self.review == "required"

    @property
    def review_allowed(self) -> bool:
        return self.review in ("required", "optional")


def requirements(severity: str) -> ResponseRequirements:
    """The manual's response requirements for `severity`."""
    mitigation = getattr(settings, "INCIDENT_MITIGATION_HOURS", {}) or {}
    p1_minutes = getattr(settings, "INCIDENT_P1_RESPONSE_MINUTES", 5)

    def mitigation_clock(sev: str, business: bool = False) -> Clock | None:
        hours = mitigation.get(sev)
        return Clock(float(hours), business) if hours else None

    table = {
        Severity.P1: ResponseRequirements(
            Severity.P1, Clock(p1_minutes / 60), Audience.EXECUTIVES, Clock(0.5), Clock(0.25),
            mitigation_clock("P1"), None, "required"),
        Severity.P2: ResponseRequirements(
            Severity.P2, Clock(0.25), Audience.STAKEHOLDERS, Clock(1), Clock(0.5),
            mitigation_clock("P2"), None, "required"),
        Severity.P3: ResponseRequirements(
            Severity.P3, Clock(1, business=True), Audience.STAKEHOLDERS, Clock(4), Clock(2),
            mitigation_clock("P3", business=True), None, "optional"),
        Severity.P4: ResponseRequirements(
            Severity.P4, Clock(4, business=True), None, None, None,
            mitigation_clock("P4", business=True), Clock(7 * 24), "not required"),
    }
    return table[Severity(severity)]


def escalation_uses_business_hours(severity: str) -> bool:
    return str(severity) in set(getattr(settings, "INCIDENT_BUSINESS_HOURS_SEVERITIES", ["P3", "P4"]))


def escalation_levels(severity: str) -> list[tuple[int, str]]:
    """(level, role) of the matrix row, skipping the manual's "-" cells."""
    return [(level, role) for level, role in enumerate(ESCALATION_MATRIX[Severity(severity)]) if role]


def escalation_due(severity: str, level: int, declared_at: datetime) -> datetime:
    """When matrix `level` of `severity` is due for an incident declared at `declared_at`."""
    after = ESCALATION_AFTER[level]
    if level and escalation_uses_business_hours(severity):
        return business_hours.business_deadline(declared_at, after.total_seconds() / 3600)
    return declared_at + after
