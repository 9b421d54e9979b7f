"""Whether a change in CAB review has the approvals its risk level needs (the manual's approval table).

Low: Operations Lead. Medium: Engineering Manager. High: Director + CAB. Critical: VP + Full CAB.
The named approver's approval may come from that group or a more senior one (choices.APPROVER_LADDER).
"CAB" is a majority of the CAB members; "Full CAB" is every CAB member. The requester never counts:
they cannot vote, and they are not on the CAB roll of their own change.
A rejection by the named approver refuses the change; CAB rejections refuse it once the CAB part can
no longer be reached (one rejection under Full CAB, enough to deny a majority under CAB).
"""
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from opsconsole import roles

from .choices import APPROVAL_TABLE, ApprovalRequirement, CABRule, Vote
from .permissions import CAB_CAPACITY


@dataclass
class ApprovalStatus:
    requirement: ApprovalRequirement
    approver_approved_by: list[str] = field(default_factory=list)
    approver_rejected_by: list[str] = field(default_factory=list)
    cab_members: list[str] = field(default_factory=list)
    cab_needed: int = 0
    cab_approved_by: list[str] = field(default_factory=list)
    cab_rejected_by: list[str] = field(default_factory=list)

    @property
    def approver_done(self) -> bool:
        return bool(self.approver_approved_by)

    @property
    def cab_done(self) -> bool:
        return self.requirement.cab == CABRule.NONE or (
            self.cab_needed > 0 and len(self.cab_approved_by) >= self.cab_needed)

    @property
    def granted(self) -> bool:
        return not self.refused and self.approver_done and self.cab_done

    @property
    def refused(self) -> bool:
        if self.approver_rejected_by:
            return True
        if self.requirement.cab == CABRule.NONE:
            return False
        if self.cab_needed == 0:
            return False  # nobody to ask yet: waits for CAB members to be named
        return len(self.cab_members) - len(self.cab_rejected_by) < self.cab_needed

    @property
    def waiting_for(self) -> list[str]:
        """What is still missing, in words an operator reads on the change page."""
        missing = []
        if not self.approver_done:
            missing.append(f"approval by {self.requirement.approver_group} (or more senior)")
        if self.requirement.cab != CABRule.NONE and not self.cab_done:
            if not self.cab_members:
                missing.append("CAB members: nobody else is in the CAB member group")
            else:
                missing.append(f"{self.cab_needed - len(self.cab_approved_by)} more CAB approval(s) "
                               f"({len(self.cab_approved_by)} of {self.cab_needed} needed from {len(self.cab_members)} members)")
        return missing


def cab_roll(change) -> list[str]:
    """Usernames of the active CAB members who may vote on `change` (the requester stands aside)."""
    users = get_user_model().objects.filter(groups__name=roles.CAB_MEMBER, is_active=True)
    if change.requester_id:
        users = users.exclude(pk=change.requester_id)
    return sorted(users.values_list("username", flat=True).distinct())


def cab_needed(rule: str, members: int) -> int:
    if rule == CABRule.NONE:
        return 0
    if rule == CABRule.FULL:
        return members
    return members // 2 + 1 if members else 0


def approval_status(change) -> ApprovalStatus:
    requirement = APPROVAL_TABLE[change.risk_level]
    status = ApprovalStatus(requirement=requirement)
    if requirement.cab != CABRule.NONE:
        status.cab_members = cab_roll(change)
        status.cab_needed = cab_needed(requirement.cab, len(status.cab_members))
    if not change.pk:
        return status
    for vote in change.approvals.filter(round=change.cab_round).order_by("at", "id"):
        approve = vote.decision == Vote.APPROVE
        if requirement.approver_group in vote.capacities:
            (status.approver_approved_by if approve else status.approver_rejected_by).append(vote.voter_name)
        if CAB_CAPACITY in vote.capacities and vote.voter_name in status.cab_members:
            (status.cab_approved_by if approve else status.cab_rejected_by).append(vote.voter_name)
    return status
