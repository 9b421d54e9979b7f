"""The risk matrix and the approval table, checked against the manual's own tables (copied verbatim)."""
import pytest

from changes.approvals import approval_status
from changes.choices import APPROVAL_TABLE, RISK_CLASS_NAMES, RiskLevel, risk_level
from changes.permissions import approval_capacities
from opsconsole import roles

MANUAL_RISK_MATRIX = """
| Impact | Low Likelihood | Medium Likelihood | High Likelihood |
| ------ | -------------- | ----------------- | --------------- |
| Low    | Standard       | Normal            | Normal          |
| Medium | Normal         | Normal            | High Risk       |
| High   | Normal         | High Risk         | Critical        |
"""

MANUAL_APPROVAL_LEVELS = """
| Risk Level | Approver            |
| ---------- | ------------------- |
| Low        | Operations Lead     |
| Medium     | Engineering Manager |
| High       | Director + CAB      |
| Critical   | VP + Full CAB       |
"""


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.strip().splitlines()[2:]]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


MATRIX_CASES = [
    (impact.lower(), likelihood, cls)
    for impact, *classes in _rows(MANUAL_RISK_MATRIX)
    for likelihood, cls in zip(["low", "medium", "high"], classes)
]


@pytest.mark.parametrize("impact,likelihood,manual_class", MATRIX_CASES)
def test_risk_matrix_is_the_manuals(impact, likelihood, manual_class):
    assert RISK_CLASS_NAMES[risk_level(impact, likelihood)] == manual_class


def test_matrix_covers_every_cell():
    assert len(MATRIX_CASES) == 9


@pytest.mark.parametrize("level,approver", [(row[0].lower(), row[1]) for row in _rows(MANUAL_APPROVAL_LEVELS)])
def test_approval_table_is_the_manuals(level, approver):
    assert APPROVAL_TABLE[RiskLevel(level)].label == approver


# Who may give the named approval (directly or from a more senior group), and who may vote as CAB.
APPROVER_MATRIX = {
    # group:                 low    medium  high   critical
    roles.OPERATIONS_TEAM:     (False, False, False, False),
    roles.ON_CALL_ENGINEER:    (False, False, False, False),
    roles.SENIOR_ENGINEER:     (False, False, False, False),
    roles.VIEWER:              (False, False, False, False),
    roles.CAB_MEMBER:          (False, False, False, False),
    roles.OPERATIONS_LEAD:     (True, False, False, False),
    roles.ENGINEERING_MANAGER: (True, True, False, False),
    roles.DIRECTOR:            (True, True, True, False),
    roles.VP_CTO:              (True, True, True, True),
}
LEVELS = ["low", "medium", "high", "critical"]
RESOLVED = {"low": roles.OPERATIONS_LEAD, "medium": roles.ENGINEERING_MANAGER, "high": roles.DIRECTOR,
            "critical": roles.VP_CTO}


def test_approver_resolution(people, flow):
    """Every group against every risk level: who may give the named approval, who votes as CAB."""
    from tests.conftest import make_user

    users = {group: make_user(f"member-{i}", group) for i, group in enumerate(APPROVER_MATRIX)}
    for level in LEVELS:
        change = flow.draft(**flow.risk(level))
        assert change.risk_level == level
        for group, user in users.items():
            capacities = approval_capacities(change, user)
            expected = APPROVER_MATRIX[group][LEVELS.index(level)]
            assert (RESOLVED[level] in capacities) is expected, (group, level, capacities)
            # The CAB votes only where the table says "+ CAB" / "+ Full CAB".
            cab = group == roles.CAB_MEMBER and level in ("high", "critical")
            assert (roles.CAB_MEMBER in capacities) is cab, (group, level, capacities)


def test_requester_never_approves_own_change(people, flow):
    from tests.conftest import make_user

    boss = make_user("boss", roles.OPERATIONS_TEAM, roles.VP_CTO, roles.CAB_MEMBER)
    from changes import services
    from tests.changes.conftest import form

    change = services.change_create(actor=boss, data=form(impact="high", likelihood="high"))
    assert approval_capacities(change, boss) == []
    # ... and the requester is not on the CAB roll of their own change, so "full CAB" stays reachable.
    assert "boss" not in approval_status(change).cab_members
