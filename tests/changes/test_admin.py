"""CAB approvals in the Django admin, through the Django test client: the approve/reject actions with a
comment, the per-change vote page, and the same voting rules as the API and the console."""
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from changes.models import CABApproval, ChangeRequest

CHANGELIST = "/admin/changes/changerequest/"


def staff(user) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_the_migration_lets_cab_and_approvers_read_changes_in_admin(people):
    for user in (people.cab1, people.director, people.vp, people.manager, people.lead):
        assert user.has_perm("changes.view_changerequest"), user
        assert not user.has_perm("changes.change_changerequest")
    assert not people.viewer.has_perm("changes.view_changerequest")


def test_cab_member_approves_selected_with_a_comment(people, flow):
    change = flow.in_cab(**flow.risk("high"))
    services_vote = CABApproval.objects.filter(change=change)
    cab = staff(people.cab1)
    listing = cab.get(CHANGELIST)
    assert listing.status_code == 200 and change.change_id in listing.content.decode()
    assert "Add change request" not in listing.content.decode()

    confirm = cab.post(CHANGELIST, {"action": "approve_selected", ACTION_CHECKBOX_NAME: [change.pk]})
    assert confirm.status_code == 200
    page = confirm.content.decode()
    assert "You are about to <strong>approve</strong>" in page and "your vote counts as CAB member" in page
    assert not services_vote.exists()

    done = cab.post(CHANGELIST, {"action": "approve_selected", ACTION_CHECKBOX_NAME: [change.pk], "apply": "1",
                                 "comment": "Capacity checked."}, follow=True)
    assert f"{change.change_id}: Approved; the change is now CAB review." in done.content.decode()
    vote = services_vote.get()
    assert (vote.voter_name, vote.capacities, vote.decision, vote.comment, vote.via) == (
        "cab1", ["CAB member"], "approve", "Capacity checked.", "admin")

    staff(people.cab2).post(CHANGELIST, {"action": "approve_selected", ACTION_CHECKBOX_NAME: [change.pk],
                                         "apply": "1", "comment": ""})
    director = staff(people.director)
    director.post(CHANGELIST, {"action": "approve_selected", ACTION_CHECKBOX_NAME: [change.pk], "apply": "1",
                               "comment": "Go"})
    change.refresh_from_db()
    assert change.status == "approved"
    assert change.timeline.filter(kind="approval").count() == 3


def test_too_junior_approver_is_refused_in_admin(people, flow):
    change = flow.in_cab(**flow.risk("high"))
    lead = staff(people.lead)
    answer = lead.post(CHANGELIST, {"action": "approve_selected", ACTION_CHECKBOX_NAME: [change.pk], "apply": "1",
                                    "comment": "I think it's fine"}, follow=True)
    assert "Your role cannot vote on it." in answer.content.decode()
    assert not CABApproval.objects.exists()
    assert ChangeRequest.objects.get(pk=change.pk).status == "cab_review"


def test_rejection_needs_a_comment_and_rejects_on_the_vote_page(people, flow):
    change = flow.in_cab()  # Medium: Engineering Manager
    manager = staff(people.manager)
    page = manager.get(f"{CHANGELIST}{change.pk}/change/").content.decode()
    assert f"/admin/changes/changerequest/{change.pk}/vote/" in page and f"/changes/{change.change_id}/" in page
    vote_page = manager.get(f"{CHANGELIST}{change.pk}/vote/").content.decode()
    assert "Your vote counts as: <strong>Engineering Manager</strong>" in vote_page
    answer = manager.post(f"{CHANGELIST}{change.pk}/vote/", {"_reject": "Reject", "comment": ""}, follow=True)
    assert "A rejection needs a comment." in answer.content.decode()
    manager.post(f"{CHANGELIST}{change.pk}/vote/", {"_reject": "Reject", "comment": "Clashes with freeze of Q4."})
    change.refresh_from_db()
    assert change.status == "rejected" and change.decision_reason == "Clashes with freeze of Q4."


def test_staff_without_a_reader_group_sees_nothing(people, flow):
    change = flow.in_cab()
    viewer = staff(people.viewer)
    assert viewer.get(CHANGELIST).status_code == 403
    assert viewer.get(f"{CHANGELIST}{change.pk}/vote/").status_code == 403


@pytest.mark.parametrize("path", ["add/", "1/delete/"])
def test_admin_cannot_create_or_delete_changes(people, flow, path):
    flow.draft()
    assert staff(people.director).get(CHANGELIST + path).status_code in (403, 302)
