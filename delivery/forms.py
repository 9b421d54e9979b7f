"""Console forms of Module Gamma: they parse and validate what operators type; services act."""
import json

from django import forms

from .operations import EXPORT_FORMATS

BULK_ACTIONS = {
    "triage": "Triage",
    "replay": "Replay",
    "mark_exported": "Mark exported",
    "purge": "Purge",
    "export": "Export file",
}


class JSONObjectField(forms.CharField):
    """A textarea holding one JSON object; the error names the line and column of a syntax error."""

    widget = forms.Textarea(attrs={"rows": 12, "cols": 60, "spellcheck": "false", "class": "json"})

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError("Give a JSON object ({...}), not a list or a single value.")
        return parsed


class BulkActionForm(forms.Form):
    """A bulk action on the ticked entries, or on every entry matching the page's filter."""

    action = forms.ChoiceField(choices=list(BULK_ACTIONS.items()))
    entry_ids = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=())
    select_all = forms.BooleanField(required=False)
    reason = forms.CharField(required=False, max_length=1000)
    format = forms.ChoiceField(choices=[(f, f) for f in EXPORT_FORMATS], required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Ids are checked by the services (unknown ids get a clear 404 message), not against a choice list.
        self.fields["entry_ids"].valid_value = lambda value: str(value).isdigit()

    def clean(self):
        data = super().clean()
        action = data.get("action")
        if action and action != "export" and not data.get("entry_ids") and not data.get("select_all"):
            raise forms.ValidationError("Select entries first (tick them, or tick “select all matching the filter”).")
        return data


class CorrectForm(forms.Form):
    payload = JSONObjectField(label="Corrected payload (JSON object)")
    note = forms.CharField(required=False, max_length=1000, widget=forms.TextInput(attrs={"size": 60}))


class EntryActionForm(forms.Form):
    reason = forms.CharField(required=False, max_length=1000)


class BreakerResetForm(forms.Form):
    reason = forms.CharField(required=False, max_length=1000)


class TestDeliveryForm(forms.Form):
    payload = JSONObjectField(label="Test record (JSON object)", initial='{"test_field": "test_value"}',
                              widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "spellcheck": "false", "class": "json"}))
