"""Escalation: the matrix by the clock from durable timers, automatic triggers, manual escalation; each
level exactly once across re-runs, a simulated restart and concurrent runs."""
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection

from incidents import services as s
from incidents.choices import TimerKind
from incidents.escalation import escalation_timers_fire_due
from incidents.models import Escalation, EscalationTimer, Incident
from incidents.tasks import incidents_escalate_due
from opsconsole.errors import ApplicationError

from .conftest import MONDAY_10

T0 = MONDAY_10


def matrix(incident) -> list[tuple]:
    return list(Escalation.objects.filter(incident=incident).order_by("at", "id")
                .values_list("severity", "level", "role", "trigger"))


@pytest.mark.django_db
def test_matrix_levels_fire_on_time_once_each(people, rota):
    incident = s.incident_declare(actor=people.ops1, severity="P2", summary="p2", now=T0)
    s.incident_investigate(actor=people.oncall1, incident=incident, now=T0 + timedelta(minutes=5))
    assert escalation_timers_fire_due(now=T0 + timedelta(minutes=29)) == 0  # the response timer was met (cancelled)
    assert EscalationTimer.objects.get(incident=incident, kind=TimerKind.RESPONSE).outcome == "response met"
    assert matrix(incident) == [("P2", 0, "On-call Engineer", "declared")]
    assert escalation_timers_fire_due(now=T0 + timedelta(minutes=30)) == 1
    assert matrix(incident)[-1] == ("P2", 1, "Senior Engineer", "time")
    assert escalation_timers_fire_due(now=T0 + timedelta(minutes=31)) == 0  # run again: nothing repeats
    # "Restart" after a long outage: everything due since is fired, in order, once.
    assert escalation_timers_fire_due(now=T0 + timedelta(hours=5)) == 3
    assert [(lvl, role, trig) for _, lvl, role, trig in matrix(incident)] == [
        (0, "On-call Engineer", "declared"), (1, "Senior Engineer", "time"), (2, "Engineering Manager", "time"),
        (3, "Director", "mitigation_time_exceeded"),  # P2 not stabilized in 4 h: the trigger engaged level 3 ...
    ]
    l3 = EscalationTimer.objects.get(incident=incident, kind=TimerKind.ESCALATION, level=3)
    assert l3.fired_at and l3.outcome == "level already engaged"  # ... so the 4 h timer did not repeat it
    assert escalation_timers_fire_due(now=T0 + timedelta(hours=9)) == 0
    incident.refresh_from_db()
    assert incident.escalation_level == 3
    people_engaged = set(incident.responders.values_list("user__username", flat=True))
    assert {"oncall1", "senior", "manager", "director"} <= people_engaged


@pytest.mark.django_db
def test_response_time_exceeded_escalates_ahead_of_the_matrix(people, rota):
    incident = s.incident_declare(actor=people.ops1, severity="P1", summary="p1", now=T0)
    assert escalation_timers_fire_due(now=T0 + timedelta(minutes=6)) == 1
    assert matrix(incident)[-1] == ("P1", 1, "Engineering Manager", "response_time_exceeded")
    trigger = incident.timeline.filter(kind="trigger").get()
    assert "initial response overdue" in trigger.message.lower() or "response time exceeded" in trigger.message.lower()
    escalation_timers_fire_due(now=T0 + timedelta(minutes=30))
    assert Escalation.objects.filter(incident=incident, level=1).count() == 1
    assert EscalationTimer.objects.get(incident=incident, kind="escalation", level=1).outcome == "level already engaged"


@pytest.mark.django_db
def test_resolution_stops_the_clock(people):
    incident = s.incident_declare(actor=people.ops1, severity="P2", summary="p2", now=T0)
    incident = s.incident_investigate(actor=people.ops1, incident=incident, now=T0 + timedelta(minutes=1))
    s.incident_resolve(actor=people.ops1, incident=incident, resolution="quick fix", root_cause_addressed=True,
                       processing_resumed=True, metrics_normal=True, no_customer_impact=True, now=T0 + timedelta(minutes=10))
    assert escalation_timers_fire_due(now=T0 + timedelta(hours=8)) == 0
    assert matrix(incident) == [("P2", 0, "On-call Engineer", "declared")]


@pytest.mark.django_db
def test_business_hours_matrix_for_p3(people):
    friday = datetime(2025, 1, 10, 16, 50, tzinfo=UTC)
    incident = s.incident_declare(actor=people.ops1, severity="P3", summary="p3", now=friday)
    s.incident_investigate(actor=people.ops1, incident=incident, now=friday + timedelta(minutes=1))
    assert escalation_timers_fire_due(now=datetime(2025, 1, 13, 9, 19, tzinfo=UTC)) == 0
    assert escalation_timers_fire_due(now=datetime(2025, 1, 13, 9, 20, tzinfo=UTC)) == 1  # 10 min Fri + 20 min Mon
    assert matrix(incident)[-1][1:3] == (1, "On-call Engineer")


@pytest.mark.django_db
def test_manual_escalation_and_triggers(people, rota):
    incident = s.incident_declare(actor=people.ops1, severity="P4", summary="p4", now=T0)
    with pytest.raises(ApplicationError, match="Reason"):
        s.incident_escalate(actor=people.ops1, incident=incident, reason_kind="expertise", reason=" ")
    with pytest.raises(ApplicationError) as exc:
        s.incident_escalate(actor=people.viewer1, incident=incident, reason_kind="expertise", reason="x")
    assert exc.value.status_code == 403
    esc = s.incident_escalate(actor=people.ops1, incident=incident, reason_kind="resources", reason="ops1 is alone")
    assert (esc.level, esc.role, esc.trigger) == (1, "Operations Lead", "manual")
    assert esc.reason == "Resource constraints (responders overwhelmed or unavailable): ops1 is alone"
    # P4 has no 1 h / 4 h cells ("-"): the matrix is exhausted, the top role is engaged again.
    again = s.incident_escalate(actor=people.ops1, incident=incident, reason_kind="expertise", reason="still stuck")
    assert again.level is None and again.role == "Operations Lead" and "exhausted" in again.reason
    beyond = s.incident_escalate(actor=people.ops1, incident=incident, reason_kind="cross_team", reason="need DBAs",
                                 role="Senior Engineer")
    assert (beyond.level, beyond.users) == (None, ["senior"])
    with pytest.raises(ApplicationError, match="not a responder group"):
        s.incident_escalate(actor=people.ops1, incident=incident, reason_kind="expertise", reason="x", role="Viewer")
    # Automatic triggers on a P1.
    p1 = s.incident_declare(actor=people.ops1, severity="P1", summary="p1", now=T0)
    s.incident_impact_expand(actor=people.ops1, incident=p1, impact="Now all consumers", now=T0 + timedelta(minutes=2))
    s.incident_data_loss_confirm(actor=people.ops1, incident=p1, details="batch 42 lost", now=T0 + timedelta(minutes=3))
    with pytest.raises(ApplicationError, match="already confirmed"):
        s.incident_data_loss_confirm(actor=people.ops1, incident=p1, details="again")
    assert [(lvl, role, trig) for _, lvl, role, trig in matrix(p1)] == [
        (0, "On-call Engineer", "declared"), (1, "Engineering Manager", "impact_expanded"),
        (2, "Director", "data_loss_confirmed")]
    p1.refresh_from_db()
    assert p1.impact == "Now all consumers" and p1.data_loss_confirmed_at == T0 + timedelta(minutes=3)
    # The clock's levels 1 and 2 then find themselves engaged already; level 3 fires at 4 h.
    escalation_timers_fire_due(now=T0 + timedelta(hours=4))
    assert Counter(lvl for _, lvl, _, _ in matrix(p1)) == Counter({0: 1, 1: 1, 2: 1, 3: 1, None: 1})


@pytest.mark.django_db
def test_beat_task_is_scheduled_routed_and_callable(people, rota):
    from celery.app.routes import MapRoute

    schedule = django_settings.CELERY_BEAT_SCHEDULE["ops.incidents_escalate_due"]
    assert schedule["task"] == "ops.incidents_escalate_due" and schedule["options"]["expires"]
    assert MapRoute(django_settings.CELERY_TASK_ROUTES)("ops.incidents_escalate_due")["queue"] == "ops"
    assert MapRoute(django_settings.CELERY_TASK_ROUTES)("ops.incidents_send_notification")["queue"] == "ops"
    s.incident_declare(actor=people.ops1, severity="P1", summary="old", now=datetime(2024, 1, 1, 10, 0, tzinfo=UTC))
    result = incidents_escalate_due()
    assert result["timers_fired"] == 5  # response and mitigation triggers, L1-L3 (the triggers took L1 and L3 early)
    assert incidents_escalate_due()["timers_fired"] == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_fire_each_escalation_exactly_once(people, rota):
    incidents = [s.incident_declare(actor=people.ops1, severity=sev, summary=f"c{i}", now=T0)
                 for i, sev in enumerate(["P1", "P2", "P3", "P4", "P1", "P2"])]
    due = T0 + timedelta(hours=30)  # every timer of every incident is due (P3/P4 in business hours, too)
    pending = EscalationTimer.objects.filter(fired_at__isnull=True, cancelled_at__isnull=True).count()
    barrier = threading.Barrier(3)
    fired, errors = [], []

    def run():
        try:
            barrier.wait()
            fired.append(escalation_timers_fire_due(now=due))
        except Exception as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(fired) == pending  # every timer fired by exactly one of the runs
    assert not EscalationTimer.objects.filter(fired_at__isnull=True, cancelled_at__isnull=True).exists()
    for incident in incidents:
        levels = Counter(Escalation.objects.filter(incident=incident, level__isnull=False).values_list("level", flat=True))
        assert set(levels.values()) == {1}, (incident.severity, levels)
        assert sorted(levels) == [lvl for lvl, role in enumerate(
            {"P1": 4, "P2": 4, "P3": 4, "P4": 2}[incident.severity] * [1])]
    assert escalation_timers_fire_due(now=due) == 0
    assert Incident.objects.count() == 6
