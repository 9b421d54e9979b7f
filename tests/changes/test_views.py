"""Console pages of change management: list with filters, calendar with overlaps, detail with the actions
the user may take, the form, emergency declaration, weekly review; role checks."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from changes.choices import MANUAL_CHECKLIST_KEYS, TECHNICAL_REVIEW_POINTS
from changes.models import ChangeRequest
from tests.changes.conftest import window


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def consoles(people):
    return {name: login(getattr(people, name)) for name in
            ["requester", "senior", "manager", "viewer", "cab1", "oncall", "director"]}


def local(dt) -> str:
    return timezone.localtime(dt).strftime("%Y-%m-%dT%H:%M")


def test_nav_has_the_change_pages(consoles):
    page = consoles["viewer"].get("/changes/").content.decode()
    for url in ("/changes/", "/changes/calendar/", "/changes/weekly-review/"):
        assert f'href="{url}"' in page


def test_list_filters_and_flags(consoles, flow):
    start, end = window(hours_from_now=24)
    a = flow.submitted(scheduled_start=start, scheduled_end=end, title="Alpha batch size")
    b = flow.submitted(scheduled_start=start, scheduled_end=end, title="Alpha parser upgrade",
                       affected_systems=["module:alpha"])
    c = flow.draft(title="Gamma retry", affected_systems=["destination:local_archive"], **flow.risk("critical"))
    page = consoles["viewer"].get("/changes/").content.decode()
    assert a.change_id in page and b.change_id in page and c.change_id in page
    assert f"overlap {b.change_id}" in page and 'class="flagged"' in page
    assert "New change request" not in page  # a Viewer cannot raise changes
    link = lambda change: f'href="/changes/{change.change_id}/"'  # noqa: E731
    filtered = consoles["viewer"].get("/changes/?risk_level=critical").content.decode()
    assert link(c) in filtered and link(a) not in filtered
    filtered = consoles["viewer"].get("/changes/?status=submitted&system=module:alpha").content.decode()
    assert link(b) in filtered and link(a) not in filtered


def test_new_change_form_saves_a_draft_and_submits(consoles, people):
    start, end = window(hours_from_now=30)
    data = {
        "title": "Add orders_feed source", "change_type": "normal", "standard_kind": "", "priority": "high",
        "description": "New REST source.", "business_justification": "Orders analytics.",
        "technical_details": "alpha/sources/orders_feed.yaml", "affected_systems": "source:orders_feed\nalpha",
        "impact": "medium", "likelihood": "medium", "risk_assessment": "Isolated source.",
        "testing_performed": "Staging.", "implementation_plan": "Add YAML; reload.", "rollback_plan": "Remove; reload.",
        "scheduled_start": local(start), "scheduled_end": local(end), "then": "submit",
    }
    answer = consoles["requester"].post("/changes/new/", data)
    change = ChangeRequest.objects.get(title="Add orders_feed source")
    assert answer.status_code == 302 and answer["Location"] == f"/changes/{change.change_id}/"
    assert change.status == "submitted" and change.affected_systems == ["source:orders_feed", "module:alpha"]
    assert change.requester == people.requester
    assert abs(change.scheduled_start - start) < timedelta(minutes=1)


def test_form_shows_errors_in_place(consoles):
    answer = consoles["requester"].post("/changes/new/", {
        "title": "Bad", "change_type": "normal", "priority": "low", "impact": "low", "likelihood": "low",
        "affected_systems": "planet:mars", "then": "save"})
    assert answer.status_code == 200
    assert "unknown kind" in answer.content.decode()
    assert not ChangeRequest.objects.exists()


def test_viewer_cannot_open_the_form(consoles):
    assert consoles["viewer"].get("/changes/new/").status_code == 403
    assert consoles["viewer"].get("/changes/emergency/").status_code == 403
    assert consoles["requester"].get("/changes/new/").status_code == 200


def test_detail_shows_only_allowed_actions(consoles, flow):
    change = flow.submitted()
    url = f"/changes/{change.change_id}/"
    senior = consoles["senior"].get(url).content.decode()
    assert 'id="action-review-start"' in senior and 'id="action-approve"' not in senior
    requester = consoles["requester"].get(url).content.decode()
    assert 'id="action-review-start"' not in requester and 'id="action-cancel"' in requester
    viewer = consoles["viewer"].get(url).content.decode()
    assert "No actions for your role in this state." in viewer
    assert "Change submitted" not in viewer and "Draft → Submitted" in viewer  # the timeline


def test_workflow_through_the_console(consoles, flow, people):
    change = flow.in_review()
    base = f"/changes/{change.change_id}"
    answer = consoles["senior"].post(f"{base}/review-pass/", {
        "review-pass-points": [p.key for p in TECHNICAL_REVIEW_POINTS], "review-pass-notes": "ok"})
    assert answer.status_code == 302
    change.refresh_from_db()
    assert change.status == "cab_review"
    page = consoles["manager"].get(f"{base}/").content.decode()
    assert 'id="action-approve"' in page and "Waiting for: approval by Engineering Manager" in page
    # A CAB member may not vote on a Medium risk change: the error comes back as a message.
    answer = consoles["cab1"].post(f"{base}/approve/", {"approve-comment": "yes"}, follow=True)
    assert "cannot vote" in answer.content.decode()
    consoles["manager"].post(f"{base}/approve/", {"approve-comment": "Approved in CAB"})
    change.refresh_from_db()
    assert change.status == "approved"
    consoles["requester"].post(f"{base}/schedule/", {})
    answer = consoles["requester"].post(f"{base}/start/", follow=True)
    assert "pre-implementation checklist" in answer.content.decode()
    consoles["requester"].post(f"{base}/checklist/", {f"checklist-{k}": "on" for k in MANUAL_CHECKLIST_KEYS})
    consoles["requester"].post(f"{base}/start/")
    change.refresh_from_db()
    assert change.status == "in_progress"
    answer = consoles["requester"].post(f"{base}/roll-back/", {"roll-back-trigger": "error_rate",
                                                                "roll-back-details": "5xx up"}, follow=True)
    assert "Rolled back" in answer.content.decode()
    change.refresh_from_db()
    assert change.status == "rolled_back" and change.rollback_trigger == "error_rate"


def test_invalid_action_input_is_reported(consoles, flow):
    change = flow.in_progress()
    answer = consoles["requester"].post(f"/changes/{change.change_id}/roll-back/", {"roll-back-trigger": "x"},
                                        follow=True)
    assert "Rollback trigger" in answer.content.decode()
    assert consoles["requester"].post(f"/changes/{change.change_id}/explode/").status_code == 404
    assert consoles["requester"].get(f"/changes/{change.change_id}/start/").status_code == 405


def test_calendar_flags_overlaps(consoles, flow):
    start, end = window(hours_from_now=24)
    a = flow.submitted(scheduled_start=start, scheduled_end=end)
    b = flow.submitted(scheduled_start=start + timedelta(minutes=30), scheduled_end=end)
    page = consoles["viewer"].get("/changes/calendar/").content.decode()
    assert f'data-change="{a.change_id}"' in page and f"overlaps {b.change_id}" in page
    assert 'id="calendar-conflicts"' in page
    assert consoles["viewer"].get("/changes/calendar/?start=not-a-date").status_code == 200


def test_emergency_declaration_page(consoles, people):
    answer = consoles["oncall"].post("/changes/emergency/", {
        "title": "Kill runaway replay", "description": "Stop it.", "affected_systems": "gamma",
        "impact": "high", "likelihood": "high", "verbal_approver": people.manager.pk,
        "verbal_approval_notes": "phone", "expected_end": ""})
    change = ChangeRequest.objects.get(title="Kill runaway replay")
    assert answer.status_code == 302 and change.status == "in_progress"
    page = consoles["oncall"].get(f"/changes/{change.change_id}/").content.decode()
    assert "Complete formal request form" in page and "Verbal approval" in page
    # Only on-call managers are offered as verbal approvers.
    form = consoles["oncall"].get("/changes/emergency/").content.decode()
    assert f'<option value="{people.manager.pk}">manager</option>' in form
    assert f'<option value="{people.oncall.pk}"' not in form


def test_weekly_review_page(consoles, flow):
    flow.completed()
    flow.rolled_back()
    page = consoles["viewer"].get("/changes/weekly-review/").content.decode()
    assert 'id="success-rate">50%' in page and 'id="rolled-back">1<' in page
    assert "Error rate increases significantly (1)" in page


def test_anonymous_goes_to_login(client, db):
    assert client.get("/changes/")["Location"].startswith("/login/")


def test_emergency_page_links_the_incident(consoles, people):
    from incidents.services import incident_declare

    incident = incident_declare(actor=people.oncall, severity="P1", summary="Alpha ingestion stopped")
    consoles["oncall"].post("/changes/emergency/", {
        "title": "Restart Alpha with fixed parser", "description": "Parser fix.", "affected_systems": "alpha",
        "impact": "high", "likelihood": "low", "verbal_approver": people.director.pk,
        "incident": incident.incident_id})
    change = ChangeRequest.objects.get(title="Restart Alpha with fixed parser")
    assert change.incident == incident
    page = consoles["viewer"].get(f"/changes/{change.change_id}/").content.decode()
    assert f'href="/incidents/{incident.incident_id}/"' in page and "post-incident review" in page
