"""The manual's change-management tables as data ("Change Management" section).

Everything the workflow checks (the risk matrix, the approval table, the review points, the
checklists, the rollback triggers) is declared here once; models, services, forms, the API and the
tests read it from here.
"""
from dataclasses import dataclass

from django.db import models

from opsconsole import roles


class ChangeType(models.TextChoices):
    STANDARD = "standard", "Standard (pre-approved)"
    NORMAL = "normal", "Normal"
    EMERGENCY = "emergency", "Emergency"


class Priority(models.TextChoices):
    """The form's "Priority: [Low/Medium/High]"."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Impact(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Likelihood(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class RiskLevel(models.TextChoices):
    """The rows of the approval table. The risk matrix names the same four classes
    Standard / Normal / High Risk / Critical; they are read in order as Low / Medium / High / Critical."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


# The matrix's own names for the four classes.
RISK_CLASS_NAMES = {
    RiskLevel.LOW: "Standard",
    RiskLevel.MEDIUM: "Normal",
    RiskLevel.HIGH: "High Risk",
    RiskLevel.CRITICAL: "Critical",
}

# Risk Assessment Matrix: (impact, likelihood) -> risk class.
RISK_MATRIX: dict[tuple[str, str], str] = {
    (Impact.LOW, Likelihood.LOW): RiskLevel.LOW,
    (Impact.LOW, Likelihood.MEDIUM): RiskLevel.MEDIUM,
    (Impact.LOW, Likelihood.HIGH): RiskLevel.MEDIUM,
    (Impact.MEDIUM, Likelihood.LOW): RiskLevel.MEDIUM,
    (Impact.MEDIUM, Likelihood.MEDIUM): RiskLevel.MEDIUM,
    (Impact.MEDIUM, Likelihood.HIGH): RiskLevel.HIGH,
    (Impact.HIGH, Likelihood.LOW): RiskLevel.MEDIUM,
    (Impact.HIGH, Likelihood.MEDIUM): RiskLevel.HIGH,
    (Impact.HIGH, Likelihood.HIGH): RiskLevel.CRITICAL,
}


def risk_level(impact: str, likelihood: str) -> str:
    return RISK_MATRIX[(Impact(impact), Likelihood(likelihood))]


class CABRule(models.TextChoices):
    """How much of the Change Advisory Board must approve, besides the named approver."""

    NONE = "none", "No CAB vote"
    MAJORITY = "majority", "CAB majority (more than half of the CAB members)"
    FULL = "full", "Full CAB (every CAB member)"


@dataclass(frozen=True)
class ApprovalRequirement:
    """One row of the approval table, resolved to the groups of opsconsole.roles."""

    approver_group: str  # one approval by a member of this group (or of a more senior one)
    cab: str  # CABRule
    label: str  # the manual's words


APPROVAL_TABLE: dict[str, ApprovalRequirement] = {
    RiskLevel.LOW: ApprovalRequirement(roles.OPERATIONS_LEAD, CABRule.NONE, "Operations Lead"),
    RiskLevel.MEDIUM: ApprovalRequirement(roles.ENGINEERING_MANAGER, CABRule.NONE, "Engineering Manager"),
    RiskLevel.HIGH: ApprovalRequirement(roles.DIRECTOR, CABRule.MAJORITY, "Director + CAB"),
    RiskLevel.CRITICAL: ApprovalRequirement(roles.VP_CTO, CABRule.FULL, "VP + Full CAB"),
}

# The approval authority ladder: a more senior manager may give a junior approver's approval
# (a Director may approve a Medium change); a junior one may not give a senior's.
APPROVER_LADDER = [roles.OPERATIONS_LEAD, roles.ENGINEERING_MANAGER, roles.DIRECTOR, roles.VP_CTO]


def approver_groups(group: str) -> set[str]:
    """The groups whose members may give the approval of `group`: it and every more senior one."""
    return set(APPROVER_LADDER[APPROVER_LADDER.index(group):])


# "Technical team reviews" (Step 2): who may act as the technical reviewer.
TECHNICAL_REVIEWER_GROUPS = {
    roles.SENIOR_ENGINEER, roles.OPERATIONS_LEAD, roles.ENGINEERING_MANAGER, roles.DIRECTOR, roles.VP_CTO,
}
# Who may raise, submit, schedule and implement changes.
REQUESTER_GROUPS = roles.OPERATOR_GROUPS
# "Obtain verbal approval from on-call manager": the managers of the escalation matrix.
ON_CALL_MANAGER_GROUPS = {roles.ENGINEERING_MANAGER, roles.DIRECTOR, roles.VP_CTO}
# Who may cancel a change someone else raised.
CANCEL_GROUPS = {roles.OPERATIONS_LEAD, roles.ENGINEERING_MANAGER, roles.DIRECTOR, roles.VP_CTO}


class ChangeState(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    TECHNICAL_REVIEW = "technical_review", "Technical review"
    CAB_REVIEW = "cab_review", "CAB review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    VALIDATING = "validating", "Validating"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CLOSED = "closed", "Closed (reviewed)"
    CANCELLED = "cancelled", "Cancelled"


# States whose window counts for overlap detection (not drafts, not withdrawn or refused ones).
WINDOW_STATES = [
    ChangeState.SUBMITTED, ChangeState.TECHNICAL_REVIEW, ChangeState.CAB_REVIEW, ChangeState.APPROVED,
    ChangeState.SCHEDULED, ChangeState.IN_PROGRESS, ChangeState.VALIDATING, ChangeState.COMPLETED,
    ChangeState.ROLLED_BACK, ChangeState.CLOSED,
]
# States in which the pre-implementation checklist may still be ticked.
CHECKLIST_STATES = [ChangeState.DRAFT, ChangeState.SUBMITTED, ChangeState.TECHNICAL_REVIEW, ChangeState.CAB_REVIEW,
                    ChangeState.APPROVED, ChangeState.SCHEDULED]
# States in which the form may still be edited.
EDITABLE_STATES = [ChangeState.DRAFT]


@dataclass(frozen=True)
class CheckItem:
    key: str
    label: str


# Step 2: Technical Review.
TECHNICAL_REVIEW_POINTS = [
    CheckItem("implementation_feasibility", "Implementation feasibility"),
    CheckItem("risk_assessment_accuracy", "Risk assessment accuracy"),
    CheckItem("rollback_plan_adequacy", "Rollback plan adequacy"),
    CheckItem("test_coverage", "Test coverage"),
    CheckItem("documentation_completeness", "Documentation completeness"),
]

# Pre-Implementation Checklist: section -> items. "Change request approved" is ticked by the
# workflow itself when the change is approved; every other item is ticked by a person.
CHANGE_APPROVED_ITEM = "change_request_approved"
PRE_IMPLEMENTATION_CHECKLIST: dict[str, list[CheckItem]] = {
    "Technical Readiness": [
        CheckItem("implementation_plan_reviewed", "Implementation plan reviewed and approved"),
        CheckItem("rollback_plan_tested", "Rollback plan documented and tested"),
        CheckItem("artifacts_staged", "Required artifacts staged and verified"),
        CheckItem("test_environment_validated", "Test environment validation complete"),
        CheckItem("dependencies_available", "Dependencies identified and available"),
        CheckItem("monitoring_configured", "Monitoring configured for change detection"),
        CheckItem("stakeholders_informed", "Communication sent to stakeholders"),
    ],
    "Resource Availability": [
        CheckItem("implementation_team_available", "Implementation team available"),
        CheckItem("rollback_team_identified", "Rollback team identified"),
        CheckItem("escalation_contacts_confirmed", "Management escalation contacts confirmed"),
        CheckItem("communication_channels_tested", "Communication channels tested"),
        CheckItem("access_verified", "Required access verified"),
    ],
    "Documentation": [
        CheckItem(CHANGE_APPROVED_ITEM, "Change request approved"),
        CheckItem("implementation_runbook_prepared", "Implementation runbook prepared"),
        CheckItem("rollback_runbook_prepared", "Rollback runbook prepared"),
        CheckItem("success_criteria_defined", "Success criteria defined"),
        CheckItem("validation_procedures_documented", "Validation procedures documented"),
    ],
}
PRE_IMPLEMENTATION_KEYS = [item.key for items in PRE_IMPLEMENTATION_CHECKLIST.values() for item in items]
MANUAL_CHECKLIST_KEYS = [key for key in PRE_IMPLEMENTATION_KEYS if key != CHANGE_APPROVED_ITEM]

# Implementation Guidelines, 3. Validate Change.
VALIDATION_POINTS = [
    CheckItem("validation_procedures_executed", "Validation procedures executed"),
    CheckItem("success_criteria_met", "Success criteria met"),
    CheckItem("monitoring_checked", "Monitoring checked for anomalies"),
    CheckItem("no_regression", "No regression"),
]

# Post-Implementation Review, Immediate Review (within 24 hours); lessons learned and results are text.
POST_IMPLEMENTATION_POINTS = [
    CheckItem("change_stable", "Change stability verified"),
    CheckItem("issues_reviewed", "Issues encountered reviewed"),
    CheckItem("monitoring_as_expected", "Monitoring shows expected behavior"),
]


class RollbackTrigger(models.TextChoices):
    """Rollback Triggers: "Initiate rollback if: ..."."""

    VALIDATION_FAILED = "validation_failed", "Validation fails"
    ERROR_RATE = "error_rate", "Error rate increases significantly"
    CRITICAL_FUNCTIONALITY = "critical_functionality", "Critical functionality impacted"
    UNEXPECTED_BEHAVIOR = "unexpected_behavior", "Unexpected behavior observed"
    WINDOW_EXCEEDED = "window_exceeded", "Change cannot be completed in window"


class Vote(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class TimelineKind(models.TextChoices):
    CREATED = "created", "Created"
    EDITED = "edited", "Edited"
    TRANSITION = "transition", "Transition"
    APPROVAL = "approval", "Approval vote"
    CHECKLIST = "checklist", "Checklist"
    CONFLICT = "conflict", "Schedule conflict"
    NOTE = "note", "Note"
    EMERGENCY = "emergency", "Emergency"


# Affected systems are "<kind>:<name>" tokens; sources, rules, destinations and routes belong to a module,
# so a change to module:alpha overlaps every change to an Alpha source.
SYSTEM_KINDS = {
    "module": None, "source": "alpha", "rule": "beta", "enrichment": "beta", "destination": "gamma", "route": "gamma",
    "system": None,
}
MODULES = ["alpha", "beta", "gamma"]

# Hours within which the formal request of an emergency change, and every post-implementation review, are due.
EMERGENCY_FORMAL_REQUEST_HOURS = 24
POST_IMPLEMENTATION_REVIEW_HOURS = 24
