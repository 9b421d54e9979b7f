"""Incident API: roles (anonymous 401, Viewer reads but 403 on actions), declare and work an incident,
filters, communications, review, on-call."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services as s
from incidents.models import Incident, Notification
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db
ALL_CRITERIA = {"root_cause_addressed": True, "processing_resumed": True, "metrics_normal": True, "no_customer_impact": True}
ACTIONS = ["investigate", "mitigate", "resolve", "reopen", "close", "reclassify", "escalate", "impact-expanded",
           "data-loss", "edit", "notes", "responders", "components", "communications", "review", "review/publish",
           "review/action-items"]


@pytest.fixture
def ops(people):
    return client_for(people.ops1)


@pytest.fixture
def viewer(people):
    return client_for(people.viewer1)


@pytest.fixture
def incident(people):
    return s.incident_declare(actor=people.ops1, severity="P2", summary="Orders late", impact="Stale dashboards")


def test_anonymous_is_refused_everywhere(incident):
    anonymous = APIClient()
    for path in ("/api/incidents/", f"/api/incidents/{incident.incident_id}", "/api/incident-action-items/",
                 "/api/incident-notifications/", "/api/oncall/now", "/api/oncall/overrides"):
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.post("/api/incidents/", {"severity": "P1", "summary": "x"}, format="json").status_code == 401
    for name in ACTIONS:
        assert anonymous.post(f"/api/incidents/{incident.incident_id}/{name}", {}, format="json").status_code == 401, name


def test_viewer_reads_but_may_not_act(incident, viewer, people):
    assert viewer.get("/api/incidents/").json()["results"][0]["incident_id"] == incident.incident_id
    detail = viewer.get(f"/api/incidents/{incident.incident_id}/").json()
    assert detail["severity_definition"]["name"] == "High" and detail["escalation_matrix"][1]["role"] == "Senior Engineer"
    assert viewer.get(f"/api/incidents/{incident.incident_id}/timeline").status_code == 200
    assert viewer.post("/api/incidents/", {"severity": "P1", "summary": "x"}, format="json").status_code == 403
    for name in ACTIONS:
        response = viewer.post(f"/api/incidents/{incident.incident_id}/{name}", {}, format="json")
        assert response.status_code == 403, name
        assert response.json()["error"]
    cab = client_for(people.cab)
    assert cab.get("/api/incidents/").status_code == 200
    assert cab.post(f"/api/incidents/{incident.incident_id}/investigate", {}, format="json").status_code == 403
    nobody = client_for(make_user("norole"))
    assert nobody.get("/api/incidents/").status_code == 403


def test_declare_and_work_an_incident_through_the_api(ops, people, rota):
    response = ops.post("/api/incidents/", {
        "severity": "P1", "summary": "No records flowing", "impact": "All consumers stale",
        "components": [{"kind": "module", "identifier": "beta"}],
        "channel_links": [{"label": "Bridge", "url": "https://meet.example/p1"}]}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    incident_id = body["incident_id"]
    assert body["status"] == "open" and body["severity"] == "P1" and body["components"][0]["identifier"] == "beta"
    assert {r["user"] for r in body["responders"]} == {"ops1", "oncall1"}
    base = f"/api/incidents/{incident_id}"
    # The manual sends JSON without a JSON content type: accepted.
    response = ops.post(f"{base}/investigate", data='{"note": "looking"}', content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json()["status"] == "investigating"
    assert ops.post(f"{base}/investigate", {}, format="json").json() == {
        "error": f"{incident_id} is Investigating: cannot investigate it."}
    assert ops.post(f"{base}/notes", {"text": "poison batch"}, format="json").status_code == 201
    assert ops.post(f"{base}/edit", {"eta": "11:00", "next_steps": "drain"}, format="json").json()["eta"] == "11:00"
    escalated = ops.post(f"{base}/escalate", {"reason_kind": "executive_decision", "reason": "Need approval"}, format="json")
    assert escalated.status_code == 200 and escalated.json()["escalation_level"] == 1
    assert ops.post(f"{base}/escalate", {"reason_kind": "nope", "reason": "x"}, format="json").status_code == 400
    assert ops.post(f"{base}/mitigate", {"actions": "failover"}, format="json").json()["status"] == "mitigating"
    refused = ops.post(f"{base}/resolve", {"resolution": "fixed", "root_cause_addressed": True}, format="json")
    assert refused.status_code == 409
    assert refused.json()["unconfirmed"] == ["processing_resumed", "metrics_normal", "no_customer_impact"]
    resolved = ops.post(f"{base}/resolve", {"resolution": "fixed", **ALL_CRITERIA}, format="json")
    assert resolved.status_code == 200 and resolved.json()["review"]["required"] is True
    templates = ops.get(f"{base}/communications").json()["templates"]
    assert templates["resolution"]["subject"] == f"INCIDENT RESOLVED: {incident_id}"
    sent = ops.post(f"{base}/communications", {"kind": "resolution", "audiences": ["stakeholders"]}, format="json")
    assert sent.status_code == 201 and sent.json()["edited"] is False
    assert ops.post(f"{base}/close", {}, format="json").status_code == 409  # review not published yet
    review = ops.post(f"{base}/review", {"root_cause": "bad deploy", "went_well": "rollback"}, format="json")
    assert review.status_code == 200 and review.json()["status"] == "draft"
    item = ops.post(f"{base}/review/action-items", {"description": "canary", "owner": "senior",
                                                     "deadline": "2020-02-01"}, format="json")
    assert item.status_code == 201 and item.json()["overdue"] is True
    assert [i["description"] for i in ops.get("/api/incident-action-items/?overdue=true").json()["results"]] == ["canary"]
    assert ops.post(f"/api/incident-action-items/{item.json()['id']}/complete", {}, format="json").json()["status"] == "done"
    assert ops.post(f"{base}/review/publish", {}, format="json").json()["status"] == "published"
    closed = ops.post(f"{base}/close", {"note": "done"}, format="json")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    kinds = [e["kind"] for e in ops.get(f"{base}/timeline").json()]
    assert kinds[0] == "declared" and "communication" in kinds and kinds.count("transition") == 4


def test_validation_errors_are_4xx(ops, incident):
    assert ops.post("/api/incidents/", {"severity": "P9", "summary": "x"}, format="json").status_code == 400
    assert ops.post("/api/incidents/", data="{not json", content_type="application/json").status_code == 400
    response = ops.post("/api/incidents/", {"severity": "P3", "summary": "x", "components": [
        {"kind": "source", "identifier": "missing"}]}, format="json")
    assert response.status_code == 400 and "No source 'missing'" in response.json()["error"]
    assert ops.get("/api/incidents/INC-19990101-0001").status_code == 404
    assert ops.post(f"/api/incidents/{incident.incident_id}/reclassify", {"severity": "P2", "reason": "same"},
                    format="json").status_code == 409


def test_filters(ops, people):
    p1 = s.incident_declare(actor=people.ops1, severity="P1", summary="Old one", now=timezone.now() - timedelta(hours=2))
    p4 = s.incident_declare(actor=people.ops1, severity="P4", summary="Cosmetic")

    def ids(query):
        return [i["incident_id"] for i in ops.get(f"/api/incidents/?{query}").json()["results"]]
    assert ids("") == [p1.incident_id, p4.incident_id]
    assert ids("overdue=true") == [p1.incident_id]
    assert ids("severity=P4") == [p4.incident_id]
    assert ids("q=cosm") == [p4.incident_id]
    assert ids("active=false") == []
    assert ops.get("/api/incidents/?overdue=true").json()["results"][0]["overdue"][0] == "response"


def test_notifications_and_oncall_endpoints(people, rota, incident):
    oncall = client_for(people.oncall1)
    mine = oncall.get("/api/incident-notifications/?channel=console").json()["results"]
    assert [n["recipient"] for n in mine] == ["oncall1"]
    assert oncall.post(f"/api/incident-notifications/{mine[0]['id']}/read", {}, format="json").json()["read_at"]
    viewer = client_for(people.viewer1)
    assert viewer.get("/api/incident-notifications/").json()["results"] == []
    assert viewer.post(f"/api/incident-notifications/{mine[0]['id']}/read", {}, format="json").status_code == 403
    now = client_for(people.viewer1).get("/api/oncall/now").json()
    assert now["rota"] == "primary" and now["now"]["user"] in ("oncall1", "oncall2")
    ops = client_for(people.ops1)
    start = timezone.now() - timedelta(minutes=1)
    created = ops.post("/api/oncall/overrides", {"user": "senior", "starts_at": start.isoformat(),
                                                  "ends_at": (start + timedelta(hours=1)).isoformat(), "reason": "swap"},
                       format="json")
    assert created.status_code == 201, created.json()
    current = viewer.get("/api/oncall/now").json()["now"]
    assert current["user"] == "senior" and current["override"] is True
    assert viewer.delete(f"/api/oncall/overrides/{created.json()['id']}").status_code == 403
    assert ops.delete(f"/api/oncall/overrides/{created.json()['id']}").status_code == 204
    assert Notification.objects.filter(incident=incident).exists() and Incident.objects.count() == 1
