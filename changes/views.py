"""Console pages of change management: the list, the calendar of windows, a change with its timeline
and the actions the user may take, the form, emergency declaration and the weekly change review.
Thin over changes.selectors and changes.services (the same services as the API and the admin)."""
from datetime import date, timedelta

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from opsconsole.console import Column, ConsoleListView, ConsolePageMixin, ReaderRequiredMixin
from opsconsole.errors import ApplicationError

from . import forms as change_forms, services
from .actions import ACTIONS_BY_NAME, change_actions_for
from .approvals import approval_status
from .choices import (
    POST_IMPLEMENTATION_POINTS, RISK_CLASS_NAMES, TECHNICAL_REVIEW_POINTS, VALIDATION_POINTS, ChangeState, RiskLevel,
)
from .filtersets import ChangeRequestFilterSet
from .permissions import may_raise
from .selectors import (
    change_calendar, change_checklist, change_conflicts, change_get, change_list, conflicts_for, week_start_of,
    weekly_change_review,
)


def change_url(change) -> str:
    return reverse("console:change-detail", args=[change.change_id])


class ChangeListView(ConsoleListView):
    template_name = "changes/list.html"
    title = "Change requests"
    nav = "changes"
    filterset_class = ChangeRequestFilterSet
    empty = "No change requests."
    columns = [
        Column("Change", "change_id", "code", link=change_url),
        Column("Title", "title", link=change_url),
        Column("Type", "change_type", "status"),
        Column("Risk", "risk_level", "status"),
        Column("State", "status", "status"),
        Column("Window start", "scheduled_start", "time"),
        Column("Window end", "scheduled_end", "time"),
        Column("Systems", "systems_text", "code"),
        Column("Flags", "flags", "status"),
        Column("Requester", "requester.username"),
    ]

    def get_base_queryset(self):
        return change_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rows = list(context["object_list"])
        conflicts = conflicts_for(rows)
        now = timezone.now()
        for change in rows:
            flags = []
            if conflicts.get(change.pk):
                flags.append("overlap " + ", ".join(c.other_id for c in conflicts[change.pk]))
            if change.formal_request_overdue(now):
                flags.append("formal request overdue")
            if change.post_review_overdue(now):
                flags.append("review overdue")
            change.flags = "; ".join(flags)
            change.systems_text = ", ".join(change.affected_systems)
        context["table"].rows = rows
        context["may_raise"] = may_raise(self.request.user)
        return context

    def get_row_class(self, row) -> str:
        return "flagged" if getattr(row, "flags", "") else ""


def _parse_day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


class ChangeCalendarView(ConsolePageMixin, TemplateView):
    """Implementation windows week by week; overlapping windows on a shared system are flagged."""

    template_name = "changes/calendar.html"
    title = "Change calendar"
    nav = "change-calendar"
    weeks = 4

    def get_context_data(self, **kwargs):
        start = week_start_of(_parse_day(self.request.GET.get("start")) or timezone.localdate())
        calendar = change_calendar(start=start, days=7 * self.weeks)
        days = calendar["days"]
        return {
            **super().get_context_data(**kwargs),
            "calendar": calendar,
            "weeks": [days[i:i + 7] for i in range(0, len(days), 7)],
            "previous": (start - timedelta(days=7 * self.weeks)).isoformat(),
            "next": (start + timedelta(days=7 * self.weeks)).isoformat(),
            "today": week_start_of(timezone.localdate()).isoformat(),
            "weekday_names": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
        }


# Each action: the form that reads its input (None: no input), and how it calls its service.
ACTION_HANDLERS = {
    "submit": (None, lambda c, u, d: services.change_submit(change=c, actor=u)),
    "review-start": (None, lambda c, u, d: services.change_review_start(change=c, actor=u)),
    "review-pass": (change_forms.ReviewPassForm, lambda c, u, d: services.change_review_pass(change=c, actor=u, **d)),
    "return": (change_forms.ReasonForm, lambda c, u, d: services.change_return(change=c, actor=u, **d)),
    "approve": (change_forms.CommentForm, lambda c, u, d: services.change_vote(
        change=c, actor=u, decision="approve", comment=d["comment"], via="console")),
    "reject": (change_forms.ReasonForm, lambda c, u, d: services.change_reject(
        change=c, actor=u, reason=d["reason"], via="console")),
    "schedule": (change_forms.ScheduleForm, lambda c, u, d: services.change_schedule(change=c, actor=u, **d)),
    "checklist": (change_forms.ChecklistForm, lambda c, u, d: services.change_checklist_set(change=c, actor=u, **d)),
    "start": (None, lambda c, u, d: services.change_start(change=c, actor=u)),
    "implementation-done": (change_forms.NotesForm,
                            lambda c, u, d: services.change_implementation_done(change=c, actor=u, **d)),
    "complete": (change_forms.CompleteForm, lambda c, u, d: services.change_complete(change=c, actor=u, **d)),
    "roll-back": (change_forms.RollBackForm, lambda c, u, d: services.change_roll_back(change=c, actor=u, **d)),
    "review": (change_forms.CloseForm, lambda c, u, d: services.change_close(change=c, actor=u, **d)),
    "formalize": (None, lambda c, u, d: services.change_formalize(change=c, actor=u)),
    "cancel": (change_forms.ReasonForm, lambda c, u, d: services.change_cancel(change=c, actor=u, **d)),
    "note": (change_forms.NoteForm, lambda c, u, d: services.change_note_add(change=c, actor=u, **d)),
}


def _action_form(name: str, change, data=None) -> forms.Form | None:
    form_class = ACTION_HANDLERS[name][0]
    if form_class is None:
        return None
    if form_class is change_forms.ChecklistForm:
        return form_class(data, change=change, prefix=name)
    return form_class(data, prefix=name)


def _points_table(items, values: dict) -> list[dict]:
    return [{"label": p.label, "done": bool(values.get(p.key))} for p in items]


class ChangeDetailView(ConsolePageMixin, TemplateView):
    template_name = "changes/detail.html"
    nav = "changes"

    def get_context_data(self, **kwargs):
        change = change_get(self.kwargs["change_id"])
        if change is None:
            raise Http404("Unknown change request.")
        self.title = f"{change.change_id}: {change.title}"
        user = self.request.user
        actions = [a for a in change_actions_for(change, user) if a.name != "edit"]
        now = timezone.now()
        return {
            **super().get_context_data(**kwargs),
            "change": change,
            "risk_class": RISK_CLASS_NAMES[RiskLevel(change.risk_level)],
            "approval": approval_status(change),
            "show_approval": change.change_type == "normal",
            "conflicts": change_conflicts(change),
            "checklist": change_checklist(change),
            "technical_review": _points_table(TECHNICAL_REVIEW_POINTS, change.technical_review),
            "validation": _points_table(VALIDATION_POINTS, change.validation),
            "post_review": _points_table(POST_IMPLEMENTATION_POINTS, change.post_review),
            "votes": change.approvals.all(),
            "timeline": change.timeline.all(),
            "actions": [{"action": a, "form": _action_form(a.name, change)} for a in actions],
            "can_edit": ACTIONS_BY_NAME["edit"].available(change, user),
            "formal_request_overdue": change.formal_request_overdue(now),
            "post_review_overdue": change.post_review_overdue(now),
            "states": ChangeState,
        }


class ChangeActionView(ReaderRequiredMixin, View):
    """POST /changes/<id>/<action>/: run one workflow step through its service, then back to the change."""

    http_method_names = ["post"]

    def post(self, request, change_id: str, action: str):
        if action not in ACTION_HANDLERS:
            raise Http404("Unknown action.")
        change = change_get(change_id)
        if change is None:
            raise Http404("Unknown change request.")
        form = _action_form(action, change, request.POST)
        if form is not None and not form.is_valid():
            errors = "; ".join(f"{form.fields[f].label if f in form.fields else f}: {' '.join(e)}"
                               for f, e in form.errors.items())
            messages.error(request, f"{ACTIONS_BY_NAME[action].label}: {errors}")
            return HttpResponseRedirect(change_url(change))
        data = {}
        if form is not None:
            data = form.service_data() if hasattr(form, "service_data") else dict(form.cleaned_data)
        try:
            ACTION_HANDLERS[action][1](change, request.user, data)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            change.refresh_from_db()
            messages.success(request, f"{ACTIONS_BY_NAME[action].label}: done. {change.change_id} is "
                                      f"{change.get_status_display()}.")
        return HttpResponseRedirect(change_url(change))


class ChangeFormView(ConsolePageMixin, TemplateView):
    """The change request form: new (a draft), or edit a draft / an emergency's formal request."""

    template_name = "changes/form.html"
    nav = "changes"

    def test_func(self) -> bool:
        return may_raise(self.request.user)

    def get_change(self):
        if "change_id" not in self.kwargs:
            return None
        change = change_get(self.kwargs["change_id"])
        if change is None:
            raise Http404("Unknown change request.")
        return change

    def get_title(self) -> str:
        change = self.get_change()
        return f"Edit {change.change_id}" if change else "New change request"

    def get_context_data(self, form=None, **kwargs):
        change = self.get_change()
        if form is None:
            form = change_forms.ChangeRequestForm(change=change)
        return {**super().get_context_data(**kwargs), "form": form, "change": change,
                "standard_kinds": list(form.fields["standard_kind"].queryset) if "standard_kind" in form.fields else []}

    def post(self, request, **kwargs):
        change = self.get_change()
        form = change_forms.ChangeRequestForm(request.POST, change=change)
        if form.is_valid():
            try:
                if change is None:
                    change = services.change_create(actor=request.user, data=form.service_data())
                    messages.success(request, f"{change.change_id} saved as a draft. Submit it when the form is complete.")
                else:
                    change = services.change_update(change=change, actor=request.user, data=form.service_data())
                    messages.success(request, f"{change.change_id} saved.")
            except ApplicationError as exc:
                field = exc.extra.get("field")
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                if request.POST.get("then") == "submit" and not change.is_emergency:
                    try:
                        change = services.change_submit(change=change, actor=request.user)
                        messages.success(request, f"{change.change_id} submitted; it is {change.get_status_display()}.")
                    except ApplicationError as exc:
                        messages.error(request, exc.message)
                return HttpResponseRedirect(change_url(change))
        return self.render_to_response(self.get_context_data(form=form))


class EmergencyDeclareView(ConsolePageMixin, TemplateView):
    template_name = "changes/emergency.html"
    title = "Declare an emergency change"
    nav = "changes"

    def test_func(self) -> bool:
        return may_raise(self.request.user)

    def get_context_data(self, form=None, **kwargs):
        return {**super().get_context_data(**kwargs), "form": form or change_forms.EmergencyForm()}

    def post(self, request):
        form = change_forms.EmergencyForm(request.POST)
        if form.is_valid():
            try:
                change = services.emergency_change_declare(actor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                field = exc.extra.get("field")
                form.add_error(field if field in form.fields else None, exc.message)
            else:
                messages.success(request, f"Emergency change {change.change_id} declared; implementation in progress. "
                                          "Complete the formal request within 24 hours.")
                return HttpResponseRedirect(change_url(change))
        return self.render_to_response(self.get_context_data(form=form))


class WeeklyReviewView(ConsolePageMixin, TemplateView):
    """The manual's Weekly Change Review."""

    template_name = "changes/weekly_review.html"
    title = "Weekly change review"
    nav = "change-review"

    def get_context_data(self, **kwargs):
        start = week_start_of(_parse_day(self.request.GET.get("week")) or timezone.localdate())
        review = weekly_change_review(week_start=start)
        return {
            **super().get_context_data(**kwargs),
            "review": review,
            "previous": (start - timedelta(days=7)).isoformat(),
            "next": (start + timedelta(days=7)).isoformat(),
            "finished_columns": [
                Column("Change", "change_id", "code", link=change_url), Column("Title", "title"),
                Column("Type", "change_type", "status"), Column("Risk", "risk_level", "status"),
                Column("State", "status", "status"), Column("Finished", "finished_at", "time"),
                Column("Rollback trigger", "get_rollback_trigger_display"),
                Column("Deviations", "implementation_notes"),
            ],
        }
