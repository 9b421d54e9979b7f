"""Change-management fixtures: one user per role, and factories that drive a change to any state
through the real services (never by assigning the protected status field)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from changes import services
from changes.choices import MANUAL_CHECKLIST_KEYS, POST_IMPLEMENTATION_POINTS, TECHNICAL_REVIEW_POINTS, VALIDATION_POINTS
from changes.models import ChangeRequest
from opsconsole import roles
from tests.conftest import make_user


class People:
    """Users of every group of DESIGN.md §7 (usernames say the role)."""

    def __init__(self):
        self.requester = make_user("requester", roles.OPERATIONS_TEAM)
        self.operator = make_user("operator2", roles.OPERATIONS_TEAM)
        self.oncall = make_user("oncall", roles.ON_CALL_ENGINEER)
        self.senior = make_user("senior", roles.SENIOR_ENGINEER)
        self.lead = make_user("lead", roles.OPERATIONS_LEAD)
        self.manager = make_user("manager", roles.ENGINEERING_MANAGER)
        self.director = make_user("director", roles.DIRECTOR)
        self.vp = make_user("vp", roles.VP_CTO)
        self.cab1 = make_user("cab1", roles.CAB_MEMBER)
        self.cab2 = make_user("cab2", roles.CAB_MEMBER)
        self.cab3 = make_user("cab3", roles.CAB_MEMBER)
        self.viewer = make_user("viewer1", roles.VIEWER)

    @property
    def cab(self):
        return [self.cab1, self.cab2, self.cab3]


@pytest.fixture
def people(db) -> People:
    return People()


def window(hours_from_now: float = -0.5, length_hours: float = 2):
    """A window around now by default, so a scheduled change may start at once."""
    start = timezone.now() + timedelta(hours=hours_from_now)
    return start, start + timedelta(hours=length_hours)


def form(**overrides) -> dict:
    start, end = window()
    data = {
        "title": "Raise batch size of api_source_1",
        "change_type": "normal",
        "priority": "medium",
        "description": "Increase the ingestion batch size from 500 to 1000.",
        "business_justification": "Throughput is at 85% of capacity.",
        "technical_details": "alpha/sources/api_source_1.yaml: batch_size 1000.",
        "affected_systems": ["source:api_source_1"],
        "impact": "low",
        "likelihood": "medium",  # Medium risk: Engineering Manager
        "risk_assessment": "Memory per worker rises; checked against limits.",
        "testing_performed": "Staging run with 2x production volume.",
        "implementation_plan": "1. Edit the YAML. 2. reload_config. 3. Watch alpha_buffer_utilization.",
        "rollback_plan": "rollback_config to the previous version.",
        "scheduled_start": start,
        "scheduled_end": end,
    }
    data.update(overrides)
    return data


STANDARD_FORM = {
    "title": "Raise Alpha log level to DEBUG for an hour",
    "change_type": "standard",
    "standard_kind": "log-level-change",
    "description": "Log level DEBUG on alpha for diagnosis.",
    "affected_systems": ["module:alpha"],
    "impact": "low", "likelihood": "low",
    "rollback_plan": "Set the log level back to INFO.",
}

APPROVER_FOR_RISK = {"low": "lead", "medium": "manager", "high": "director", "critical": "vp"}
RISK_INPUT = {"low": ("low", "low"), "medium": ("low", "medium"), "high": ("medium", "high"), "critical": ("high", "high")}


class Flow:
    """Drives a change through the workflow with the right people."""

    def __init__(self, people: People):
        self.p = people

    def draft(self, **overrides) -> ChangeRequest:
        return services.change_create(actor=self.p.requester, data=form(**overrides))

    def risk(self, level: str, **overrides) -> dict:
        impact, likelihood = RISK_INPUT[level]
        return {"impact": impact, "likelihood": likelihood, **overrides}

    def submitted(self, **overrides) -> ChangeRequest:
        return services.change_submit(change=self.draft(**overrides), actor=self.p.requester)

    def in_review(self, **overrides) -> ChangeRequest:
        return services.change_review_start(change=self.submitted(**overrides), actor=self.p.senior)

    def in_cab(self, **overrides) -> ChangeRequest:
        return services.change_review_pass(change=self.in_review(**overrides), actor=self.p.senior,
                                           points=[p.key for p in TECHNICAL_REVIEW_POINTS], notes="Looks sound.")

    def approve(self, change: ChangeRequest) -> ChangeRequest:
        """Every vote the change's risk level needs (approver, then the CAB part)."""
        approver = getattr(self.p, APPROVER_FOR_RISK[change.risk_level])
        change = services.change_vote(change=change, actor=approver, decision="approve", comment="ok")
        for member in self.p.cab:
            if change.status != "cab_review":
                break
            change = services.change_vote(change=change, actor=member, decision="approve", comment="ok")
        return change

    def approved(self, **overrides) -> ChangeRequest:
        return self.approve(self.in_cab(**overrides))

    def scheduled(self, **overrides) -> ChangeRequest:
        return services.change_schedule(change=self.approved(**overrides), actor=self.p.requester)

    def tick_all(self, change: ChangeRequest) -> ChangeRequest:
        return services.change_checklist_set(change=change, actor=self.p.requester,
                                             items={k: True for k in MANUAL_CHECKLIST_KEYS})

    def in_progress(self, **overrides) -> ChangeRequest:
        return services.change_start(change=self.tick_all(self.scheduled(**overrides)), actor=self.p.requester)

    def validating(self, **overrides) -> ChangeRequest:
        return services.change_implementation_done(change=self.in_progress(**overrides), actor=self.p.requester,
                                                   notes="")

    def completed(self, **overrides) -> ChangeRequest:
        return services.change_complete(change=self.validating(**overrides), actor=self.p.requester,
                                        points=[p.key for p in VALIDATION_POINTS])

    def rolled_back(self, **overrides) -> ChangeRequest:
        return services.change_roll_back(change=self.in_progress(**overrides), actor=self.p.requester,
                                         trigger="error_rate", details="Error rate tripled.")

    def closed(self, **overrides) -> ChangeRequest:
        return self.review(self.completed(**overrides))

    def review(self, change: ChangeRequest) -> ChangeRequest:
        return services.change_close(change=change, actor=self.p.requester,
                                     points=[p.key for p in POST_IMPLEMENTATION_POINTS],
                                     lessons_learned="Stage the batch size on one source first.",
                                     results="Throughput up 30%.")

    def rejected(self, **overrides) -> ChangeRequest:
        return services.change_vote(change=self.in_cab(**overrides), actor=self.p.manager, decision="reject",
                                    comment="Not this week.")

    def cancelled(self, **overrides) -> ChangeRequest:
        return services.change_cancel(change=self.draft(**overrides), actor=self.p.requester, reason="Not needed.")

    def emergency(self, **overrides) -> ChangeRequest:
        args = {"actor": self.p.oncall, "title": "Patch TLS library on gamma workers",
                "description": "CVE fix for the HTTP destination client.", "affected_systems": ["module:gamma"],
                "verbal_approver": self.p.manager, "impact": "high", "likelihood": "medium",
                "verbal_approval_notes": "Phone call 02:10, approved by manager."}
        args.update(overrides)
        return services.emergency_change_declare(**args)

    def at(self, state: str) -> ChangeRequest:
        return {
            "draft": self.draft, "submitted": self.submitted, "technical_review": self.in_review,
            "cab_review": self.in_cab, "approved": self.approved, "rejected": self.rejected,
            "scheduled": self.scheduled, "in_progress": self.in_progress, "validating": self.validating,
            "completed": self.completed, "rolled_back": self.rolled_back, "closed": self.closed,
            "cancelled": self.cancelled,
        }[state]()


@pytest.fixture
def flow(people) -> Flow:
    return Flow(people)
