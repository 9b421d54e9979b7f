"""Change requests (the manual's form and workflow), CAB votes, the change timeline, the catalogue
of pre-approved standard changes and the per-day id sequence."""
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from . import permissions as perms
from .choices import (
    CHANGE_APPROVED_ITEM, EDITABLE_STATES, EMERGENCY_FORMAL_REQUEST_HOURS, MANUAL_CHECKLIST_KEYS,
    POST_IMPLEMENTATION_POINTS, POST_IMPLEMENTATION_REVIEW_HOURS, RISK_CLASS_NAMES, TECHNICAL_REVIEW_POINTS,
    VALIDATION_POINTS, ChangeState, ChangeType, Impact, Likelihood, Priority, RiskLevel, RollbackTrigger, TimelineKind,
    Vote, risk_level,
)


class StandardChangeKind(models.Model):
    """A kind of pre-approved (standard) change. The manual's list is loaded by a migration."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Limits of the pre-approval (documented ranges, ...).")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ChangeSequence(models.Model):
    """The last change number issued on a day (CHG-YYYY-MMDD-NNN); see services.change_id_next."""

    day = models.DateField(primary_key=True)
    last = models.PositiveIntegerField()


# Conditions of the transitions. Each has a `message` the services show when it is not met.
def _condition(message: str):
    def wrap(func):
        func.message = message
        return func
    return wrap


FORM_FIELDS = [
    ("title", "Title"), ("description", "Change description"), ("business_justification", "Business justification"),
    ("technical_details", "Technical details"), ("affected_systems", "Affected systems"),
    ("risk_assessment", "Risk assessment"), ("testing_performed", "Testing performed"),
    ("implementation_plan", "Implementation plan"), ("rollback_plan", "Rollback plan"),
    ("scheduled_start", "Scheduled window start"), ("scheduled_end", "Scheduled window end"),
]
# Standard Change Process, step 3: "Submit change request with: change description, scheduled execution
# time, rollback plan" (plus what every request needs to be found and checked for overlaps).
STANDARD_FORM_FIELDS = ["title", "description", "affected_systems", "rollback_plan", "scheduled_start", "scheduled_end"]


class ChangeRequest(ConcurrentTransitionMixin, models.Model):
    """One change request. The status only moves through the transition methods below, which the
    services in changes.services call inside a transaction (the field is protected)."""

    change_id = models.CharField(max_length=24, unique=True, editable=False, help_text="CHG-YYYY-MMDD-NNN")
    change_type = models.CharField(max_length=16, choices=ChangeType.choices, default=ChangeType.NORMAL)
    standard_kind = models.ForeignKey(StandardChangeKind, null=True, blank=True, on_delete=models.PROTECT,
                                      help_text="For standard changes: the pre-approved kind.")
    status = FSMField(max_length=20, choices=ChangeState.choices, default=ChangeState.DRAFT, protected=True,
                      db_index=True)

    # The manual's change request form.
    title = models.CharField(max_length=200)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, help_text="The form's Date.")
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.MEDIUM)
    description = models.TextField(blank=True)
    business_justification = models.TextField(blank=True)
    technical_details = models.TextField(blank=True)
    affected_systems = models.JSONField(default=list, blank=True,
                                        help_text='Components as "kind:name": module:alpha, source:api_source_1, ...')
    impact = models.CharField(max_length=8, choices=Impact.choices, default=Impact.LOW)
    likelihood = models.CharField(max_length=8, choices=Likelihood.choices, default=Likelihood.LOW)
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices, default=RiskLevel.LOW, editable=False)
    risk_assessment = models.TextField(blank=True, help_text="Identified risks and mitigations.")
    testing_performed = models.TextField(blank=True)
    implementation_plan = models.TextField(blank=True)
    rollback_plan = models.TextField(blank=True)
    scheduled_start = models.DateTimeField(null=True, blank=True, db_index=True)
    scheduled_end = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Workflow record.
    submitted_at = models.DateTimeField(null=True, blank=True)
    technical_reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                           related_name="+")
    technical_review = models.JSONField(default=dict, blank=True, help_text="Review point -> confirmed.")
    technical_review_notes = models.TextField(blank=True)
    technical_reviewed_at = models.DateTimeField(null=True, blank=True)
    cab_round = models.PositiveIntegerField(default=0, help_text="Counts entries into CAB review; votes are per round.")
    approved_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True, help_text="When approved, rejected or cancelled.")
    decision_reason = models.TextField(blank=True, help_text="Why it was rejected, returned or cancelled.")
    checklist = models.JSONField(default=dict, blank=True,
                                 help_text="Pre-implementation item -> {by, at} of whoever ticked it.")
    started_at = models.DateTimeField(null=True, blank=True)
    implemented_at = models.DateTimeField(null=True, blank=True)
    implementation_notes = models.TextField(blank=True, help_text="Deviations from the plan, evidence.")
    validation = models.JSONField(default=dict, blank=True)
    validation_notes = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Completed or rolled back.")
    rollback_trigger = models.CharField(max_length=32, choices=RollbackTrigger.choices, blank=True)
    rollback_details = models.TextField(blank=True)
    post_review = models.JSONField(default=dict, blank=True)
    lessons_learned = models.TextField(blank=True)
    review_results = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)

    # Emergency changes.
    declared_at = models.DateTimeField(null=True, blank=True)
    verbal_approver = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+", help_text="The on-call manager who approved verbally.")
    verbal_approved_at = models.DateTimeField(null=True, blank=True)
    verbal_approval_notes = models.TextField(blank=True)
    on_call_engineer = models.CharField(max_length=150, blank=True, help_text="Who was on call when it was declared.")
    formal_request_at = models.DateTimeField(null=True, blank=True,
                                             help_text="When the formal change request was completed.")
    incident = models.ForeignKey("incidents.Incident", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="changes", help_text="The incident this change remediates.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "scheduled_start"])]

    def __str__(self) -> str:
        return f"{self.change_id} {self.title}"

    def save(self, *args, **kwargs):
        self.risk_level = risk_level(self.impact, self.likelihood)
        super().save(*args, **kwargs)

    # Derived values -------------------------------------------------------------------------------

    @property
    def risk_class_name(self) -> str:
        return RISK_CLASS_NAMES[RiskLevel(risk_level(self.impact, self.likelihood))]

    @property
    def is_emergency(self) -> bool:
        return self.change_type == ChangeType.EMERGENCY

    @property
    def is_editable(self) -> bool:
        return self.status in EDITABLE_STATES or (self.is_emergency and not self.formal_request_at
                                                  and self.status != ChangeState.CANCELLED)

    @property
    def formal_request_due_at(self):
        if not self.is_emergency or not self.declared_at:
            return None
        return self.declared_at + timedelta(hours=EMERGENCY_FORMAL_REQUEST_HOURS)

    def formal_request_overdue(self, now=None) -> bool:
        due = self.formal_request_due_at
        return bool(due and not self.formal_request_at and (now or timezone.now()) > due)

    @property
    def post_review_due_at(self):
        return self.finished_at + timedelta(hours=POST_IMPLEMENTATION_REVIEW_HOURS) if self.finished_at else None

    def post_review_overdue(self, now=None) -> bool:
        due = self.post_review_due_at
        return bool(due and not self.reviewed_at and (now or timezone.now()) > due)

    def checklist_done(self, key: str) -> bool:
        if key == CHANGE_APPROVED_ITEM:
            return self.approved_at is not None
        return key in self.checklist

    def missing_form_fields(self) -> list[str]:
        wanted = STANDARD_FORM_FIELDS if self.change_type == ChangeType.STANDARD else [f for f, _ in FORM_FIELDS]
        labels = dict(FORM_FIELDS)
        return [labels[f] for f in wanted if getattr(self, f) in (None, "", [])]

    # Transition conditions ------------------------------------------------------------------------

    @_condition("Complete the change request form first")
    def form_complete(self) -> bool:
        return not self.missing_form_fields()

    @_condition("The scheduled window must end after it starts")
    def window_valid(self) -> bool:
        return bool(self.scheduled_start and self.scheduled_end and self.scheduled_end > self.scheduled_start)

    @_condition("Emergency changes are declared, not submitted")
    def not_emergency(self) -> bool:
        return not self.is_emergency

    @_condition("A standard change needs a pre-approved kind from the catalogue and a Low risk assessment "
                "(low impact, low likelihood); otherwise submit it as a normal change")
    def standard_fits(self) -> bool:
        if self.change_type != ChangeType.STANDARD:
            return True
        return bool(self.standard_kind_id and self.standard_kind.active
                    and risk_level(self.impact, self.likelihood) == RiskLevel.LOW)

    @_condition("Only standard changes are pre-approved")
    def is_standard(self) -> bool:
        return self.change_type == ChangeType.STANDARD

    @_condition("Only normal changes go through technical review and CAB")
    def is_normal(self) -> bool:
        return self.change_type == ChangeType.NORMAL

    @_condition("All five technical review points must be confirmed")
    def review_points_confirmed(self) -> bool:
        return all(self.technical_review.get(p.key) for p in TECHNICAL_REVIEW_POINTS)

    @_condition("The required approvals are not complete")
    def approval_granted(self) -> bool:
        from .approvals import approval_status

        return approval_status(self).granted

    @_condition("The approval has not been refused")
    def approval_refused(self) -> bool:
        from .approvals import approval_status

        return approval_status(self).refused

    @_condition("The pre-implementation checklist (technical readiness, resources, documentation) is not complete")
    def checklist_complete(self) -> bool:
        return self.is_emergency or all(self.checklist_done(key) for key in MANUAL_CHECKLIST_KEYS + [CHANGE_APPROVED_ITEM])

    @_condition("The scheduled window must not have ended")
    def window_not_over(self) -> bool:
        return bool(self.scheduled_end and self.scheduled_end > timezone.now())

    @_condition("The change may only start within its scheduled window")
    def window_open(self) -> bool:
        now = timezone.now()
        return bool(self.scheduled_start and self.scheduled_end and self.scheduled_start <= now < self.scheduled_end)

    @_condition("All validation points must be confirmed (procedures executed, success criteria met, "
                "monitoring checked, no regression)")
    def validation_confirmed(self) -> bool:
        return all(self.validation.get(p.key) for p in VALIDATION_POINTS)

    @_condition("Record the rollback trigger")
    def rollback_trigger_recorded(self) -> bool:
        return bool(self.rollback_trigger)

    @_condition("The post-implementation review is not complete (stability, issues, monitoring, lessons learned, results)")
    def post_review_complete(self) -> bool:
        return all(self.post_review.get(p.key) for p in POST_IMPLEMENTATION_POINTS) and bool(
            self.lessons_learned.strip() and self.review_results.strip())

    @_condition("An emergency change needs its formal change request completed before it is closed")
    def formal_request_complete(self) -> bool:
        return not self.is_emergency or self.formal_request_at is not None

    @_condition("Record the on-call manager's verbal approval")
    def verbal_approval_recorded(self) -> bool:
        return bool(self.verbal_approver_id and self.verbal_approved_at)

    @_condition("Only emergency changes are declared")
    def emergency(self) -> bool:
        return self.is_emergency

    # Transitions ----------------------------------------------------------------------------------

    @transition(field=status, source=ChangeState.DRAFT, target=ChangeState.SUBMITTED,
                conditions=[not_emergency, form_complete, window_valid, window_not_over, standard_fits],
                permission=perms.may_submit)
    def submit(self):
        self.submitted_at = timezone.now()

    @transition(field=status, source=ChangeState.SUBMITTED, target=ChangeState.APPROVED,
                conditions=[is_standard, standard_fits], permission=perms.may_submit)
    def preapprove(self):
        self.approved_at = self.decided_at = timezone.now()

    @transition(field=status, source=ChangeState.SUBMITTED, target=ChangeState.TECHNICAL_REVIEW,
                conditions=[is_normal], permission=perms.may_review_technically)
    def review_start(self):
        self.technical_review = {}

    @transition(field=status, source=ChangeState.TECHNICAL_REVIEW, target=ChangeState.CAB_REVIEW,
                conditions=[review_points_confirmed], permission=perms.may_review_technically)
    def review_pass(self):
        self.technical_reviewed_at = timezone.now()
        self.cab_round += 1

    @transition(field=status, source=ChangeState.TECHNICAL_REVIEW, target=ChangeState.DRAFT,
                permission=perms.may_review_technically)
    def return_to_draft(self):
        self.submitted_at = None

    @transition(field=status, source=ChangeState.TECHNICAL_REVIEW, target=ChangeState.REJECTED,
                permission=perms.may_review_technically)
    def review_reject(self):
        self.decided_at = timezone.now()

    @transition(field=status, source=ChangeState.CAB_REVIEW, target=ChangeState.APPROVED,
                conditions=[approval_granted], permission=perms.may_vote)
    def cab_approve(self):
        self.approved_at = self.decided_at = timezone.now()

    @transition(field=status, source=ChangeState.CAB_REVIEW, target=ChangeState.REJECTED,
                conditions=[approval_refused], permission=perms.may_vote)
    def cab_reject(self):
        self.decided_at = timezone.now()

    @transition(field=status, source=[ChangeState.APPROVED, ChangeState.SCHEDULED], target=ChangeState.SCHEDULED,
                conditions=[window_valid, window_not_over], permission=perms.may_implement)
    def schedule(self):
        pass

    @transition(field=status, source=ChangeState.SCHEDULED, target=ChangeState.IN_PROGRESS,
                conditions=[checklist_complete, window_open], permission=perms.may_implement)
    def start(self):
        self.started_at = timezone.now()

    @transition(field=status, source=ChangeState.DRAFT, target=ChangeState.IN_PROGRESS,
                conditions=[emergency, verbal_approval_recorded], permission=perms.may_implement)
    def declare(self):
        self.declared_at = self.started_at = timezone.now()

    @transition(field=status, source=ChangeState.IN_PROGRESS, target=ChangeState.VALIDATING,
                permission=perms.may_implement)
    def implementation_done(self):
        self.implemented_at = timezone.now()

    @transition(field=status, source=ChangeState.VALIDATING, target=ChangeState.COMPLETED,
                conditions=[validation_confirmed], permission=perms.may_implement)
    def complete(self):
        self.finished_at = timezone.now()

    @transition(field=status, source=[ChangeState.IN_PROGRESS, ChangeState.VALIDATING], target=ChangeState.ROLLED_BACK,
                conditions=[rollback_trigger_recorded], permission=perms.may_implement)
    def roll_back(self):
        self.finished_at = timezone.now()

    @transition(field=status, source=[ChangeState.COMPLETED, ChangeState.ROLLED_BACK], target=ChangeState.CLOSED,
                conditions=[post_review_complete, formal_request_complete], permission=perms.may_implement)
    def close(self):
        self.reviewed_at = timezone.now()

    @transition(field=status, source=[ChangeState.DRAFT, ChangeState.SUBMITTED, ChangeState.TECHNICAL_REVIEW,
                                      ChangeState.CAB_REVIEW, ChangeState.APPROVED, ChangeState.SCHEDULED],
                target=ChangeState.CANCELLED, permission=perms.may_cancel)
    def cancel(self):
        self.decided_at = timezone.now()


class CABApproval(models.Model):
    """One vote on a change in one CAB round: who, in which capacities (roles), what, when, and why."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="approvals")
    round = models.PositiveIntegerField()
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    voter_name = models.CharField(max_length=150)
    capacities = models.JSONField(help_text='Roles the vote counts in, e.g. ["Director", "CAB member"].')
    voter_groups = models.JSONField(default=list, blank=True, help_text="The voter's groups when they voted.")
    decision = models.CharField(max_length=8, choices=Vote.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)
    via = models.CharField(max_length=16, default="api", help_text="api, console or admin.")

    class Meta:
        ordering = ["at", "id"]
        constraints = [models.UniqueConstraint(fields=["change", "round", "voter"], name="one_vote_per_round")]
        verbose_name = "CAB approval"

    def __str__(self) -> str:
        return f"{self.change.change_id} {self.voter_name} {self.decision}"


class ChangeEvent(models.Model):
    """The change timeline: every transition, vote, checklist tick, conflict and note."""

    change = models.ForeignKey(ChangeRequest, on_delete=models.CASCADE, related_name="timeline")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    actor_name = models.CharField(max_length=150)
    kind = models.CharField(max_length=16, choices=TimelineKind.choices)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name}: {self.message}"
