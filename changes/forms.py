"""Console forms of change management: the manual's change request form, emergency declaration, and the
inputs of workflow steps. They only parse input; the services decide."""
from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from .choices import (
    MANUAL_CHECKLIST_KEYS, ON_CALL_MANAGER_GROUPS, POST_IMPLEMENTATION_POINTS, PRE_IMPLEMENTATION_CHECKLIST,
    TECHNICAL_REVIEW_POINTS, VALIDATION_POINTS, Impact, Likelihood, Priority, RollbackTrigger,
)
from .models import ChangeRequest, StandardChangeKind

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=DATETIME_FORMAT, **kwargs)


def _text(rows: int = 3, **kwargs) -> forms.CharField:
    return forms.CharField(widget=forms.Textarea(attrs={"rows": rows}), **kwargs)


class ChangeRequestForm(forms.Form):
    """CHANGE REQUEST (manual, Normal Change Process step 1). Drafts may be saved incomplete; submit checks."""

    title = forms.CharField(max_length=200)
    change_type = forms.ChoiceField(choices=[("normal", "Normal"), ("standard", "Standard (pre-approved)")],
                                    label="Type")
    standard_kind = forms.ModelChoiceField(queryset=StandardChangeKind.objects.filter(active=True), to_field_name="key",
                                           required=False, label="Pre-approved kind",
                                           help_text="Standard changes only: the catalogued kind this change is.")
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.MEDIUM)
    description = _text(4, required=False, label="Change description",
                        help_text="Detailed description of the proposed change.")
    business_justification = _text(required=False, help_text="Why this change is needed.")
    technical_details = _text(required=False, help_text="Technical implementation details.")
    affected_systems = _text(2, required=False, help_text=(
        "One per line or comma-separated: alpha, beta, gamma, source:&lt;id&gt;, rule:&lt;id&gt;, destination:&lt;id&gt;, "
        "route:&lt;id&gt;, enrichment:&lt;id&gt;, system:&lt;name&gt;."))
    impact = forms.ChoiceField(choices=Impact.choices)
    likelihood = forms.ChoiceField(choices=Likelihood.choices)
    risk_assessment = _text(required=False, help_text="Identified risks and mitigations.")
    testing_performed = _text(required=False, help_text="Testing completed prior to request.")
    implementation_plan = _text(4, required=False, help_text="Step-by-step implementation procedure.")
    rollback_plan = _text(required=False, help_text="Procedure to revert the change if needed.")
    scheduled_start = forms.DateTimeField(required=False, widget=DateTimeLocalInput(), label="Window start")
    scheduled_end = forms.DateTimeField(required=False, widget=DateTimeLocalInput(), label="Window end")
    incident = forms.CharField(required=False, max_length=24, label="Related incident",
                               help_text="INC-YYYYMMDD-NNNN, when the change remediates an incident.")

    def __init__(self, *args, change: ChangeRequest | None = None, **kwargs):
        if change is not None and "initial" not in kwargs:
            kwargs["initial"] = {name: getattr(change, name) for name in self.base_fields}
            kwargs["initial"]["standard_kind"] = change.standard_kind.key if change.standard_kind else None
            kwargs["initial"]["affected_systems"] = "\n".join(change.affected_systems)
            kwargs["initial"]["incident"] = change.incident.incident_id if change.incident else ""
            for name in ("scheduled_start", "scheduled_end"):
                if kwargs["initial"][name]:
                    kwargs["initial"][name] = timezone.localtime(kwargs["initial"][name])
        super().__init__(*args, **kwargs)
        if change is not None and change.is_emergency:
            del self.fields["change_type"]
            del self.fields["standard_kind"]

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        if "standard_kind" in data:
            data["standard_kind"] = data["standard_kind"].key if data["standard_kind"] else None
        return data


def on_call_managers():
    return get_user_model().objects.filter(groups__name__in=ON_CALL_MANAGER_GROUPS, is_active=True).distinct() \
        .order_by("username")


class EmergencyForm(forms.Form):
    """Emergency Change Process: declare, with the on-call manager's verbal approval."""

    title = forms.CharField(max_length=200)
    description = _text(3, help_text="What is being changed, and the critical issue it addresses.")
    affected_systems = _text(2, help_text="One per line or comma-separated (alpha, source:&lt;id&gt;, ...).")
    impact = forms.ChoiceField(choices=Impact.choices, initial=Impact.HIGH)
    likelihood = forms.ChoiceField(choices=Likelihood.choices, initial=Likelihood.MEDIUM)
    verbal_approver = forms.ModelChoiceField(queryset=on_call_managers(), label="Verbal approval by",
                                             help_text="The on-call manager who approved (Engineering Manager, "
                                                       "Director or VP/CTO).")
    verbal_approval_notes = _text(2, required=False, label="Approval notes", help_text="How and when they approved.")
    expected_end = forms.DateTimeField(required=False, widget=DateTimeLocalInput(),
                                       help_text="When the work should be done (default: in 2 hours).")
    incident = forms.ModelChoiceField(queryset=None, required=False, to_field_name="incident_id",
                                      label="Incident remediated", help_text="Open incidents; it is reviewed in the "
                                                                             "incident's post-incident review.")

    def __init__(self, *args, **kwargs):
        from incidents.choices import ACTIVE_STATUSES
        from incidents.models import Incident

        super().__init__(*args, **kwargs)
        self.fields["verbal_approver"].queryset = on_call_managers()
        self.fields["incident"].queryset = Incident.objects.filter(status__in=ACTIVE_STATUSES).order_by("-declared_at")


def _points_field(items, label: str) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(choices=[(p.key, p.label) for p in items], widget=forms.CheckboxSelectMultiple,
                                     required=False, label=label)


class ReasonForm(forms.Form):
    reason = _text(2, label="Reason")


class CommentForm(forms.Form):
    comment = _text(2, required=False, label="Comment")


class ReviewPassForm(forms.Form):
    points = _points_field(TECHNICAL_REVIEW_POINTS, "Technical review (all five)")
    notes = _text(2, required=False, label="Review notes")


class ScheduleForm(forms.Form):
    start = forms.DateTimeField(required=False, widget=DateTimeLocalInput(), label="Window start")
    end = forms.DateTimeField(required=False, widget=DateTimeLocalInput(), label="Window end")


class ChecklistForm(forms.Form):
    """All items of the pre-implementation checklist; unchecked boxes untick."""

    def __init__(self, *args, change: ChangeRequest, **kwargs):
        super().__init__(*args, **kwargs)
        for section, items in PRE_IMPLEMENTATION_CHECKLIST.items():
            for item in items:
                if item.key in MANUAL_CHECKLIST_KEYS:
                    self.fields[item.key] = forms.BooleanField(required=False, label=item.label,
                                                               initial=change.checklist_done(item.key))
                    self.fields[item.key].section = section

    def service_data(self) -> dict:
        return {"items": {key: bool(self.cleaned_data.get(key)) for key in MANUAL_CHECKLIST_KEYS}}


class NotesForm(forms.Form):
    notes = _text(2, required=False, label="Deviations and evidence")


class CompleteForm(forms.Form):
    points = _points_field(VALIDATION_POINTS, "Validation")
    notes = _text(2, required=False, label="Validation notes")


class RollBackForm(forms.Form):
    trigger = forms.ChoiceField(choices=RollbackTrigger.choices, label="Rollback trigger")
    details = _text(2, required=False)


class CloseForm(forms.Form):
    points = _points_field(POST_IMPLEMENTATION_POINTS, "Immediate review")
    lessons_learned = _text(2, label="Lessons learned")
    results = _text(2, label="Results")


class NoteForm(forms.Form):
    text = _text(2, label="Note")
