"""The operator actions on a change request, and which of them a user may take now.

The console's buttons and the API's `allowed_actions` both come from here. An action is offered when
the change's state allows it and the user's role does; whether its conditions hold (a complete form, a
ticked checklist, ...) is answered by the service when it runs, with the reason when they do not.
"""
from collections.abc import Callable
from dataclasses import dataclass

from . import permissions as perms
from .choices import CHECKLIST_STATES, ChangeState
from .models import ChangeRequest


@dataclass(frozen=True)
class ChangeAction:
    name: str  # the API's @action url_path and the console's action slug
    label: str
    available: Callable[[ChangeRequest, object], bool]
    style: str = ""  # primary, danger
    help: str = ""


def _transition(name: str) -> Callable[[ChangeRequest, object], bool]:
    def available(change: ChangeRequest, user) -> bool:
        meta = getattr(ChangeRequest, name)._django_fsm
        if not meta.has_transition(change.status):
            return False
        return meta.get_transition(change.status).has_perm(change, user)
    return available


def _vote(change: ChangeRequest, user) -> bool:
    return change.status == ChangeState.CAB_REVIEW and perms.may_vote(change, user)


def _reject(change: ChangeRequest, user) -> bool:
    return _vote(change, user) or _transition("review_reject")(change, user)


def _checklist(change: ChangeRequest, user) -> bool:
    return change.status in CHECKLIST_STATES and not change.is_emergency and perms.may_implement(change, user)


def _formalize(change: ChangeRequest, user) -> bool:
    return change.is_emergency and not change.formal_request_at and change.status != ChangeState.CANCELLED \
        and perms.may_edit(change, user)


def _edit(change: ChangeRequest, user) -> bool:
    return change.is_editable and perms.may_edit(change, user)


def _note(change: ChangeRequest, user) -> bool:
    return perms.may_implement(change, user)


ACTIONS = [
    ChangeAction("edit", "Edit form", _edit),
    ChangeAction("submit", "Submit", _transition("submit"), "primary",
                 "Standard changes of a catalogued kind are pre-approved on submit."),
    ChangeAction("review-start", "Start technical review", _transition("review_start"), "primary"),
    ChangeAction("review-pass", "Pass technical review", _transition("review_pass"), "primary",
                 "Confirm the five review points; the change goes to CAB review."),
    ChangeAction("return", "Return to draft", _transition("return_to_draft")),
    ChangeAction("approve", "Approve", _vote, "primary"),
    ChangeAction("reject", "Reject", _reject, "danger"),
    ChangeAction("schedule", "Schedule", _transition("schedule"), "primary",
                 "Confirm the window (or move it); overlapping windows are flagged."),
    ChangeAction("checklist", "Pre-implementation checklist", _checklist),
    ChangeAction("start", "Start implementation", _transition("start"), "primary",
                 "Needs the complete checklist and an open window."),
    ChangeAction("implementation-done", "Implementation done", _transition("implementation_done"), "primary"),
    ChangeAction("complete", "Validated: complete", _transition("complete"), "primary"),
    ChangeAction("roll-back", "Roll back", _transition("roll_back"), "danger"),
    ChangeAction("review", "Post-implementation review", _transition("close"), "primary",
                 "Due within 24 hours of completion or rollback; closes the change."),
    ChangeAction("formalize", "Complete formal request", _formalize, "primary",
                 "Emergency changes: the formal request is due within 24 hours of the declaration."),
    ChangeAction("cancel", "Cancel", _transition("cancel"), "danger"),
    ChangeAction("note", "Add note", _note),
]
ACTIONS_BY_NAME = {action.name: action for action in ACTIONS}


def change_actions_for(change: ChangeRequest, user) -> list[ChangeAction]:
    return [action for action in ACTIONS if action.available(change, user)]
