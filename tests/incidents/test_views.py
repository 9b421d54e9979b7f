"""Console pages of incident response: list, declare, incident page and its actions, review, on-call,
notifications; Viewers read, operators act."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from incidents import services as s
from incidents.choices import IncidentStatus
from incidents.models import Incident, Notification, OnCallOverride
from opsconsole.models import AuditEntry

pytestmark = pytest.mark.django_db
ALL_CRITERIA = {"root_cause_addressed": True, "processing_resumed": True, "metrics_normal": True, "no_customer_impact": True}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def ops(people):
    return login(people.ops1)


@pytest.fixture
def viewer(people):
    return login(people.viewer1)


def declare(people, severity="P2", **kw):
    return s.incident_declare(actor=people.ops1, severity=severity, summary=kw.pop("summary", "Orders late"),
                              impact="Consumers stale", **kw)


def test_anonymous_goes_to_login(client, db):
    for path in ("/incidents/", "/incidents/declare/", "/incidents/on-call/", "/incidents/notifications/",
                 "/incidents/INC-20250101-0001/"):
        response = client.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"], path


def test_list_shows_active_first_with_overdue_badges_and_filters(people, viewer):
    old = s.incident_declare(actor=people.ops1, severity="P1", summary="Everything stopped", now=timezone.now() - timedelta(hours=1))
    low = declare(people, "P4", summary="Dashboard glitch")
    page = viewer.get("/incidents/")
    html = page.content.decode()
    assert page.status_code == 200 and "Declare an incident" not in html  # Viewers read only
    assert html.index(old.incident_id) < html.index(low.incident_id)
    assert "Initial response overdue" in html and "incident-overdue" in html
    filtered = viewer.get("/incidents/?overdue=true").content.decode()
    assert old.incident_id in filtered and low.incident_id not in filtered
    assert low.incident_id in viewer.get("/incidents/?severity=P4").content.decode()
    assert old.incident_id not in viewer.get("/incidents/?q=glitch").content.decode()


def test_declare_page_shows_definitions_and_declares(people, ops, viewer):
    page = ops.get("/incidents/declare/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Complete system failures or data integrity events" in html and "Documentation gaps or inaccuracies" in html
    assert viewer.get("/incidents/declare/").status_code == 403
    response = ops.post("/incidents/declare/", {"severity": "P2", "summary": "Beta backlog", "impact": "Latency up",
                                                "detection_source": "monitoring_alert", "components": ["module:beta"],
                                                "channel_links": "Bridge https://meet.example/b"})
    incident = Incident.objects.get(summary="Beta backlog")
    assert response.status_code == 302 and response["Location"] == f"/incidents/{incident.incident_id}/"
    assert incident.channel_links == [{"label": "Bridge", "url": "https://meet.example/b"}]
    assert list(incident.components.values_list("kind", "identifier")) == [("module", "beta")]
    bad = ops.post("/incidents/declare/", {"summary": "no severity", "detection_source": "operations"})
    assert bad.status_code == 200 and "This field is required" in bad.content.decode()


def test_detail_offers_only_allowed_transitions(people, ops, viewer):
    incident = declare(people)
    html = ops.get(f"/incidents/{incident.incident_id}/").content.decode()
    assert 'id="action-investigate"' in html and 'id="action-resolve"' not in html and 'id="action-close"' not in html
    assert "INCIDENT ALERT: P2 - High - Orders late" in html  # the initial template, rendered for editing
    assert "Senior Engineer" in html and "30 min escalation" in html  # the matrix row of P2
    viewer_html = viewer.get(f"/incidents/{incident.incident_id}/").content.decode()
    assert "action-investigate" not in viewer_html and "Read-only" in viewer_html
    assert viewer.post(f"/incidents/{incident.incident_id}/actions/investigate/", {}).status_code == 403
    assert ops.get("/incidents/INC-19990101-0001/").status_code == 404


def test_actions_through_the_console(people, ops):
    incident = declare(people, "P1")
    base = f"/incidents/{incident.incident_id}"
    assert ops.post(f"{base}/actions/investigate/", {"note": "on it"}).status_code == 302
    ops.post(f"{base}/actions/note/", {"text": "Found a poison batch"})
    ops.post(f"{base}/actions/escalate/", {"reason_kind": "expertise", "reason": "Need a DBA"})
    ops.post(f"{base}/actions/mitigate/", {"actions": "Paused the source"})
    response = ops.post(f"{base}/actions/resolve/", {"resolution": "Fixed", "root_cause_addressed": "on"}, follow=True)
    assert "resolution criteria are not all confirmed" in response.content.decode()
    ops.post(f"{base}/actions/resolve/", {"resolution": "Fixed", **{k: "on" for k in ALL_CRITERIA}})
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED and incident.escalation_level == 1
    html = ops.get(f"{base}/").content.decode()
    assert "Before closing: publish the post-incident review; send the resolution notification" in html
    assert "INCIDENT RESOLVED: " + incident.incident_id in html
    response = ops.post(f"{base}/communications/resolution/", {
        "resolution-kind": "resolution", "resolution-audiences": ["stakeholders", "executives"],
        "resolution-subject": f"INCIDENT RESOLVED: {incident.incident_id}", "resolution-body": "All good now (edited)"})
    assert response.status_code == 302
    assert incident.communications.get(kind="resolution").body == "All good now (edited)"
    messages = list(incident.timeline.values_list("message", flat=True))
    assert "Found a poison batch" in messages and any(m.startswith("Escalated to Engineering Manager") for m in messages)
    assert AuditEntry.objects.filter(target=incident.incident_id, action="incident.resolved", actor=people.ops1).exists()
    assert ops.post(f"{base}/actions/nonsense/", {}).status_code == 404


def test_review_page(people, ops, viewer):
    incident = declare(people, "P2")
    s.incident_investigate(actor=people.ops1, incident=incident)
    s.incident_resolve(actor=people.ops1, incident=incident, resolution="Fixed", **ALL_CRITERIA)
    url = f"/incidents/{incident.incident_id}/review/"
    html = viewer.get(url).content.decode()
    assert "Declared P2 - High" in html and "Publish" not in html
    assert viewer.post(url, {"op": "publish"}).status_code == 403
    ops.post(url, {"op": "save", "timeline_reconstruction": "10:00 it broke", "root_cause": "Bad deploy",
                   "went_well": "Quick rollback", "went_badly": "", "contributing_factors": "", "improvements": ""})
    ops.post(url, {"op": "add-item", "description": "Canary deploys", "owner": people.senior.pk, "deadline": "2020-01-31"})
    html = ops.get(url).content.decode()
    assert "Canary deploys" in html and "overdue" in html
    ops.post(url, {"op": "publish"})
    incident.review.refresh_from_db()
    assert incident.review.status == "published" and incident.review.root_cause == "Bad deploy"
    item = incident.review.action_items.get()
    ops.post(url, {"op": "complete-item", "item": item.pk})
    item.refresh_from_db()
    assert item.status == "done"


def test_oncall_page(people, ops, viewer):
    html = viewer.get("/incidents/on-call/").content.decode()
    assert "No rota is set up" in html and "rota-form" not in html
    now = timezone.localtime()
    ops.post("/incidents/on-call/", {"op": "rota", "name": "primary", "anchor": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
                                     "shift_days": 7, "members": "oncall1, oncall2"})
    assert "oncall1" in ops.get("/incidents/on-call/").content.decode()
    ops.post("/incidents/on-call/", {"op": "override", "user": people.senior.pk, "reason": "swap",
                                     "starts_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                                     "ends_at": (now + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M")})
    html = ops.get("/incidents/on-call/").content.decode()
    assert '<strong>senior</strong>' in html and "override: swap" in html
    assert viewer.post("/incidents/on-call/", {"op": "delete-override", "override": OnCallOverride.objects.get().pk}).status_code == 403
    ops.post("/incidents/on-call/", {"op": "delete-override", "override": OnCallOverride.objects.get().pk})
    assert not OnCallOverride.objects.exists()


def test_my_notifications(people, rota):
    incident = declare(people, "P1")
    oncall = login(people.oncall1)
    html = oncall.get("/incidents/notifications/").content.decode()
    assert incident.incident_id in html and "unread" in html
    oncall.post("/incidents/notifications/")
    assert not Notification.objects.filter(recipient=people.oncall1, channel="console", read_at__isnull=True).exists()
    assert incident.incident_id not in login(people.viewer1).get("/incidents/notifications/").content.decode()


def test_linked_emergency_changes_show_on_the_incident_and_its_review(people, ops):
    from changes.services import emergency_change_declare

    incident = declare(people, "P1", summary="All destinations down")
    change = emergency_change_declare(actor=people.ops1, title="Fail over to the standby warehouse",
                                      description="Point gamma at the standby", affected_systems=["gamma"],
                                      verbal_approver=people.manager, impact="medium", likelihood="low", incident=incident)
    assert change.change_id in ops.get(f"/incidents/{incident.incident_id}/").content.decode()
    incident = s.incident_investigate(actor=people.ops1, incident=incident)
    s.incident_resolve(actor=people.ops1, incident=incident, resolution="Failed over", **ALL_CRITERIA)
    review_html = ops.get(f"/incidents/{incident.incident_id}/review/").content.decode()
    assert change.change_id in review_html
    assert f"- {change.change_id} [Emergency" in incident.review.timeline_reconstruction
