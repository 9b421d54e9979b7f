"""Every allowed and forbidden transition of the change workflow, structurally and through the services."""
from datetime import timedelta

import pytest
from django.utils import timezone

from changes import services
from changes.choices import (
    MANUAL_CHECKLIST_KEYS, POST_IMPLEMENTATION_POINTS, TECHNICAL_REVIEW_POINTS, VALIDATION_POINTS, ChangeState,
)
from changes.models import ChangeRequest
from opsconsole.errors import ApplicationError

# The workflow: transition -> {source: target}.
EDGES = {
    "submit": {"draft": "submitted"},
    "preapprove": {"submitted": "approved"},
    "review_start": {"submitted": "technical_review"},
    "review_pass": {"technical_review": "cab_review"},
    "return_to_draft": {"technical_review": "draft"},
    "review_reject": {"technical_review": "rejected"},
    "cab_approve": {"cab_review": "approved"},
    "cab_reject": {"cab_review": "rejected"},
    "schedule": {"approved": "scheduled", "scheduled": "scheduled"},
    "start": {"scheduled": "in_progress"},
    "declare": {"draft": "in_progress"},
    "implementation_done": {"in_progress": "validating"},
    "complete": {"validating": "completed"},
    "roll_back": {"in_progress": "rolled_back", "validating": "rolled_back"},
    "close": {"completed": "closed", "rolled_back": "closed"},
    "cancel": {s: "cancelled" for s in ["draft", "submitted", "technical_review", "cab_review", "approved", "scheduled"]},
}


def test_the_state_machine_is_exactly_the_workflow():
    field = ChangeRequest._meta.get_field("status")
    actual: dict[str, dict[str, str]] = {}
    for transition in field.get_all_transitions(ChangeRequest):
        actual.setdefault(transition.name, {})[transition.source] = transition.target
    assert actual == EDGES


def test_status_is_protected(flow):
    change = flow.draft()
    with pytest.raises(AttributeError):
        change.status = ChangeState.APPROVED


# One call per service action, with the actor the workflow expects and valid input, so that a refusal
# can only come from the state. Value: (states the action is allowed in, callable).
def _actions(p):
    return {
        "submit": (["draft"], lambda c: services.change_submit(change=c, actor=p.requester)),
        "review_start": (["submitted"], lambda c: services.change_review_start(change=c, actor=p.senior)),
        "review_pass": (["technical_review"], lambda c: services.change_review_pass(
            change=c, actor=p.senior, points=[x.key for x in TECHNICAL_REVIEW_POINTS])),
        "return": (["technical_review"], lambda c: services.change_return(change=c, actor=p.senior, reason="fix")),
        "reject": (["technical_review", "cab_review"],
                   lambda c: services.change_reject(change=c, actor=p.manager if c.status == "cab_review" else p.senior,
                                                    reason="no")),
        "vote": (["cab_review"], lambda c: services.change_vote(change=c, actor=p.manager, decision="approve")),
        "schedule": (["approved", "scheduled"], lambda c: services.change_schedule(change=c, actor=p.requester)),
        "checklist": (["draft", "submitted", "technical_review", "cab_review", "approved", "scheduled"],
                      lambda c: services.change_checklist_set(change=c, actor=p.requester,
                                                              items={MANUAL_CHECKLIST_KEYS[0]: True})),
        "start": (["scheduled"], lambda c: services.change_start(change=c, actor=p.requester)),
        "implementation_done": (["in_progress"], lambda c: services.change_implementation_done(change=c, actor=p.requester)),
        "complete": (["validating"], lambda c: services.change_complete(
            change=c, actor=p.requester, points=[x.key for x in VALIDATION_POINTS])),
        "roll_back": (["in_progress", "validating"], lambda c: services.change_roll_back(
            change=c, actor=p.requester, trigger="validation_failed")),
        "close": (["completed", "rolled_back"], lambda c: services.change_close(
            change=c, actor=p.requester, points=[x.key for x in POST_IMPLEMENTATION_POINTS], lessons_learned="l",
            results="r")),
        "cancel": (["draft", "submitted", "technical_review", "cab_review", "approved", "scheduled"],
                   lambda c: services.change_cancel(change=c, actor=p.requester, reason="withdrawn")),
        "formalize": ([], lambda c: services.change_formalize(change=c, actor=p.requester)),
    }


ALL_STATES = [s.value for s in ChangeState]


@pytest.mark.parametrize("state", ALL_STATES)
def test_forbidden_actions_are_refused_by_state(flow, people, state):
    change = flow.at(state)
    assert change.status == state
    refused = []
    for name, (allowed, call) in _actions(people).items():
        if state in allowed:
            continue
        with pytest.raises(ApplicationError) as caught:
            call(ChangeRequest.objects.get(pk=change.pk))
        assert caught.value.status_code == 409, (name, caught.value.message)
        refused.append(name)
    assert ChangeRequest.objects.get(pk=change.pk).status == state  # nothing moved
    assert refused


EXPECTED_AFTER = {
    ("submit", "draft"): "submitted", ("review_start", "submitted"): "technical_review",
    ("review_pass", "technical_review"): "cab_review", ("return", "technical_review"): "draft",
    ("reject", "technical_review"): "rejected", ("reject", "cab_review"): "rejected", ("vote", "cab_review"): "approved",
    ("schedule", "approved"): "scheduled", ("schedule", "scheduled"): "scheduled", ("checklist", "draft"): "draft",
    ("checklist", "approved"): "approved", ("checklist", "scheduled"): "scheduled",
    ("roll_back", "in_progress"): "rolled_back", ("roll_back", "validating"): "rolled_back",
    ("implementation_done", "in_progress"): "validating", ("complete", "validating"): "completed",
    ("close", "completed"): "closed", ("close", "rolled_back"): "closed",
    **{("cancel", s): "cancelled" for s in ["draft", "submitted", "technical_review", "cab_review", "approved", "scheduled"]},
}


@pytest.mark.parametrize("name,state", list(EXPECTED_AFTER))
def test_allowed_actions_move_the_change(flow, people, name, state):
    change = flow.at(state)
    result = _actions(people)[name][1](change)
    assert result.status == EXPECTED_AFTER[(name, state)]
    change.refresh_from_db()
    assert change.status == EXPECTED_AFTER[(name, state)]


def test_every_transition_writes_timeline_and_audit(flow):
    from opsconsole.models import AuditEntry

    change = flow.closed()
    moves = list(change.timeline.filter(kind="transition").values_list("from_state", "to_state"))
    assert moves == [("draft", "submitted"), ("submitted", "technical_review"), ("technical_review", "cab_review"),
                     ("cab_review", "approved"), ("approved", "scheduled"), ("scheduled", "in_progress"),
                     ("in_progress", "validating"), ("validating", "completed"), ("completed", "closed")]
    actions = list(AuditEntry.objects.filter(target=change.change_id).order_by("id").values_list("action", flat=True))
    assert actions == ["change.create", "change.submit", "change.review_start", "change.review_pass",
                       "change.vote.approve", "change.cab_approve", "change.schedule", "change.checklist",
                       "change.start", "change.implementation_done", "change.complete", "change.close"]
    assert change.reviewed_at and change.finished_at and change.started_at and change.approved_at


def test_standard_change_is_preapproved_on_submit(flow, people):
    from tests.changes.conftest import STANDARD_FORM, window

    start, end = window()
    change = services.change_create(actor=people.requester, data={**STANDARD_FORM, "scheduled_start": start,
                                                                  "scheduled_end": end})
    change = services.change_submit(change=change, actor=people.requester)
    assert change.status == "approved"
    assert change.checklist_done("change_request_approved")
    assert [e.to_state for e in change.timeline.filter(kind="transition")] == ["submitted", "approved"]
    assert not change.approvals.exists()


def test_standard_change_must_be_low_risk_and_catalogued(flow, people):
    from tests.changes.conftest import STANDARD_FORM, window

    start, end = window()
    data = {**STANDARD_FORM, "scheduled_start": start, "scheduled_end": end, "likelihood": "medium"}
    change = services.change_create(actor=people.requester, data=data)
    with pytest.raises(ApplicationError, match="pre-approved kind"):
        services.change_submit(change=change, actor=people.requester)
    with pytest.raises(ApplicationError, match="not in the catalogue"):
        services.change_create(actor=people.requester, data={**data, "standard_kind": "database-migration"})


def test_return_to_draft_starts_a_new_cab_round(flow, people):
    change = flow.in_review()
    change = services.change_return(change=change, actor=people.senior, reason="Add load-test numbers.")
    assert change.status == "draft" and change.decision_reason == "Add load-test numbers."
    change = services.change_update(change=change, actor=people.requester, data={"testing_performed": "Load test: ok"})
    change = services.change_submit(change=change, actor=people.requester)
    assert change.status == "submitted"


def test_only_drafts_are_edited(flow, people):
    change = flow.submitted()
    with pytest.raises(ApplicationError) as caught:
        services.change_update(change=change, actor=people.requester, data={"title": "x"})
    assert caught.value.status_code == 409


def test_schedule_moves_the_window_and_refuses_an_ended_one(flow, people):
    change = flow.approved()
    start = timezone.now() + timedelta(days=2)
    change = services.change_schedule(change=change, actor=people.requester, start=start,
                                      end=start + timedelta(hours=1))
    assert change.status == "scheduled" and change.scheduled_start == start
    with pytest.raises(ApplicationError, match="must not have ended"):
        services.change_schedule(change=change, actor=people.requester, start=start - timedelta(days=5),
                                 end=start - timedelta(days=4))
