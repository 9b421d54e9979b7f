"""Incident services: declaring, response clocks, working the ticket, communications, resolution, review."""
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail
from django.db.models import Exists, OuterRef
from django.utils import timezone

from incidents import services as s
from incidents.choices import EscalationTrigger, IncidentStatus, TimelineKind, TimerKind
from incidents.communications import communication_render
from incidents.models import (
    ActionItem,
    AffectedComponent,
    EscalationTimer,
    Incident,
    Notification,
    PostIncidentReview,
)
from incidents.notifications import notifications_send_due
from incidents.selectors import (
    incident_due_items,
    incident_list,
    overdue_action_items_q,
    overdue_q,
)
from opsconsole.errors import ApplicationError
from opsconsole.models import AuditEntry
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE

from .conftest import MONDAY_10

pytestmark = pytest.mark.django_db
ALL_CRITERIA = {"root_cause_addressed": True, "processing_resumed": True, "metrics_normal": True, "no_customer_impact": True}


def declare(actor, severity="P2", now=MONDAY_10, **kw):
    return s.incident_declare(actor=actor, severity=severity, summary=kw.pop("summary", f"{severity} trouble"),
                              impact=kw.pop("impact", "Orders are late"), now=now, **kw)


def test_declare_p1_starts_clocks_engages_on_call_and_arms_timers(people, rota):
    incident = declare(people.ops1, "P1")
    assert incident.incident_id == "INC-20250106-0001"
    assert declare(people.ops1, "P4").incident_id == "INC-20250106-0002"
    assert incident.status == IncidentStatus.OPEN and incident.severity == "P1"
    assert incident.response_due_at == MONDAY_10 + timedelta(minutes=5)
    assert incident.notification_audience == "executives"
    assert incident.notification_due_at == MONDAY_10 + timedelta(minutes=30)
    assert incident.update_due_at == MONDAY_10 + timedelta(minutes=15)
    assert incident.mitigation_due_at == MONDAY_10 + timedelta(hours=2)
    assert incident.resolution_due_at is None
    # Initial responder of P1: the on-call engineer of the rota (one named person), plus the declarer.
    assert {(r.user.username, r.role) for r in incident.responders.all()} == {("ops1", "Declarer"), ("oncall1", "On-call Engineer")}
    [esc] = incident.escalations.all()
    assert (esc.level, esc.role, esc.trigger, esc.users) == (0, "On-call Engineer", "declared", ["oncall1"])
    timers = {(t.kind, t.level): t.due_at - MONDAY_10 for t in incident.timers.all()}
    assert timers == {
        (TimerKind.ESCALATION, 1): timedelta(minutes=30), (TimerKind.ESCALATION, 2): timedelta(hours=1),
        (TimerKind.ESCALATION, 3): timedelta(hours=4), (TimerKind.RESPONSE, 0): timedelta(minutes=5),
        (TimerKind.MITIGATION, 0): timedelta(hours=2),
    }
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds[:1] == [TimelineKind.DECLARED] and TimelineKind.ESCALATION in kinds and TimelineKind.NOTIFICATION in kinds
    assert "Complete system failures" in incident.timeline.get(kind=TimelineKind.DECLARED).details["definition"]
    assert AuditEntry.objects.filter(action="incident.declare", target=incident.incident_id, actor=people.ops1).exists()
    # oncall1 got an in-console and an email notification; the declarer is not notified of their own act.
    assert set(Notification.objects.filter(incident=incident).values_list("recipient__username", "channel")) == {
        ("oncall1", "console"), ("oncall1", "email")}


def test_p3_after_hours_uses_business_clock_and_engages_on_call(people, rota):
    friday_evening = datetime(2025, 1, 10, 20, 0, tzinfo=UTC)
    incident = declare(people.ops1, "P3", now=friday_evening)
    assert incident.incident_id == "INC-20250110-0001"
    assert incident.response_due_at == datetime(2025, 1, 13, 10, 0, tzinfo=UTC)  # 1 business hour from Monday 09:00
    assert incident.notification_due_at == friday_evening + timedelta(hours=4)
    assert incident.update_due_at == friday_evening + timedelta(hours=2)
    [esc] = incident.escalations.all()
    assert esc.role == "Operations Team + On-call Engineer"
    assert set(esc.users) == {"ops1", "ops2", "oncall1"}
    l1 = incident.timers.get(kind=TimerKind.ESCALATION, level=1)
    assert l1.due_at == datetime(2025, 1, 13, 9, 30, tzinfo=UTC)  # 30 business minutes


def test_p4_requirements(people):
    incident = declare(people.ops1, "P4")
    assert incident.response_due_at == MONDAY_10 + timedelta(hours=4)
    assert incident.notification_due_at is None and incident.update_due_at is None
    assert incident.resolution_due_at == MONDAY_10 + timedelta(days=7)
    assert [(t.kind, t.level) for t in incident.timers.order_by("level")] == [("response", 0), ("escalation", 1)]
    assert incident.escalations.get().users == ["ops1", "ops2"]  # Operations Team


def test_without_rota_the_on_call_group_is_engaged(people):
    incident = declare(people.ops1, "P2")
    assert set(incident.escalations.get().users) == {"oncall1", "oncall2"}


def test_declare_validation(people, apply_config):
    with pytest.raises(ApplicationError, match="Severity"):
        declare(people.ops1, "P5")
    with pytest.raises(ApplicationError, match="Summary"):
        declare(people.ops1, summary="  ")
    with pytest.raises(ApplicationError) as exc:
        declare(people.viewer1)
    assert exc.value.status_code == 403
    with pytest.raises(ApplicationError, match="No source 'nope'"):
        declare(people.ops1, components=[("source", "nope")])
    with pytest.raises(ApplicationError, match="http"):
        declare(people.ops1, channel_links=[{"label": "x", "url": "javascript:alert(1)"}])
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    incident = declare(people.ops1, components=[("module", "gamma"), ("destination", "local_archive"),
                                               ("source", "api_source_1"), ("rule", "ROUTE_TO_ARCHIVE")],
                       channel_links=[{"label": "Slack", "url": "https://chat.example/inc"}])
    assert set(incident.components.values_list("kind", "identifier")) == {
        ("module", "gamma"), ("destination", "local_archive"), ("source", "api_source_1"), ("rule", "ROUTE_TO_ARCHIVE")}
    assert Incident.objects.count() == 1  # refused declarations left nothing behind


def test_working_the_ticket(people, apply_config):
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    incident = declare(people.ops1)
    s.incident_note_add(actor=people.ops2, incident=incident, text="Checked the source adapter logs")
    s.incident_update(actor=people.ops1, incident=incident, eta="within the hour", next_steps="Restart the adapter",
                      channel_links=["https://chat.example/inc-1"])
    s.incident_components_add(actor=people.ops1, incident=incident, components=[{"kind": "source", "identifier": "api_source_1"}])
    s.incident_component_remove(actor=people.ops1, incident=incident, kind="source", identifier="api_source_1")
    s.incident_responder_add(actor=people.ops1, incident=incident, user=people.senior, role="Database expert")
    with pytest.raises(ApplicationError, match="already a responder"):
        s.incident_responder_add(actor=people.ops1, incident=incident, user=people.senior)
    with pytest.raises(ApplicationError, match="Not editable"):
        s.incident_update(actor=people.ops1, incident=incident, status="closed")
    incident.refresh_from_db()
    assert incident.eta == "within the hour" and incident.channel_links == [{"label": "", "url": "https://chat.example/inc-1"}]
    messages = list(incident.timeline.values_list("kind", "message"))
    assert (TimelineKind.NOTE, "Checked the source adapter logs") in messages
    assert (TimelineKind.UPDATE, "Updated eta, next steps, channel links") in messages
    assert (TimelineKind.RESPONDER, "senior joined as Database expert") in messages
    assert not AffectedComponent.objects.filter(incident=incident).exists()
    assert set(AuditEntry.objects.filter(target=incident.incident_id).values_list("action", flat=True)) >= {
        "incident.declare", "incident.note", "incident.update", "incident.components_add",
        "incident.component_remove", "incident.responder_add", "incident.escalate"}


def test_protected_status_and_severity_cannot_be_assigned(people):
    incident = declare(people.ops1)
    with pytest.raises(AttributeError):
        incident.status = IncidentStatus.CLOSED
    with pytest.raises(AttributeError):
        incident.severity = "P1"


def test_communication_templates_render_from_the_live_incident(people):
    incident = declare(people.ops1, "P1", summary="No records flowing", impact="All consumers stale",
                       current_actions="Restarting Beta workers", channel_links=[{"label": "Bridge", "url": "https://meet.example/x"}])
    initial = communication_render(incident=incident, kind="initial", now=MONDAY_10)
    assert initial["body"].splitlines() == [
        "INCIDENT ALERT: P1 - Critical - No records flowing", "",
        "Impact: All consumers stale", "Status: Open", "Actions: Restarting Beta workers", "ETA: Unknown",
        f"Updates: Bridge: https://meet.example/x; http://console.test/incidents/{incident.incident_id}/",
    ]
    s.incident_investigate(actor=people.oncall1, incident=incident, now=MONDAY_10 + timedelta(minutes=2))
    s.incident_note_add(actor=people.oncall1, incident=incident, text="Beta queue blocked by a poison batch",
                        now=MONDAY_10 + timedelta(minutes=3))
    incident = s.incident_update(actor=people.oncall1, incident=incident, next_steps="Drain the queue", eta="10:45")
    update = communication_render(incident=incident, kind="update", now=MONDAY_10 + timedelta(minutes=4))
    lines = update["body"].splitlines()
    assert lines[0] == f"INCIDENT UPDATE: {incident.incident_id} - P1 - Critical"
    assert lines[2] == "Current Status: Investigating: Restarting Beta workers"
    assert "Beta queue blocked by a poison batch" in update["body"] and "Status Open → Investigating" in update["body"]
    assert "Next Steps: Drain the queue" in lines and "ETA: 10:45" in lines


def test_sending_communications_meets_deadlines_and_records_everything(people, rota):
    incident = declare(people.ops1, "P1")
    sent_at = MONDAY_10 + timedelta(minutes=20)
    comm = s.communication_send(actor=people.oncall1, incident=incident, kind="initial",
                                audiences=["executives", "stakeholders", "responders"],
                                body="INCIDENT ALERT: P1 - Critical - edited by hand", now=sent_at)
    incident.refresh_from_db()
    assert comm.edited and comm.rendered_body.startswith("INCIDENT ALERT: P1 - Critical - P1 trouble")
    assert incident.executives_notified_at == sent_at and incident.stakeholders_notified_at == sent_at
    assert incident.last_update_at == sent_at and incident.update_due_at == sent_at + timedelta(minutes=15)
    entry = incident.timeline.filter(kind=TimelineKind.COMMUNICATION).get()
    assert entry.message == "Initial notification sent to executives, stakeholders, responders (edited from the template)"
    assert entry.details["body"] == "INCIDENT ALERT: P1 - Critical - edited by hand"
    due = {i.key: i.state for i in incident_due_items(incident, now=sent_at)}
    assert due["notification"] == "met" and due["response"] == "overdue"
    notifications_send_due(now=sent_at)
    recipients = sorted(m.to[0] for m in mail.outbox if m.subject.startswith("INCIDENT ALERT"))
    # director and vp (executives), the stakeholder list, and the responders ops1 and oncall1 (the sender, too:
    # a communication goes to everyone addressed).
    assert recipients == ["director@example.com", "oncall1@example.com", "ops1@example.com", "stakeholders@example.com",
                          "vp@example.com"]
    assert all(m.body == "INCIDENT ALERT: P1 - Critical - edited by hand" for m in mail.outbox if m.subject.startswith("INCIDENT ALERT"))
    with pytest.raises(ApplicationError, match="resolved"):
        s.communication_send(actor=people.ops1, incident=incident, kind="resolution", audiences=["stakeholders"])
    with pytest.raises(ApplicationError, match="Audiences"):
        s.communication_send(actor=people.ops1, incident=incident, kind="update", audiences=["everyone"])


def test_resolve_needs_every_criterion_then_review_and_resolution_notice_before_close(people, rota):
    incident = declare(people.ops1, "P1")
    s.incident_investigate(actor=people.oncall1, incident=incident, now=MONDAY_10 + timedelta(minutes=3))
    s.incident_mitigate(actor=people.oncall1, incident=incident, actions="Failed over to the standby", now=MONDAY_10 + timedelta(minutes=20))
    with pytest.raises(ApplicationError) as exc:
        s.incident_resolve(actor=people.oncall1, incident=incident, resolution="Fixed", root_cause_addressed=True,
                           processing_resumed=True, metrics_normal=True)
    assert exc.value.status_code == 409 and exc.value.extra["unconfirmed"] == ["no_customer_impact"]
    assert "no ongoing customer impact" in exc.value.message
    with pytest.raises(ApplicationError, match="Resolution is required"):
        s.incident_resolve(actor=people.oncall1, incident=incident, resolution=" ", **ALL_CRITERIA)
    resolved_at = datetime(2025, 1, 8, 15, 0, tzinfo=UTC)  # a Wednesday
    incident = s.incident_resolve(actor=people.oncall1, incident=incident, resolution="Replaced the failed disk",
                                  root_cause="Disk failure", now=resolved_at, **ALL_CRITERIA)
    assert incident.status == IncidentStatus.RESOLVED and incident.resolved_at == resolved_at
    assert not EscalationTimer.objects.filter(incident=incident, fired_at__isnull=True, cancelled_at__isnull=True).exists()
    entry = incident.timeline.filter(kind=TimelineKind.TRANSITION).last()
    assert entry.details["criteria"] == ALL_CRITERIA and entry.details["pipeline_status"] in ("HEALTHY", "DEGRADED", "UNHEALTHY")
    review = PostIncidentReview.objects.get(incident=incident)
    assert review.required and review.due_at == datetime(2025, 1, 15, 17, 0, tzinfo=UTC)  # 5 business days
    assert "Declared P1 - Critical" in review.timeline_reconstruction and "Failed over" in review.timeline_reconstruction

    with pytest.raises(ApplicationError) as exc:
        s.incident_close(actor=people.ops1, incident=incident)
    assert exc.value.status_code == 409 and "post-incident review published" in exc.value.message
    resolution = communication_render(incident=incident, kind="resolution")
    assert resolution["body"].splitlines()[:4] == [
        f"INCIDENT RESOLVED: {incident.incident_id}", "", "Resolution: Replaced the failed disk",
        "Duration: 2 d 5 h"]
    s.communication_send(actor=people.ops1, incident=incident, kind="resolution", audiences=["stakeholders", "executives"])
    s.review_update(actor=people.ops1, review=review, root_cause="Disk failure", went_well="Fast failover",
                    went_badly="Alert came late")
    s.review_publish(actor=people.ops1, review=review)
    incident = s.incident_close(actor=people.ops1, incident=incident, note="Follow-up tracked in the review")
    assert incident.status == IncidentStatus.CLOSED and incident.closed_at


def test_reclassify_switches_requirements_and_matrix(people, rota):
    incident = declare(people.ops1, "P3")
    with pytest.raises(ApplicationError, match="Reason"):
        s.incident_reclassify(actor=people.ops1, incident=incident, severity="P1", reason="")
    with pytest.raises(ApplicationError, match="already P3"):
        s.incident_reclassify(actor=people.ops1, incident=incident, severity="P3", reason="same")
    incident = s.incident_reclassify(actor=people.ops1, incident=incident, severity="P1", reason="All destinations down",
                                     now=MONDAY_10 + timedelta(minutes=10))
    assert incident.severity == "P1" and incident.response_due_at == MONDAY_10 + timedelta(minutes=5)
    entry = incident.timeline.get(kind=TimelineKind.RECLASSIFIED)
    assert entry.message == "Reclassified P3 → P1 - Critical: All destinations down"
    assert AuditEntry.objects.filter(action="incident.reclassify", reason="All destinations down").exists()
    p3_pending = EscalationTimer.objects.filter(incident=incident, severity="P3")
    assert all(t.cancelled_at and t.outcome == "severity changed" for t in p3_pending)
    assert set(EscalationTimer.objects.filter(incident=incident, severity="P1", cancelled_at__isnull=True)
               .values_list("kind", "level")) == {("escalation", 1), ("escalation", 2), ("escalation", 3), ("response", 0),
                                                   ("mitigation", 0)}
    p1_initial = incident.escalations.get(severity="P1", level=0)
    assert p1_initial.trigger == EscalationTrigger.RECLASSIFIED and p1_initial.users == ["oncall1"]


def test_reopen_rearms_the_matrix(people):
    incident = declare(people.ops1, "P2")
    s.incident_investigate(actor=people.ops1, incident=incident)
    s.incident_resolve(actor=people.ops1, incident=incident, resolution="Restarted", **ALL_CRITERIA)
    incident = s.incident_reopen(actor=people.ops1, incident=incident, reason="Errors are back")
    assert incident.status == IncidentStatus.INVESTIGATING and incident.resolved_at is None
    assert not incident.resolution_criteria_confirmed()
    assert set(EscalationTimer.objects.filter(incident=incident, fired_at__isnull=True, cancelled_at__isnull=True)
               .values_list("kind", "level")) == {("escalation", 1), ("escalation", 2), ("escalation", 3)}


def test_list_orders_active_first_by_severity_and_flags_overdue(people):
    p4 = declare(people.ops1, "P4")
    p1 = declare(people.ops1, "P1")
    p2 = declare(people.ops1, "P2")
    s.incident_investigate(actor=people.ops1, incident=p2)
    s.incident_resolve(actor=people.ops1, incident=p2, resolution="ok", **ALL_CRITERIA)
    assert [i.incident_id for i in incident_list()] == [p1.incident_id, p4.incident_id, p2.incident_id]
    at = MONDAY_10 + timedelta(minutes=4)
    assert not Incident.objects.filter(overdue_q(at)).exists()
    # Past 5 minutes P1's initial response is overdue; P2 was acknowledged, P4 has four business hours.
    overdue = set(Incident.objects.filter(overdue_q(MONDAY_10 + timedelta(minutes=6))).values_list("incident_id", flat=True))
    assert overdue == {p1.incident_id}
    assert [i.key for i in incident_due_items(p1, now=MONDAY_10 + timedelta(minutes=6)) if i.overdue] == ["response"]


def test_optional_and_refused_reviews_and_action_items(people):
    p3 = declare(people.ops1, "P3")
    with pytest.raises(ApplicationError, match="follows resolution"):
        s.review_start(actor=people.ops1, incident=p3)
    s.incident_investigate(actor=people.ops1, incident=p3)
    s.incident_resolve(actor=people.ops1, incident=p3, resolution="ok", **ALL_CRITERIA)
    assert not PostIncidentReview.objects.filter(incident=p3).exists()  # optional: not created by itself
    review = s.review_start(actor=people.ops1, incident=p3)
    assert not review.required and review.due_at is None
    with pytest.raises(ApplicationError, match="Cannot publish"):
        s.review_publish(actor=people.ops1, review=review)
    # The stakeholder notification was never sent, so the P3 is overdue anyway; look at the action item part.
    items_overdue = Exists(ActionItem.objects.filter(overdue_action_items_q(timezone.now()), review__incident=OuterRef("pk")))
    assert not Incident.objects.filter(items_overdue, pk=p3.pk).exists()
    item = s.action_item_add(actor=people.ops1, review=review, description="Alert on adapter errors", owner=people.senior,
                             deadline=date(2025, 1, 1))
    assert Incident.objects.filter(items_overdue, pk=p3.pk).exists() and Incident.objects.filter(overdue_q(), pk=p3.pk).exists()
    s.action_item_complete(actor=people.senior, item=item)
    assert not Incident.objects.filter(items_overdue, pk=p3.pk).exists()
    with pytest.raises(ApplicationError, match="already done"):
        s.action_item_complete(actor=people.senior, item=item)
    p4 = declare(people.ops1, "P4")
    s.incident_investigate(actor=people.ops1, incident=p4)
    s.incident_resolve(actor=people.ops1, incident=p4, resolution="ok", **ALL_CRITERIA)
    with pytest.raises(ApplicationError, match="not required for P4"):
        s.review_start(actor=people.ops1, incident=p4)
    s.incident_close(actor=people.ops1, incident=p4)  # no review, no notification requirement for P4


def test_open_from_signal_is_idempotent_per_key(people):
    first, created = s.incident_open_from_signal(key="gamma.destination.x", severity="P3", summary="x failing",
                                                 components=[("module", "gamma"), ("destination", "not-configured")])
    assert created and first.detection_source == "pipeline_signal" and first.declared_by is None
    assert list(first.components.values_list("kind", "identifier")) == [("module", "gamma")]
    again, created = s.incident_open_from_signal(key="gamma.destination.x", severity="P3", summary="x failing")
    assert not created and again.pk == first.pk
    worse, created = s.incident_open_from_signal(key="gamma.destination.x", severity="P2", summary="x and y failing")
    assert not created and worse.pk == first.pk
    assert worse.escalations.filter(trigger=EscalationTrigger.IMPACT_EXPANDED, level=1).count() == 1
    s.incident_open_from_signal(key="gamma.destination.x", severity="P2", summary="x and y failing")
    assert worse.escalations.filter(trigger=EscalationTrigger.IMPACT_EXPANDED).count() == 1  # once per step
    assert AuditEntry.objects.filter(action="incident.declare", actor_name="pipeline").count() == 1
