"""The change API: roles (who may create, submit, review, vote; Viewers read), the workflow end to end
over HTTP, filters, the calendar, the weekly review, emergency declaration, clear 4xx errors."""
from datetime import timedelta

import pytest
from django.utils import timezone

from changes.choices import MANUAL_CHECKLIST_KEYS, POST_IMPLEMENTATION_POINTS, TECHNICAL_REVIEW_POINTS, VALIDATION_POINTS
from tests.changes.conftest import window
from tests.conftest import client_for


def body(**overrides) -> dict:
    start, end = window()
    data = {
        "title": "New destination: partner SFTP",
        "change_type": "normal",
        "priority": "high",
        "description": "Add the partner SFTP destination.",
        "business_justification": "Contract starts next month.",
        "technical_details": "gamma/destinations/partner_sftp.yaml",
        "affected_systems": "destination:partner_sftp, route:ROUTE_TO_PARTNER",
        "impact": "medium", "likelihood": "high",  # High risk: Director + CAB
        "risk_assessment": "New route only; existing routes untouched.",
        "testing_performed": "Staging delivery of 10k records.",
        "implementation_plan": "Add YAML, reload, watch gamma_delivery_failures_total.",
        "rollback_plan": "Remove YAML, reload.",
        "scheduled_start": start.isoformat(), "scheduled_end": end.isoformat(),
    }
    data.update(overrides)
    return data


@pytest.fixture
def api(people):
    return {name: client_for(getattr(people, name)) for name in
            ["requester", "senior", "director", "manager", "lead", "viewer", "cab1", "cab2", "cab3", "oncall", "vp"]}


def post(client, path, data=None):
    return client.post(f"/api/changes/{path}", data or {}, format="json")


def test_full_workflow_over_http(api):
    created = post(api["requester"], "", body())
    assert created.status_code == 201, created.json()
    change = created.json()
    cid = change["change_id"]
    assert change["status"] == "draft" and change["risk_level"] == "high" and change["risk_class"] == "High Risk"
    assert change["affected_systems"] == ["destination:partner_sftp", "route:ROUTE_TO_PARTNER"]
    assert change["approval"]["required"] == "Director + CAB"
    assert "submit" in change["allowed_actions"] and "approve" not in change["allowed_actions"]

    assert post(api["requester"], f"{cid}/submit").json()["status"] == "submitted"
    assert post(api["senior"], f"{cid}/review-start").json()["status"] == "technical_review"
    passed = post(api["senior"], f"{cid}/review-pass", {"points": {p.key: True for p in TECHNICAL_REVIEW_POINTS},
                                                       "notes": "fine"})
    assert passed.json()["status"] == "cab_review"

    assert post(api["director"], f"{cid}/approve", {"comment": "Go"}).json()["status"] == "cab_review"
    assert post(api["cab1"], f"{cid}/approve").json()["status"] == "cab_review"
    approved = post(api["cab2"], f"{cid}/approve", {"comment": "ok"}).json()
    assert approved["status"] == "approved"
    assert [(v["voter"], v["capacities"]) for v in approved["votes"]] == [
        ("director", ["Director"]), ("cab1", ["CAB member"]), ("cab2", ["CAB member"])]

    assert post(api["requester"], f"{cid}/schedule").json()["status"] == "scheduled"
    refused = post(api["requester"], f"{cid}/start")
    assert refused.status_code == 409 and "checklist" in refused.json()["error"]
    ticked = post(api["requester"], f"{cid}/checklist", {"items": {k: True for k in MANUAL_CHECKLIST_KEYS}}).json()
    assert all(item["done"] for section in ticked["checklist"] for item in section["items"])
    assert post(api["requester"], f"{cid}/start").json()["status"] == "in_progress"
    assert post(api["requester"], f"{cid}/notes", {"text": "Checkpoint 1"}).status_code == 201
    assert post(api["requester"], f"{cid}/implementation-done", {"notes": "No deviations"}).json()["status"] == "validating"
    done = post(api["requester"], f"{cid}/complete", {"points": [p.key for p in VALIDATION_POINTS]}).json()
    assert done["status"] == "completed" and done["post_review_due_at"]
    closed = post(api["requester"], f"{cid}/review", {"points": [p.key for p in POST_IMPLEMENTATION_POINTS],
                                                      "lessons_learned": "Fine.", "results": "Delivering."}).json()
    assert closed["status"] == "closed"
    assert [e["to_state"] for e in closed["timeline"] if e["kind"] == "transition"][-1] == "closed"
    # The runbook-style body: JSON without a JSON content type.
    assert api["viewer"].get(f"/api/changes/{cid}/").status_code == 200


def test_viewer_reads_but_cannot_write(api, flow):
    change = flow.in_cab()
    assert api["viewer"].get("/api/changes").json()["count"] == 1
    assert api["viewer"].get(f"/api/changes/{change.change_id}").json()["allowed_actions"] == []
    assert post(api["viewer"], "", body()).status_code == 403
    answer = post(api["viewer"], f"{change.change_id}/approve")
    assert answer.status_code == 403 and "cannot vote" in answer.json()["error"]


@pytest.mark.parametrize("who,status", [("lead", 403), ("cab1", 403), ("requester", 403), ("manager", 200)])
def test_approval_roles_medium_risk(api, flow, who, status):
    change = flow.in_cab()  # Medium risk: Engineering Manager
    assert post(api[who], f"{change.change_id}/approve").status_code == status


def test_only_reviewers_review(api, flow):
    change = flow.submitted()
    assert post(api["requester"], f"{change.change_id}/review-start").status_code == 403
    assert post(api["oncall"], f"{change.change_id}/review-start").status_code == 403
    assert post(api["lead"], f"{change.change_id}/review-start").status_code == 200


def test_anonymous_and_roleless_are_refused(db, client, api):
    from rest_framework.test import APIClient

    from tests.conftest import make_user

    assert APIClient().get("/api/changes").status_code in (401, 403)
    assert client_for(make_user("nobody")).get("/api/changes").status_code == 403


def test_bad_input_is_a_clear_400(api, flow):
    assert post(api["requester"], "", body(impact="enormous")).status_code == 400
    answer = post(api["requester"], "", body(affected_systems=["planet:mars"]))
    assert answer.status_code == 400 and "unknown kind 'planet'" in answer.json()["error"]
    answer = api["requester"].post("/api/changes", "{not json", content_type="application/json")
    assert answer.status_code == 400
    change = flow.validating()
    answer = post(api["requester"], f"{change.change_id}/roll-back", {"trigger": "gremlins"})
    assert answer.status_code == 400 and "fields" in answer.json()
    assert api["requester"].get("/api/changes/CHG-2000-0101-999").status_code == 404


def test_patch_edits_a_draft_only(api, flow):
    change = flow.draft()
    answer = api["requester"].patch(f"/api/changes/{change.change_id}", {"title": "Renamed"}, format="json")
    assert answer.status_code == 200 and answer.json()["title"] == "Renamed"
    assert answer.json()["priority"] == "medium"  # untouched fields keep their values
    post(api["requester"], f"{change.change_id}/submit")
    answer = api["requester"].patch(f"/api/changes/{change.change_id}", {"title": "Again"}, format="json")
    assert answer.status_code == 409


def test_filters(api, flow):
    a = flow.draft(affected_systems=["source:orders_feed"])
    b = flow.submitted(**flow.risk("critical"))
    assert [c["change_id"] for c in api["viewer"].get("/api/changes?status=submitted").json()["results"]] == [b.change_id]
    assert [c["change_id"] for c in api["viewer"].get("/api/changes?system=orders_feed").json()["results"]] == [a.change_id]
    assert [c["change_id"] for c in api["viewer"].get("/api/changes?risk_level=critical").json()["results"]] == [b.change_id]
    assert api["viewer"].get("/api/changes?overdue=true").json()["count"] == 0


def test_calendar_and_weekly_review(api, flow):
    start, end = window(hours_from_now=48)
    a = flow.submitted(scheduled_start=start, scheduled_end=end)
    b = flow.submitted(scheduled_start=start + timedelta(minutes=30), scheduled_end=end)
    day = timezone.localtime(start).date()
    answer = api["viewer"].get(f"/api/changes/calendar?start={day.isoformat()}&days=1").json()
    assert answer["flagged"] == sorted([a.change_id, b.change_id])
    [entry_a, entry_b] = answer["days"][0]["changes"]
    assert entry_a["conflicts"] == [{"change_id": b.change_id, "shared": ["source:api_source_1"]}]
    assert api["viewer"].get("/api/changes/calendar?days=500").status_code == 400
    flow.completed()
    review = api["viewer"].get("/api/changes/weekly-review").json()
    assert review["implemented"] == 1 and review["success_rate"] == 1.0
    assert api["viewer"].get("/api/changes/weekly-review?week=yesterday").status_code == 400


def test_emergency_declaration_over_http(api, people):
    answer = post(api["oncall"], "emergency", {
        "title": "Hotfix DLQ replay loop", "description": "Stop the replay loop.", "affected_systems": ["module:gamma"],
        "impact": "high", "likelihood": "medium", "verbal_approver": "manager",
        "verbal_approval_notes": "Call at 03:12"})
    assert answer.status_code == 201, answer.json()
    change = answer.json()
    assert (change["status"], change["change_type"], change["verbal_approver"]) == ("in_progress", "emergency", "manager")
    assert "formalize" in change["allowed_actions"]
    answer = post(api["oncall"], "emergency", {
        "title": "x", "description": "y", "affected_systems": "gamma", "impact": "high", "likelihood": "high",
        "verbal_approver": "oncall"})
    assert answer.status_code == 400 and "on-call manager" in answer.json()["error"]


def test_standard_kinds_catalogue(api):
    kinds = api["viewer"].get("/api/changes/standard-kinds").json()
    assert [k["name"] for k in kinds] == sorted([
        "Configuration parameter updates within documented ranges", "Log level changes",
        "Alert threshold adjustments", "Adding new monitoring dashboards", "Documentation updates"])


def test_schema_lists_the_change_endpoints(api):
    import yaml

    schema = yaml.safe_load(api["viewer"].get("/api/schema/").content)
    assert "/api/changes/{change_id}/approve" in schema["paths"] or "/api/changes/{change_id}/approve/" in schema["paths"]
