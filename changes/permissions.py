"""Who may do what to a change request: one set of rules for the API, the console and the admin.

Each rule is `(change, user) -> bool`, the shape django-fsm's `permission=` takes, so the model's
transitions, the services and the pages that show buttons all ask the same question.
Approval authority comes from group membership only (a superuser is not an approver).
"""
from opsconsole import roles

from .choices import (
    APPROVAL_TABLE, CANCEL_GROUPS, ON_CALL_MANAGER_GROUPS, REQUESTER_GROUPS, TECHNICAL_REVIEWER_GROUPS, CABRule,
    approver_groups,
)


def may_raise(user) -> bool:
    """Raise, submit, schedule, implement and review changes: the operator groups."""
    return roles.has_any_role(user, REQUESTER_GROUPS)


def may_submit(change, user) -> bool:
    return may_raise(user)


def may_implement(change, user) -> bool:
    return may_raise(user)


def may_edit(change, user) -> bool:
    return may_raise(user)


def _is_requester(change, user) -> bool:
    return change.requester_id is not None and change.requester_id == getattr(user, "pk", None)


def may_review_technically(change, user) -> bool:
    """Senior Engineer and the management ladder, never the requester (four eyes)."""
    return roles.has_any_role(user, TECHNICAL_REVIEWER_GROUPS) and not _is_requester(change, user)


CAB_CAPACITY = roles.CAB_MEMBER


def approval_capacities(change, user) -> list[str]:
    """The capacities in which `user` may vote on `change` at its risk level: the approver group of
    the approval table (held directly or through a more senior group) and/or CAB member.
    The requester may not approve their own change."""
    if change.risk_level not in APPROVAL_TABLE or not getattr(user, "is_authenticated", False):
        return []
    if _is_requester(change, user):
        return []
    requirement = APPROVAL_TABLE[change.risk_level]
    groups = roles.user_groups(user)
    capacities = []
    if groups & approver_groups(requirement.approver_group):
        capacities.append(requirement.approver_group)
    if requirement.cab != CABRule.NONE and roles.CAB_MEMBER in groups:
        capacities.append(CAB_CAPACITY)
    return capacities


def may_vote(change, user) -> bool:
    return bool(approval_capacities(change, user))


def may_cancel(change, user) -> bool:
    """The requester, or the Operations Lead and the managers above."""
    return (_is_requester(change, user) and may_raise(user)) or roles.has_any_role(user, CANCEL_GROUPS)


def is_on_call_manager(user) -> bool:
    """Who may give an emergency change its verbal approval."""
    return bool(getattr(user, "is_authenticated", False) and roles.user_groups(user) & ON_CALL_MANAGER_GROUPS)
