"""Django admin for the Change Advisory Board: read change requests, their votes and timeline, and
approve or reject with a comment. Votes go through changes.services.change_vote, the same service
the API and the console call, so who may vote (and what a vote decides) is the same everywhere.
Nothing else is edited here: the workflow moves only through the services."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from opsconsole.errors import ApplicationError

from . import services
from .approvals import approval_status
from .choices import ChangeState, Vote
from .models import CABApproval, ChangeEvent, ChangeRequest, StandardChangeKind
from .permissions import approval_capacities


class VoteForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 70}), required=False,
                              help_text="Recorded with your vote; required to reject.")


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CABApprovalInline(_ReadOnlyInline):
    model = CABApproval
    fields = readonly_fields = ["round", "voter_name", "voter_groups", "capacities", "decision", "comment", "at", "via"]
    verbose_name_plural = "Votes"


class ChangeEventInline(_ReadOnlyInline):
    model = ChangeEvent
    fields = readonly_fields = ["at", "actor_name", "kind", "message"]
    verbose_name_plural = "Timeline"


@admin.register(ChangeRequest)
class ChangeRequestAdmin(admin.ModelAdmin):
    list_display = ["change_id", "title", "change_type", "risk_level", "status", "waiting_for", "scheduled_start",
                    "requester"]
    list_filter = ["status", "change_type", "risk_level", "priority"]
    search_fields = ["change_id", "title", "description"]
    ordering = ["-created_at"]
    inlines = [CABApprovalInline, ChangeEventInline]
    actions = ["approve_selected", "reject_selected"]
    change_form_template = "admin/changes/changerequest/change_form.html"
    fieldsets = [
        ("Change request", {"fields": ["change_id", "title", "change_type", "standard_kind", "status", "requester",
                                       "created_at", "priority"]}),
        ("Risk and approval", {"fields": ["impact", "likelihood", "risk_level", "approval_required", "approval_progress"]}),
        ("Form", {"fields": ["description", "business_justification", "technical_details", "affected_systems",
                             "risk_assessment", "testing_performed", "implementation_plan", "rollback_plan",
                             "scheduled_start", "scheduled_end"]}),
        ("Technical review", {"fields": ["technical_reviewer", "technical_review", "technical_review_notes",
                                         "technical_reviewed_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        return [f for fs in self.fieldsets for f in fs[1]["fields"]]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requester", "standard_kind")

    @admin.display(description="Approval required")
    def approval_required(self, obj: ChangeRequest) -> str:
        return approval_status(obj).requirement.label

    @admin.display(description="Waiting for")
    def waiting_for(self, obj: ChangeRequest) -> str:
        if obj.status != ChangeState.CAB_REVIEW:
            return "—"
        return "; ".join(approval_status(obj).waiting_for) or "—"

    @admin.display(description="Approval progress")
    def approval_progress(self, obj: ChangeRequest):
        status = approval_status(obj)
        rows = [
            (status.requirement.approver_group, ", ".join(status.approver_approved_by) or "—",
             ", ".join(status.approver_rejected_by) or "—"),
        ]
        if status.requirement.cab != "none":
            rows.append((f"CAB ({status.cab_needed} of {len(status.cab_members)}: {', '.join(status.cab_members) or 'nobody'})",
                         ", ".join(status.cab_approved_by) or "—", ", ".join(status.cab_rejected_by) or "—"))
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><tr><th>Needed</th><th>Approved by</th><th>Rejected by</th></tr>{}</table>", body)

    # Voting -------------------------------------------------------------------------------------------

    def get_urls(self):
        return [path("<int:object_id>/vote/", self.admin_site.admin_view(self.vote_view), name="changes_changerequest_vote"),
                *super().get_urls()]

    def _vote(self, request, changes, decision: str, comment: str) -> None:
        for change in changes:
            try:
                result = services.change_vote(change=change, actor=request.user, decision=decision, comment=comment,
                                              via="admin")
            except ApplicationError as exc:
                self.message_user(request, f"{change.change_id}: {exc.message}", messages.ERROR)
            else:
                verb = "Approved" if decision == Vote.APPROVE else "Rejected"
                self.message_user(request, f"{change.change_id}: {verb}; the change is now "
                                           f"{result.get_status_display()}.", messages.SUCCESS)

    def _vote_action(self, request, queryset, decision: str):
        """An admin action with a confirmation page that asks for the comment."""
        form = VoteForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            self._vote(request, list(queryset), decision, form.cleaned_data["comment"])
            return None
        rows = [(change, approval_capacities(change, request.user)) for change in queryset]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{'Approve' if decision == Vote.APPROVE else 'Reject'} change requests",
            "opts": self.model._meta,
            "rows": rows,
            "form": form,
            "decision": decision,
            "action": request.POST.get("action"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/changes/changerequest/vote_action.html", context)

    @admin.action(description="Approve selected change requests (CAB vote)")
    def approve_selected(self, request, queryset):
        return self._vote_action(request, queryset, Vote.APPROVE)

    @admin.action(description="Reject selected change requests (CAB vote)")
    def reject_selected(self, request, queryset):
        return self._vote_action(request, queryset, Vote.REJECT)

    def vote_view(self, request, object_id: int):
        """Approve or reject one change from its admin page."""
        change = get_object_or_404(ChangeRequest, pk=object_id)
        if not self.has_view_permission(request, change):
            raise PermissionDenied
        form = VoteForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            decision = Vote.APPROVE if "_approve" in request.POST else Vote.REJECT
            self._vote(request, [change], decision, form.cleaned_data["comment"])
            return HttpResponseRedirect(reverse("admin:changes_changerequest_change", args=[change.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Vote on {change.change_id}",
            "opts": self.model._meta,
            "original": change,
            "change": change,
            "form": form,
            "capacities": approval_capacities(change, request.user),
            "status": approval_status(change),
        }
        return TemplateResponse(request, "admin/changes/changerequest/vote.html", context)


@admin.register(CABApproval)
class CABApprovalAdmin(admin.ModelAdmin):
    """Every vote ever cast: who, in which roles, what, when (read only)."""

    list_display = ["change", "round", "voter_name", "voter_groups", "capacities", "decision", "comment", "at", "via"]
    list_filter = ["decision", "via"]
    search_fields = ["change__change_id", "voter_name"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StandardChangeKind)
class StandardChangeKindAdmin(admin.ModelAdmin):
    """The catalogue of pre-approved change kinds (the manual's list, extendable)."""

    list_display = ["name", "key", "active"]
    list_filter = ["active"]
    prepopulated_fields = {"key": ["name"]}

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # kinds in use are protected; deactivate instead
