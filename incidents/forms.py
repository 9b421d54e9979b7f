"""Console forms: they parse and validate input; the services decide and act."""
from django import forms
from django.contrib.auth import get_user_model

from opsconsole import roles

from .choices import (
    Audience,
    CommunicationKind,
    DetectionSource,
    ManualEscalationReason,
    PipelineModule,
    Severity,
)
from .policy import SEVERITY_DEFINITIONS

User = get_user_model()
DATETIME = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def component_choices() -> list:
    """Grouped choices "kind:identifier" from the applied configuration."""
    from delivery.models import Destination, RoutingRule
    from ingestion.models import Source
    from transform.models import TransformRule

    rules = [*TransformRule.objects.values_list("rule_id", flat=True), *RoutingRule.objects.values_list("rule_id", flat=True)]
    return [
        ("Modules", [(f"module:{value}", label) for value, label in PipelineModule.choices]),
        ("Sources", [(f"source:{s}", s) for s in Source.objects.values_list("source_id", flat=True)]),
        ("Rules", [(f"rule:{r}", r) for r in sorted(set(rules))]),
        ("Destinations", [(f"destination:{d}", d) for d in Destination.objects.values_list("destination_id", flat=True)]),
    ]


def severity_choices() -> list:
    return [(value, f"{value} - {SEVERITY_DEFINITIONS[value]['name']}") for value in Severity.values]


def parse_components(values) -> list[tuple[str, str]]:
    return [tuple(v.split(":", 1)) for v in values if ":" in v]


def parse_links(text: str) -> list[dict]:
    """One link a line: "label https://..." or just the URL."""
    links = []
    for line in (text or "").splitlines():
        parts = line.strip().rsplit(None, 1)
        if not parts:
            continue
        links.append({"label": parts[0] if len(parts) == 2 else "", "url": parts[-1]})
    return links


def links_text(links) -> str:
    return "\n".join(f"{link.get('label', '')} {link.get('url', '')}".strip() for link in links or [])


class ComponentsField(forms.MultipleChoiceField):
    widget = forms.SelectMultiple(attrs={"size": 8})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(choices=component_choices, **kwargs)


class DeclareForm(forms.Form):
    severity = forms.ChoiceField(choices=severity_choices, widget=forms.RadioSelect)
    summary = forms.CharField(max_length=200)
    impact = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False,
                             help_text="What users, data flows or capabilities are affected.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Symptoms")
    detection_source = forms.ChoiceField(choices=DetectionSource.choices[:-1], initial=DetectionSource.OPERATIONS)
    began_at = forms.DateTimeField(required=False, widget=DATETIME, label="Issue began")
    recent_changes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    current_actions = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Actions being taken")
    components = ComponentsField(label="Affected components")
    channel_links = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Channel links",
                                    help_text='One a line: "label https://..."')


class NoteForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Note")


class InvestigateForm(forms.Form):
    note = forms.CharField(required=False)


class MitigateForm(forms.Form):
    actions = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Mitigation actions")


class ResolveForm(forms.Form):
    root_cause_addressed = forms.BooleanField(required=False, label="Root cause addressed (a fix, not a suppressed symptom)")
    processing_resumed = forms.BooleanField(required=False, label="Normal processing resumed (expected rates and quality)")
    metrics_normal = forms.BooleanField(required=False, label="Metrics in acceptable ranges (no threshold violations)")
    no_customer_impact = forms.BooleanField(required=False, label="No ongoing customer impact")
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="How it was resolved")
    root_cause = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class CloseForm(forms.Form):
    note = forms.CharField(required=False)


class ReclassifyForm(forms.Form):
    severity = forms.ChoiceField(choices=severity_choices)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class EscalateForm(forms.Form):
    reason_kind = forms.ChoiceField(choices=ManualEscalationReason.choices, label="Why")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Details")
    role = forms.ChoiceField(required=False, label="To",
                             choices=[("", "Next level of the matrix")] + [(g, g) for g in roles.ALL_GROUPS
                                                                            if g in roles.OPERATOR_GROUPS])


class UpdateForm(forms.Form):
    summary = forms.CharField(max_length=200)
    impact = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Symptoms")
    current_actions = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Actions being taken")
    next_steps = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    eta = forms.CharField(max_length=200, required=False, label="ETA")
    recent_changes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    channel_links = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Channel links")


class ImpactForm(forms.Form):
    impact = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Impact now")
    components = ComponentsField(label="Newly affected")


class DataLossForm(forms.Form):
    details = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="What was lost")


class ResponderForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"))
    role = forms.CharField(max_length=100, required=False, initial="Responder")


class ComponentForm(forms.Form):
    components = ComponentsField(label="Components", required=True)


class CommunicationForm(forms.Form):
    kind = forms.ChoiceField(choices=CommunicationKind.choices, widget=forms.HiddenInput)
    audiences = forms.MultipleChoiceField(choices=Audience.choices, widget=forms.CheckboxSelectMultiple)
    subject = forms.CharField(max_length=255)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 9, "cols": 80}))


class ReviewForm(forms.Form):
    scheduled_for = forms.DateTimeField(required=False, widget=DATETIME, label="Review meeting")
    timeline_reconstruction = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}), required=False)
    root_cause = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    contributing_factors = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    went_well = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="What went well")
    went_badly = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="What went badly")
    improvements = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                                   label="Improvement opportunities")


class ActionItemForm(forms.Form):
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    owner = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"))
    deadline = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))


class OverrideForm(forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"), label="On call")
    starts_at = forms.DateTimeField(widget=DATETIME, label="From")
    ends_at = forms.DateTimeField(widget=DATETIME, label="Until")
    reason = forms.CharField(max_length=255, required=False)


class RotaForm(forms.Form):
    name = forms.CharField(max_length=100, initial="primary")
    anchor = forms.DateTimeField(widget=DATETIME, label="First handoff")
    shift_days = forms.IntegerField(min_value=1, max_value=366, initial=7, label="Shift (days)")
    members = forms.CharField(help_text="Usernames in turn order, comma-separated.")

    def clean_members(self):
        names = [n.strip() for n in self.cleaned_data["members"].split(",") if n.strip()]
        users = {u.username: u for u in User.objects.filter(username__in=names, is_active=True)}
        missing = [n for n in names if n not in users]
        if missing:
            raise forms.ValidationError(f"No active user: {', '.join(missing)}")
        return [users[n] for n in names]


