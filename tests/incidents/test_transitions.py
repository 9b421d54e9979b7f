"""Every allowed and forbidden transition of the incident workflow, with conditions and permissions."""
import pytest

from incidents import services as s
from incidents.choices import IncidentStatus
from incidents.models import Incident
from opsconsole.errors import ApplicationError

pytestmark = pytest.mark.django_db
ALL_CRITERIA = {"root_cause_addressed": True, "processing_resumed": True, "metrics_normal": True, "no_customer_impact": True}

# status -> {transition: target}; everything else is forbidden from that status.
ALLOWED = {
    IncidentStatus.OPEN: {"investigate": IncidentStatus.INVESTIGATING},
    IncidentStatus.INVESTIGATING: {"mitigate": IncidentStatus.MITIGATING, "resolve": IncidentStatus.RESOLVED},
    IncidentStatus.MITIGATING: {"resolve": IncidentStatus.RESOLVED},
    IncidentStatus.RESOLVED: {"close": IncidentStatus.CLOSED, "reopen": IncidentStatus.INVESTIGATING},
    IncidentStatus.CLOSED: {},
}
TRANSITIONS = ["investigate", "mitigate", "resolve", "close", "reopen"]


def perform(name: str, actor, incident: Incident) -> Incident:
    calls = {
        "investigate": lambda: s.incident_investigate(actor=actor, incident=incident),
        "mitigate": lambda: s.incident_mitigate(actor=actor, incident=incident, actions="failover"),
        "resolve": lambda: s.incident_resolve(actor=actor, incident=incident, resolution="fixed", **ALL_CRITERIA),
        "close": lambda: s.incident_close(actor=actor, incident=incident),
        "reopen": lambda: s.incident_reopen(actor=actor, incident=incident, reason="recurred"),
    }
    return calls[name]()


def incident_in(status: str, actor) -> Incident:
    """A P4 incident (no review or notification needed to close) driven to `status` through the services."""
    incident = s.incident_declare(actor=actor, severity="P4", summary=f"in {status}")
    path = {
        IncidentStatus.OPEN: [], IncidentStatus.INVESTIGATING: ["investigate"],
        IncidentStatus.MITIGATING: ["investigate", "mitigate"],
        IncidentStatus.RESOLVED: ["investigate", "resolve"], IncidentStatus.CLOSED: ["investigate", "resolve", "close"],
    }[status]
    for name in path:
        incident = perform(name, actor, incident)
    assert incident.status == status
    return incident


@pytest.mark.parametrize("status", list(ALLOWED))
@pytest.mark.parametrize("name", TRANSITIONS)
def test_transition_matrix(people, status, name):
    incident = incident_in(status, people.ops1)
    target = ALLOWED[status].get(name)
    if target is None:
        with pytest.raises(ApplicationError) as exc:
            perform(name, people.ops1, incident)
        assert exc.value.status_code == 409 and f"cannot {name}" in exc.value.message
        incident.refresh_from_db()
        assert incident.status == status
        assert incident.timeline.filter(kind="transition").count() == {
            IncidentStatus.OPEN: 0, IncidentStatus.INVESTIGATING: 1, IncidentStatus.MITIGATING: 2,
            IncidentStatus.RESOLVED: 2, IncidentStatus.CLOSED: 3}[status]  # nothing recorded for the refusal
    else:
        # Viewers and CAB members may not; an operator may.
        for outsider in (people.viewer1, people.cab):
            with pytest.raises(ApplicationError) as exc:
                perform(name, outsider, incident)
            assert exc.value.status_code == 403
        result = perform(name, people.ops2, incident)
        assert result.status == target
        entry = result.timeline.filter(kind="transition").last()
        assert (entry.details["from"], entry.details["to"], entry.actor) == (status, target, people.ops2)


@pytest.mark.parametrize("status", list(ALLOWED))
def test_reclassify_from_every_status(people, status):
    incident = incident_in(status, people.ops1)
    if status == IncidentStatus.CLOSED:
        with pytest.raises(ApplicationError) as exc:
            s.incident_reclassify(actor=people.ops1, incident=incident, severity="P3", reason="late insight")
        assert exc.value.status_code == 409 and "the incident is not closed" in exc.value.message
        return
    with pytest.raises(ApplicationError) as exc:
        s.incident_reclassify(actor=people.viewer1, incident=incident, severity="P3", reason="x")
    assert exc.value.status_code == 403
    result = s.incident_reclassify(actor=people.ops1, incident=incident, severity="P3", reason="late insight")
    assert result.severity == "P3" and result.status == status


def test_resolve_condition_and_close_condition(people):
    p2 = s.incident_declare(actor=people.ops1, severity="P2", summary="p2")
    p2 = s.incident_investigate(actor=people.ops1, incident=p2)
    for missing in ALL_CRITERIA:
        with pytest.raises(ApplicationError) as exc:
            s.incident_resolve(actor=people.ops1, incident=p2, resolution="x", **{**ALL_CRITERIA, missing: False})
        assert exc.value.status_code == 409 and exc.value.extra["unconfirmed"] == [missing]
    p2 = s.incident_resolve(actor=people.ops1, incident=p2, resolution="x", **ALL_CRITERIA)
    with pytest.raises(ApplicationError) as exc:
        s.incident_close(actor=people.ops1, incident=p2)
    assert "post-incident review published where required" in exc.value.message


def test_the_fsm_itself_guards_direct_calls(people):
    """Even bypassing the services, django-fsm refuses a transition from the wrong state or unmet conditions."""
    from django_fsm import TransitionNotAllowed, can_proceed

    incident = s.incident_declare(actor=people.ops1, severity="P3", summary="direct")
    with pytest.raises(TransitionNotAllowed):
        incident.resolve()
    assert not can_proceed(incident.close) and can_proceed(incident.investigate)
    incident.investigate()
    assert not can_proceed(incident.resolve)  # criteria not confirmed
