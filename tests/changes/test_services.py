"""Change services: approvals and quorum per risk class, who may act, checklist gating, window overlaps,
the emergency path, overdue flags and the weekly change review."""
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from changes import services
from changes.approvals import approval_status
from changes.choices import MANUAL_CHECKLIST_KEYS, TECHNICAL_REVIEW_POINTS
from changes.models import ChangeRequest
from changes.selectors import change_calendar, change_conflicts, changes_due, weekly_change_review
from opsconsole.errors import ApplicationError
from opsconsole.models import AuditEntry
from tests.changes.conftest import form, window
from tests.conftest import make_user


def refused(call, status=403):
    with pytest.raises(ApplicationError) as caught:
        call()
    assert caught.value.status_code == status, caught.value.message
    return caught.value.message


# --- approvals ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("level,approver", [("low", "lead"), ("medium", "manager")])
def test_low_and_medium_need_one_approver(flow, people, level, approver):
    change = flow.in_cab(**flow.risk(level))
    change = services.change_vote(change=change, actor=getattr(people, approver), decision="approve", comment="Go.")
    assert change.status == "approved"
    [vote] = change.approvals.all()
    assert (vote.voter_name, vote.decision, vote.comment) == (approver, "approve", "Go.")
    assert vote.capacities == [{"low": "Operations Lead", "medium": "Engineering Manager"}[level]]
    assert vote.voter_groups == [{"lead": "Operations Lead", "manager": "Engineering Manager"}[approver]]
    assert vote.at is not None


def test_a_senior_manager_may_approve_a_lower_risk(flow, people):
    change = flow.in_cab(**flow.risk("low"))
    assert services.change_vote(change=change, actor=people.director, decision="approve").status == "approved"
    vote = change.approvals.get()
    assert (vote.capacities, vote.voter_groups) == (["Operations Lead"], ["Director"])


def test_high_needs_director_and_cab_majority(flow, people):
    change = flow.in_cab(**flow.risk("high"))
    change = services.change_vote(change=change, actor=people.director, decision="approve")
    assert change.status == "cab_review"
    change = services.change_vote(change=change, actor=people.cab1, decision="approve")
    assert change.status == "cab_review"
    assert approval_status(change).waiting_for == ["1 more CAB approval(s) (1 of 2 needed from 3 members)"]
    change = services.change_vote(change=change, actor=people.cab2, decision="approve")
    assert change.status == "approved"


def test_high_cab_majority_alone_is_not_enough(flow, people):
    change = flow.in_cab(**flow.risk("high"))
    for member in people.cab:
        change = services.change_vote(change=change, actor=member, decision="approve")
    assert change.status == "cab_review"
    assert approval_status(change).waiting_for == ["approval by Director (or more senior)"]


def test_high_is_rejected_once_a_majority_is_out_of_reach(flow, people):
    change = flow.in_cab(**flow.risk("high"))
    change = services.change_vote(change=change, actor=people.cab1, decision="reject", comment="Too risky.")
    assert change.status == "cab_review"
    change = services.change_vote(change=change, actor=people.cab2, decision="reject", comment="Agree.")
    assert change.status == "rejected"
    assert change.decision_reason == "Agree."


def test_critical_needs_vp_and_every_cab_member(flow, people):
    change = flow.in_cab(**flow.risk("critical"))
    change = services.change_vote(change=change, actor=people.vp, decision="approve")
    change = services.change_vote(change=change, actor=people.cab1, decision="approve")
    change = services.change_vote(change=change, actor=people.cab2, decision="approve")
    assert change.status == "cab_review"
    refused(lambda: services.change_vote(change=change, actor=people.director, decision="approve"))
    change = services.change_vote(change=change, actor=people.cab3, decision="approve")
    assert change.status == "approved"
    timeline = [e.message for e in change.timeline.filter(kind="transition")]
    assert timeline[-1] == "Approved (VP + Full CAB: vp; CAB cab1, cab2, cab3)"


def test_one_cab_rejection_refuses_a_critical_change(flow, people):
    change = flow.in_cab(**flow.risk("critical"))
    change = services.change_vote(change=change, actor=people.cab3, decision="reject", comment="Window clashes.")
    assert change.status == "rejected"


def test_the_named_approver_rejecting_refuses(flow, people):
    change = flow.in_cab(**flow.risk("medium"))
    change = services.change_vote(change=change, actor=people.manager, decision="reject", comment="Not now.")
    assert change.status == "rejected"
    assert AuditEntry.objects.filter(action="change.vote.reject", target=change.change_id, reason="Not now.").exists()


def test_without_cab_members_a_high_change_waits(flow, people):
    from django.contrib.auth.models import Group

    Group.objects.get(name="CAB member").user_set.clear()
    change = flow.in_cab(**flow.risk("high"))
    change = services.change_vote(change=change, actor=people.director, decision="approve")
    assert change.status == "cab_review"
    assert "nobody else is in the CAB member group" in approval_status(change).waiting_for[0]


@pytest.mark.parametrize("who,level", [
    ("viewer", "low"), ("requester", "low"), ("operator", "low"), ("senior", "low"), ("oncall", "low"),
    ("lead", "medium"), ("manager", "high"), ("director", "critical"), ("cab1", "low"), ("cab1", "medium"),
])
def test_too_junior_or_unrelated_voters_are_refused(flow, people, who, level):
    change = flow.in_cab(**flow.risk(level))
    message = refused(lambda: services.change_vote(change=change, actor=getattr(people, who), decision="approve"))
    assert "cannot vote" in message or "someone else must approve" in message
    assert not change.approvals.exists()
    assert ChangeRequest.objects.get(pk=change.pk).status == "cab_review"


def test_requester_in_an_approver_group_cannot_approve_own_change(people):
    boss = make_user("lead-requester", "Operations Lead")
    change = services.change_create(actor=boss, data=form(**{"impact": "low", "likelihood": "low"}))
    change = services.change_submit(change=change, actor=boss)
    change = services.change_review_start(change=change, actor=people.senior)
    change = services.change_review_pass(change=change, actor=people.senior,
                                         points=[p.key for p in TECHNICAL_REVIEW_POINTS])
    assert "someone else" in refused(lambda: services.change_vote(change=change, actor=boss, decision="approve"))


def test_one_vote_per_person_and_rejection_needs_a_comment(flow, people):
    change = flow.in_cab(**flow.risk("high"))
    services.change_vote(change=change, actor=people.cab1, decision="approve")
    refused(lambda: services.change_vote(change=change, actor=people.cab1, decision="approve"), 409)
    refused(lambda: services.change_vote(change=change, actor=people.cab2, decision="reject"), 400)
    refused(lambda: services.change_vote(change=change, actor=people.cab2, decision="maybe"), 400)


def test_director_who_is_also_on_the_cab_votes_in_both_capacities(flow, people):
    people.director.groups.add(*people.cab1.groups.all())
    people.director._opsconsole_groups = None
    change = flow.in_cab(**flow.risk("high"))  # CAB roll: cab1-3 + director = 4, majority 3
    change = services.change_vote(change=change, actor=people.director, decision="approve")
    assert change.approvals.get().capacities == ["Director", "CAB member"]
    change = services.change_vote(change=change, actor=people.cab1, decision="approve")
    assert change.status == "cab_review"
    change = services.change_vote(change=change, actor=people.cab2, decision="approve")
    assert change.status == "approved"


# --- who may act --------------------------------------------------------------------------------------------

def test_viewers_and_cab_members_cannot_raise_or_submit(flow, people):
    refused(lambda: services.change_create(actor=people.viewer, data=form()))
    refused(lambda: services.change_create(actor=people.cab1, data=form()))
    change = flow.draft()
    refused(lambda: services.change_submit(change=change, actor=people.viewer))


def test_technical_review_needs_a_senior_engineer_who_is_not_the_requester(flow, people):
    change = flow.submitted()
    refused(lambda: services.change_review_start(change=change, actor=people.operator))
    refused(lambda: services.change_review_start(change=change, actor=people.cab1))
    senior_requester = make_user("senior-req", "Senior Engineer")
    own = services.change_submit(change=services.change_create(actor=senior_requester, data=form()),
                                 actor=senior_requester)
    refused(lambda: services.change_review_start(change=own, actor=senior_requester))
    assert services.change_review_start(change=change, actor=people.lead).technical_reviewer == people.lead


def test_technical_review_needs_all_five_points(flow, people):
    change = flow.in_review()
    message = refused(lambda: services.change_review_pass(
        change=change, actor=people.senior, points=[p.key for p in TECHNICAL_REVIEW_POINTS[:4]]), 409)
    assert "five technical review points" in message
    refused(lambda: services.change_review_pass(change=change, actor=people.senior, points=["vibes"]), 400)


def test_only_requester_or_lead_may_cancel(flow, people):
    change = flow.submitted()
    refused(lambda: services.change_cancel(change=change, actor=people.operator, reason="mine now"))
    refused(lambda: services.change_cancel(change=change, actor=people.requester, reason=""), 400)
    assert services.change_cancel(change=change, actor=people.lead, reason="Duplicate.").status == "cancelled"


def test_submit_names_what_is_missing(flow, people):
    change = flow.draft(rollback_plan="", scheduled_end=None)
    message = refused(lambda: services.change_submit(change=change, actor=people.requester), 409)
    assert "Complete the change request form first" in message


def test_submit_refuses_a_window_that_has_ended(flow, people):
    start, end = window(hours_from_now=-5)
    change = flow.draft(scheduled_start=start, scheduled_end=end)
    assert "must not have ended" in refused(lambda: services.change_submit(change=change, actor=people.requester), 409)


def test_bad_form_input_is_a_400(people):
    refused(lambda: services.change_create(actor=people.requester, data=form(impact="huge")), 400)
    refused(lambda: services.change_create(actor=people.requester, data=form(affected_systems=["planet:mars"])), 400)
    refused(lambda: services.change_create(actor=people.requester, data=form(title="")), 400)
    start, _ = window()
    refused(lambda: services.change_create(actor=people.requester, data=form(scheduled_end=start)), 400)
    refused(lambda: services.change_create(actor=people.requester, data=form(colour="blue")), 400)


# --- checklist gating -----------------------------------------------------------------------------------------

def test_start_needs_the_whole_pre_implementation_checklist(flow, people):
    change = flow.scheduled()
    message = refused(lambda: services.change_start(change=change, actor=people.requester), 409)
    assert "pre-implementation checklist" in message
    change = services.change_checklist_set(change=change, actor=people.requester,
                                           items={k: True for k in MANUAL_CHECKLIST_KEYS[:-1]})
    refused(lambda: services.change_start(change=change, actor=people.requester), 409)
    change = services.change_checklist_set(change=change, actor=people.requester, items={MANUAL_CHECKLIST_KEYS[-1]: True})
    change = services.change_start(change=change, actor=people.requester)
    assert change.status == "in_progress"
    assert change.checklist[MANUAL_CHECKLIST_KEYS[0]]["by"] == "requester"
    refused(lambda: services.change_checklist_set(change=change, actor=people.requester,
                                                  items={MANUAL_CHECKLIST_KEYS[0]: False}), 409)


def test_change_approved_item_is_the_workflows(flow, people):
    change = flow.in_cab()
    assert not change.checklist_done("change_request_approved")
    refused(lambda: services.change_checklist_set(change=change, actor=people.requester,
                                                  items={"change_request_approved": True}), 400)
    assert flow.approve(change).checklist_done("change_request_approved")


def test_checklist_ticks_and_unticks_are_on_the_timeline(flow, people):
    change = flow.approved()
    key = MANUAL_CHECKLIST_KEYS[0]
    services.change_checklist_set(change=change, actor=people.requester, items={key: True})
    services.change_checklist_set(change=change, actor=people.operator, items={key: False})
    messages = list(change.timeline.filter(kind="checklist").values_list("message", "actor_name"))
    assert messages == [("Ticked: Implementation plan reviewed and approved", "requester"),
                        ("Unticked: Implementation plan reviewed and approved", "operator2")]
    refused(lambda: services.change_checklist_set(change=change, actor=people.viewer, items={key: True}))
    refused(lambda: services.change_checklist_set(change=change, actor=people.requester, items={"coffee": True}), 400)


def test_start_only_within_the_window(flow, people):
    change = flow.tick_all(flow.scheduled(scheduled_start=timezone.now() + timedelta(hours=3),
                                          scheduled_end=timezone.now() + timedelta(hours=4)))
    assert "within its scheduled window" in refused(lambda: services.change_start(change=change, actor=people.requester),
                                                    409)


def test_completion_needs_validation_and_rollback_needs_a_trigger(flow, people):
    change = flow.validating()
    refused(lambda: services.change_complete(change=change, actor=people.requester, points=["success_criteria_met"]), 409)
    refused(lambda: services.change_roll_back(change=change, actor=people.requester, trigger="bad luck"), 400)
    change = services.change_roll_back(change=change, actor=people.requester, trigger="window_exceeded",
                                       details="Migration too slow.")
    assert (change.status, change.rollback_trigger, change.rollback_details) == (
        "rolled_back", "window_exceeded", "Migration too slow.")
    assert change.timeline.last().message == "Rolled back (trigger: Change cannot be completed in window): Migration too slow."


def test_post_implementation_review_due_within_24h(flow, people):
    change = flow.completed()
    assert change.post_review_due_at == change.finished_at + timedelta(hours=24)
    assert not change.post_review_overdue()
    assert change.post_review_overdue(now=change.finished_at + timedelta(hours=25))
    assert changes_due(now=change.finished_at + timedelta(hours=25))["post_review"] == [change]
    message = refused(lambda: services.change_close(change=change, actor=people.requester, points=[],
                                                    lessons_learned="", results=""), 409)
    assert "post-implementation review" in message
    change = flow.review(change)
    assert change.status == "closed" and change.reviewed_by == people.requester
    assert not changes_due(now=change.finished_at + timedelta(hours=25))["post_review"]


# --- overlapping windows ----------------------------------------------------------------------------------------

def test_overlapping_windows_on_a_shared_system_are_flagged_on_both(flow, people):
    start, end = window(hours_from_now=24, length_hours=2)
    first = flow.submitted(scheduled_start=start, scheduled_end=end, affected_systems=["source:api_source_1"])
    second = flow.submitted(scheduled_start=start + timedelta(hours=1), scheduled_end=end + timedelta(hours=1),
                            affected_systems="module:alpha, destination:local_archive")
    [conflict] = change_conflicts(second)
    assert conflict.other_id == first.change_id
    assert conflict.shared == ["source:api_source_1 (in module:alpha)"]
    for change, other in ((first, second), (second, first)):
        event = change.timeline.get(kind="conflict")
        assert event.details["other"] == other.change_id
    # The submit went through: overlaps are flagged, not blocked.
    assert second.status == "submitted"


@pytest.mark.parametrize("second_systems,shift_hours,overlaps", [
    (["source:api_source_1"], 2, False),      # back to back: the second starts when the first ends
    (["source:orders_feed"], 1, False),       # same time, other system
    (["module:beta"], 1, False),              # another module
    (["alpha"], 1, True),                     # the module the source is in
    (["source:api_source_1"], -1.5, True),    # starts before, ends inside
])
def test_overlap_rules(flow, second_systems, shift_hours, overlaps):
    start, end = window(hours_from_now=24, length_hours=2)
    flow.submitted(scheduled_start=start, scheduled_end=end, affected_systems=["source:api_source_1"])
    second = flow.draft(scheduled_start=start + timedelta(hours=shift_hours),
                        scheduled_end=end + timedelta(hours=shift_hours), affected_systems=second_systems)
    assert bool(change_conflicts(second)) is overlaps


def test_cancelled_and_rejected_changes_do_not_conflict(flow, people):
    start, end = window(hours_from_now=24)
    cancelled = flow.submitted(scheduled_start=start, scheduled_end=end)
    services.change_cancel(change=cancelled, actor=people.requester, reason="no")
    flow.rejected(scheduled_start=start, scheduled_end=end)
    assert change_conflicts(flow.draft(scheduled_start=start, scheduled_end=end)) == []


def test_calendar_lists_windows_by_day_and_flags_overlaps(flow):
    day = timezone.localdate() + timedelta(days=3)
    start = timezone.make_aware(datetime.combine(day, time.min)) + timedelta(hours=22)
    a = flow.submitted(scheduled_start=start, scheduled_end=start + timedelta(hours=4))  # crosses midnight
    b = flow.submitted(scheduled_start=start + timedelta(hours=1), scheduled_end=start + timedelta(hours=2))
    c = flow.submitted(scheduled_start=start + timedelta(days=2), scheduled_end=start + timedelta(days=2, hours=1))
    calendar = change_calendar(start=day, days=7)
    by_day = {d.day: [e["change"].change_id for e in d.entries] for d in calendar["days"]}
    assert by_day[day] == [a.change_id, b.change_id]
    assert by_day[day + timedelta(days=1)] == [a.change_id]
    assert by_day[day + timedelta(days=2)] == [c.change_id]
    assert calendar["flagged"] == sorted([a.change_id, b.change_id])


# --- emergency changes -------------------------------------------------------------------------------------------

def test_emergency_change_declared_with_verbal_approval(flow, people):
    change = flow.emergency()
    assert change.status == "in_progress" and change.change_type == "emergency"
    assert change.verbal_approver == people.manager and change.verbal_approved_at
    assert change.formal_request_due_at == change.declared_at + timedelta(hours=24)
    assert [e.kind for e in change.timeline.all()] == ["emergency", "transition"]
    assert AuditEntry.objects.filter(action="change.emergency.declare", target=change.change_id).exists()


@pytest.mark.parametrize("approver,status", [("oncall", 400), ("lead", 400), ("cab1", 400)])
def test_verbal_approval_must_come_from_an_on_call_manager(flow, people, approver, status):
    refused(lambda: flow.emergency(verbal_approver=getattr(people, approver)), status)


def test_declarer_cannot_approve_their_own_emergency(flow, people):
    refused(lambda: flow.emergency(actor=people.manager, verbal_approver=people.manager), 400)
    refused(lambda: flow.emergency(actor=people.viewer), 403)


def test_emergency_formal_request_due_in_24h_and_needed_to_close(flow, people):
    change = flow.emergency()
    change = services.change_implementation_done(change=change, actor=people.oncall)
    change = services.change_complete(change=change, actor=people.oncall,
                                      points=["validation_procedures_executed", "success_criteria_met",
                                              "monitoring_checked", "no_regression"])
    ChangeRequest.objects.filter(pk=change.pk).update(declared_at=timezone.now() - timedelta(hours=25))
    change.refresh_from_db()
    assert change.formal_request_overdue()
    assert changes_due()["formal_request"] == [change]
    message = refused(lambda: flow.review(change), 409)
    assert "formal change request" in message
    assert "missing" in refused(lambda: services.change_formalize(change=change, actor=people.oncall), 409)
    full = form()
    del full["change_type"]
    change = services.change_formalize(change=change, actor=people.oncall, data=full)
    assert change.formal_request_at and not change.formal_request_overdue()
    assert "overdue" in change.timeline.filter(kind="emergency").last().message
    assert not change.is_editable
    assert flow.review(change).status == "closed"


def test_emergency_records_who_was_on_call(flow, people):
    from incidents.oncall import oncall_rota_set

    oncall_rota_set(actor=None, name="primary", anchor=timezone.now() - timedelta(days=1), members=[people.oncall])
    assert flow.emergency(actor=people.operator).on_call_engineer == "oncall"


def test_emergency_may_roll_back(flow, people):
    change = services.change_roll_back(change=flow.emergency(), actor=people.oncall, trigger="unexpected_behavior")
    assert change.status == "rolled_back"


# --- weekly change review ------------------------------------------------------------------------------------------

def test_weekly_change_review(flow, people):
    done = flow.closed()
    flow.completed(**flow.risk("low"))
    rolled = flow.rolled_back()
    flow.emergency()  # in progress: not finished this week
    from changes.selectors import week_start_of

    review = weekly_change_review(week_start=week_start_of(timezone.localdate()))
    assert (review["implemented"], review["completed"], review["rolled_back"]) == (3, 2, 1)
    assert review["success_rate"] == pytest.approx(2 / 3)
    assert review["rollback_rate"] == pytest.approx(1 / 3)
    assert {r["key"]: r["count"] for r in review["finished_by_type"]} == {"standard": 0, "normal": 3, "emergency": 0}
    assert {r["key"]: r["count"] for r in review["finished_by_risk"]} == {"low": 1, "medium": 2, "high": 0, "critical": 0}
    assert review["raised"] == 4
    assert review["rollback_triggers"] == [("Error rate increases significantly", 1)]
    assert done in review["finished"] and rolled in review["finished"]
    last_week = weekly_change_review(week_start=week_start_of(timezone.localdate()) - timedelta(days=7))
    assert last_week["implemented"] == 0 and last_week["success_rate"] is None


def test_notes_go_on_the_timeline(flow, people):
    change = flow.in_progress()
    services.change_note_add(change=change, actor=people.requester, text="Checkpoint 1 passed.")
    assert change.timeline.last().message == "Checkpoint 1 passed."
    refused(lambda: services.change_note_add(change=change, actor=people.viewer, text="hi"))


def test_emergency_change_linked_to_the_incident_it_remediates(flow, people):
    from changes.selectors import incident_changes
    from incidents.services import incident_declare

    incident = incident_declare(actor=people.oncall, severity="P2", summary="Gamma deliveries failing")
    change = flow.emergency(incident=incident.incident_id)
    assert change.incident == incident
    assert list(incident_changes(incident)) == [change]
    note = incident.timeline.filter(details__change=change.change_id).get()
    assert note.message == f"Emergency change {change.change_id} linked: {change.title}"
    assert "no incident" in refused(lambda: flow.emergency(incident="INC-20000101-0001"), 400)
