"""Console pages of incident response: list, declare, incident page with its actions, review, on-call,
notifications. Thin: forms parse, services act, selectors read."""
from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views import View
from django.views.generic import FormView, TemplateView
from django_fsm import can_proceed

from opsconsole.console import (
    Column,
    ConsoleListView,
    ConsolePageMixin,
    OperatorRequiredMixin,
    Table,
)
from opsconsole.errors import ApplicationError
from opsconsole.roles import is_operator

from . import forms as f
from . import services
from .choices import ACTIVE_STATUSES, CommunicationKind, ComponentKind, IncidentStatus
from .communications import communication_render
from .escalation import escalation_state
from .filtersets import IncidentFilterSet
from .models import ActionItem, Incident, Notification, OnCallOverride
from .notifications import notification_mark_read
from .oncall import (
    active_rota,
    on_call_schedule,
    on_call_shift,
    oncall_override_create,
    oncall_override_delete,
    oncall_rota_set,
)
from .policy import LEVEL_LABELS, SEVERITY_DEFINITIONS, requirements
from .selectors import (
    action_item_list,
    console_notifications_for,
    incident_due_items,
    incident_get,
    incident_linked_changes,
    incident_list,
    incident_review,
    incident_timeline,
    overdue_action_items_q,
)

SEVERITY_CLASS = {"P1": "bad", "P2": "bad", "P3": "warn", "P4": "muted"}
STATUS_CLASS = {"open": "bad", "investigating": "warn", "mitigating": "warn", "resolved": "ok", "closed": "muted"}
DUE_CLASS = {"overdue": "bad", "late": "warn", "due": "plain", "met": "ok"}


def badge(value: str, css: str, title: str = ""):
    return format_html('<span class="status status-{}" title="{}">{}</span>', css, title, value)


def severity_badge(incident: Incident):
    return badge(incident.severity, SEVERITY_CLASS.get(incident.severity, "plain"),
                 SEVERITY_DEFINITIONS[incident.severity]["name"])


def status_badge(incident: Incident):
    return badge(incident.get_status_display(), STATUS_CLASS.get(incident.status, "plain"))


def due_badges(incident: Incident, now):
    """Overdue requirements in red; for active incidents the next due one too."""
    items = incident_due_items(incident, now=now)
    shown = [i for i in items if i.overdue]
    upcoming = sorted((i for i in items if i.state == "due"), key=lambda i: i.due_at)
    if incident.status in ACTIVE_STATUSES and upcoming:
        shown.append(upcoming[0])
    if not shown:
        return ""
    return format_html_join(" ", '<span class="status status-{}" title="due {}">{} {}</span>', (
        (DUE_CLASS[i.state], timezone.localtime(i.due_at).strftime("%Y-%m-%d %H:%M"),
         i.label, "overdue" if i.overdue else "due " + timezone.localtime(i.due_at).strftime("%H:%M"))
        for i in shown))


def incident_url(row) -> str:
    incident = getattr(row, "incident", row)
    return reverse("console:incident-detail", args=[incident.incident_id])


def component_url(component) -> str | None:
    if component.kind == ComponentKind.SOURCE:
        return reverse("console:source-detail", args=[component.identifier])
    if component.kind == ComponentKind.DESTINATION:
        return reverse("console:destinations")
    if component.kind == ComponentKind.RULE:
        return reverse("console:rules")
    return None


class IncidentListView(ConsoleListView):
    template_name = "incidents/incident_list.html"
    title = "Incidents"
    nav = "incidents"
    filterset_class = IncidentFilterSet
    empty = "No incidents."
    intro = "Active incidents first, by severity. Badges show overdue response requirements and the next one due."
    columns = [
        Column("Incident", "incident_id", link=incident_url),
        Column("Severity", "severity_badge"),
        Column("Status", "status_badge"),
        Column("Summary", "summary"),
        Column("Due", "due_badges"),
        Column("Escalation", "escalation_label"),
        Column("Declared", "declared_at", "time"),
        Column("Declared by", "declared_by_name"),
    ]

    def get_base_queryset(self):
        return incident_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        for incident in context["object_list"]:
            incident.severity_badge = severity_badge(incident)
            incident.status_badge = status_badge(incident)
            incident.due_badges = due_badges(incident, now)
            incident.escalation_label = f"L{incident.escalation_level} {LEVEL_LABELS[incident.escalation_level].lower()}"
            incident.declared_by_name = incident.declared_by.get_username() if incident.declared_by else "system"
        return context

    def get_row_class(self, row) -> str:
        return "incident-overdue" if row.due_badges and "overdue" in row.due_badges else ""

    def get_extra_tables(self) -> list[Table]:
        overdue = action_item_list().filter(overdue_action_items_q(timezone.now()))[:50]
        return [Table(title="Overdue action items (post-incident reviews)", rows=overdue, empty="No overdue action items.",
                      columns=[
                          Column("Incident", "review.incident.incident_id", link=lambda a: incident_url(a.review.incident)),
                          Column("Action item", "description"), Column("Owner", "owner.username"),
                          Column("Deadline", "deadline"),
                      ])]


class IncidentDeclareView(OperatorRequiredMixin, ConsolePageMixin, FormView):
    template_name = "incidents/incident_declare.html"
    form_class = f.DeclareForm
    title = "Declare an incident"
    nav = "incidents"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "definitions": SEVERITY_DEFINITIONS,
                "requirements": {s: requirements(s) for s in SEVERITY_DEFINITIONS}}

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            incident = services.incident_declare(
                actor=self.request.user, severity=data["severity"], summary=data["summary"], impact=data["impact"],
                description=data["description"], detection_source=data["detection_source"], began_at=data["began_at"],
                recent_changes=data["recent_changes"], current_actions=data["current_actions"],
                components=f.parse_components(data["components"]), channel_links=f.parse_links(data["channel_links"]))
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            return self.form_invalid(form)
        messages.success(self.request, f"Declared {incident.incident_id}; initial responders notified.")
        return HttpResponseRedirect(reverse("console:incident-detail", args=[incident.incident_id]))


TRANSITIONS = ("investigate", "mitigate", "resolve", "reopen", "close")


def allowed_transitions(incident: Incident, user) -> list[str]:
    """Transitions from the current status that the user's role allows (conditions are checked on submit,
    where the form confirms them)."""
    allowed = []
    for name in TRANSITIONS:
        method = getattr(incident, name)
        meta = method._django_fsm
        if can_proceed(method, check_conditions=False) and meta.has_transition_perm(incident, incident.status, user):
            allowed.append(name)
    return allowed


class IncidentDetailView(ConsolePageMixin, TemplateView):
    template_name = "incidents/incident_detail.html"
    nav = "incidents"

    def get_context_data(self, **kwargs):
        incident = incident_get(self.kwargs["incident_id"])
        if incident is None:
            raise Http404("Unknown incident.")
        self.title = f"{incident.incident_id} {incident.summary}"
        user = self.request.user
        now = timezone.now()
        operator = is_operator(user)
        review = incident_review(incident)
        components = list(incident.components.all())
        for component in components:
            component.url = component_url(component)
            component.label = ComponentKind(component.kind).label
        templates = []
        if operator:
            kinds = [CommunicationKind.RESOLUTION] if not incident.is_active else [CommunicationKind.INITIAL, CommunicationKind.UPDATE]
            if incident.status == IncidentStatus.CLOSED:
                kinds = []
            for kind in kinds:
                rendered = communication_render(incident=incident, kind=kind, now=now)
                audiences = ["responders"] + ([incident.notification_audience] if incident.notification_audience else [])
                templates.append({"kind": kind, "label": CommunicationKind(kind).label, "form": f.CommunicationForm(
                    initial={"kind": kind, "subject": rendered["subject"], "body": rendered["body"], "audiences": audiences},
                    prefix=kind)})
        close_blockers = []
        if incident.status == IncidentStatus.RESOLVED and not incident.follow_up_done():
            needs = requirements(incident.severity)
            if needs.review_required and (review is None or review.status != "published"):
                close_blockers.append("publish the post-incident review")
            if needs.notification_audience and not incident.communications.filter(kind="resolution").exists():
                close_blockers.append("send the resolution notification")
        return {
            **super().get_context_data(**kwargs),
            "incident": incident,
            "severity_badge": severity_badge(incident),
            "status_badge": status_badge(incident),
            "definition": SEVERITY_DEFINITIONS[incident.severity],
            "definitions": SEVERITY_DEFINITIONS,
            "requirements": requirements(incident.severity),
            "due_items": incident_due_items(incident, now=now),
            "due_class": DUE_CLASS,
            "escalation": escalation_state(incident),
            "escalations": incident.escalations.all(),
            "responders": incident.responders.all(),
            "components": components,
            "timeline": incident_timeline(incident),
            "communications": incident.communications.select_related("sent_by"),
            "notifications": incident.notifications.select_related("recipient")[:100],
            "review": review,
            "changes": incident_linked_changes(incident),
            "allowed": allowed_transitions(incident, user) if operator else [],
            "close_blockers": close_blockers,
            "templates": templates,
            "pipeline_evidence": services.pipeline_evidence() if operator and incident.is_active else None,
            "forms": {
                "note": f.NoteForm(), "investigate": f.InvestigateForm(), "mitigate": f.MitigateForm(),
                "resolve": f.ResolveForm(initial={"root_cause": incident.root_cause}), "reopen": f.ReasonForm(),
                "close": f.CloseForm(), "reclassify": f.ReclassifyForm(initial={"severity": incident.severity}),
                "escalate": f.EscalateForm(), "impact": f.ImpactForm(initial={"impact": incident.impact}),
                "data_loss": f.DataLossForm(), "responder": f.ResponderForm(), "components": f.ComponentForm(),
                "update": f.UpdateForm(initial={
                    "summary": incident.summary, "impact": incident.impact, "description": incident.description,
                    "current_actions": incident.current_actions, "next_steps": incident.next_steps, "eta": incident.eta,
                    "recent_changes": incident.recent_changes, "channel_links": f.links_text(incident.channel_links)}),
            } if operator else {},
        }


def _act(name: str, form_class, call, done: str, anchor: str = ""):
    return {"form": form_class, "call": call, "done": done, "anchor": anchor}


INCIDENT_ACTIONS = {
    "investigate": _act("investigate", f.InvestigateForm, lambda u, i, d: services.incident_investigate(
        actor=u, incident=i, note=d["note"]), "Investigation started (initial response recorded)."),
    "mitigate": _act("mitigate", f.MitigateForm, lambda u, i, d: services.incident_mitigate(
        actor=u, incident=i, actions=d["actions"]), "Mitigation under way."),
    "resolve": _act("resolve", f.ResolveForm, lambda u, i, d: services.incident_resolve(actor=u, incident=i, **d),
                    "Resolved."),
    "reopen": _act("reopen", f.ReasonForm, lambda u, i, d: services.incident_reopen(
        actor=u, incident=i, reason=d["reason"]), "Reopened."),
    "close": _act("close", f.CloseForm, lambda u, i, d: services.incident_close(
        actor=u, incident=i, note=d["note"]), "Closed."),
    "reclassify": _act("reclassify", f.ReclassifyForm, lambda u, i, d: services.incident_reclassify(
        actor=u, incident=i, severity=d["severity"], reason=d["reason"]), "Severity changed."),
    "escalate": _act("escalate", f.EscalateForm, lambda u, i, d: services.incident_escalate(
        actor=u, incident=i, reason_kind=d["reason_kind"], reason=d["reason"], role=d["role"] or None),
        "Escalated.", "escalation"),
    "note": _act("note", f.NoteForm, lambda u, i, d: services.incident_note_add(actor=u, incident=i, text=d["text"]),
                 "Note added.", "timeline"),
    "update": _act("update", f.UpdateForm, lambda u, i, d: services.incident_update(
        actor=u, incident=i, **{**d, "channel_links": f.parse_links(d["channel_links"])}), "Ticket updated."),
    "impact": _act("impact", f.ImpactForm, lambda u, i, d: services.incident_impact_expand(
        actor=u, incident=i, impact=d["impact"], components=f.parse_components(d["components"])),
        "Impact expansion recorded; escalated one level.", "escalation"),
    "data-loss": _act("data-loss", f.DataLossForm, lambda u, i, d: services.incident_data_loss_confirm(
        actor=u, incident=i, details=d["details"]), "Data loss recorded; escalated one level.", "escalation"),
    "responder": _act("responder", f.ResponderForm, lambda u, i, d: services.incident_responder_add(
        actor=u, incident=i, user=d["user"], role=d["role"]), "Responder added.", "responders"),
    "components": _act("components", f.ComponentForm, lambda u, i, d: services.incident_components_add(
        actor=u, incident=i, components=f.parse_components(d["components"])), "Components linked.", "components"),
    "review-start": _act("review-start", f.CloseForm, lambda u, i, d: services.review_start(actor=u, incident=i),
                         "Post-incident review started."),
}


class IncidentActionView(OperatorRequiredMixin, View):
    """POST one action on an incident (a transition, a note, an escalation, ...) through its service."""

    http_method_names = ["post"]

    def post(self, request, incident_id: str, action: str):
        incident = get_object_or_404(Incident, incident_id=incident_id)
        spec = INCIDENT_ACTIONS.get(action)
        if spec is None:
            raise Http404("Unknown action.")
        form = spec["form"](request.POST)
        target = reverse("console:incident-detail", args=[incident_id])
        if not form.is_valid():
            errors = "; ".join(f"{'' if k == '__all__' else k + ': '}{' '.join(v)}" for k, v in form.errors.items())
            messages.error(request, f"{action}: {errors}")
            return HttpResponseRedirect(target)
        try:
            spec["call"](request.user, incident, form.cleaned_data)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, spec["done"])
            if action == "review-start":
                return HttpResponseRedirect(reverse("console:incident-review", args=[incident_id]))
        return HttpResponseRedirect(target + (f"#{spec['anchor']}" if spec["anchor"] else ""))


class CommunicationSendView(OperatorRequiredMixin, View):
    """POST a communication template as edited in the incident page."""

    http_method_names = ["post"]

    def post(self, request, incident_id: str, kind: str):
        incident = get_object_or_404(Incident, incident_id=incident_id)
        form = f.CommunicationForm(request.POST, prefix=kind)
        target = reverse("console:incident-detail", args=[incident_id]) + "#communications"
        if not form.is_valid():
            messages.error(request, "Communication: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
            return HttpResponseRedirect(target)
        data = form.cleaned_data
        try:
            communication = services.communication_send(actor=request.user, incident=incident, kind=kind,
                                                        audiences=data["audiences"], subject=data["subject"], body=data["body"])
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{communication.get_kind_display()} sent.")
        return HttpResponseRedirect(target)


class ReviewView(ConsolePageMixin, TemplateView):
    template_name = "incidents/review.html"
    nav = "incidents"

    def get_incident(self) -> Incident:
        return get_object_or_404(Incident, incident_id=self.kwargs["incident_id"])

    def get_context_data(self, **kwargs):
        incident = self.get_incident()
        review = incident_review(incident)
        self.title = f"Post-incident review of {incident.incident_id}"
        today = timezone.localdate()
        items = list(review.action_items.select_related("owner")) if review else []
        for item in items:
            item.overdue = item.status == "open" and item.deadline < today
        form = kwargs.pop("form", None) or (f.ReviewForm(initial={
            "scheduled_for": review.scheduled_for and timezone.localtime(review.scheduled_for),
            **{name: getattr(review, name) for name in services.REVIEW_FIELDS if name != "scheduled_for"}}) if review else None)
        return {**super().get_context_data(**kwargs), "incident": incident, "review": review, "form": form,
                "items": items, "item_form": f.ActionItemForm(), "changes": incident_linked_changes(incident), "requirements": requirements(incident.severity),
                "severity_badge": severity_badge(incident), "status_badge": status_badge(incident),
                "now": timezone.now()}

    def post(self, request, incident_id: str):
        if not is_operator(request.user):
            return self.handle_no_permission()
        incident = self.get_incident()
        review = incident_review(incident)
        target = reverse("console:incident-review", args=[incident_id])
        if review is None:
            raise Http404("No review yet.")
        op = request.POST.get("op", "save")
        try:
            if op == "save":
                form = f.ReviewForm(request.POST)
                if not form.is_valid():
                    return self.render_to_response(self.get_context_data(form=form))
                services.review_update(actor=request.user, review=review, **form.cleaned_data)
                messages.success(request, "Review saved.")
            elif op == "publish":
                services.review_publish(actor=request.user, review=review)
                messages.success(request, "Review published.")
            elif op == "add-item":
                form = f.ActionItemForm(request.POST)
                if not form.is_valid():
                    messages.error(request, "Action item: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
                else:
                    services.action_item_add(actor=request.user, review=review, **form.cleaned_data)
                    messages.success(request, "Action item added.")
            elif op == "complete-item":
                item = get_object_or_404(ActionItem, pk=request.POST.get("item"), review=review)
                services.action_item_complete(actor=request.user, item=item)
                messages.success(request, "Action item done.")
            else:
                raise Http404("Unknown operation.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return HttpResponseRedirect(target)


class OnCallView(ConsolePageMixin, TemplateView):
    template_name = "incidents/oncall.html"
    title = "On-call rota"
    nav = "oncall"

    def get_context_data(self, **kwargs):
        now = timezone.now()
        rota = active_rota()
        return {
            **super().get_context_data(**kwargs), "rota": rota, "shift": on_call_shift(now),
            "members": list(rota.members.select_related("user")) if rota else [],
            "schedule": on_call_schedule(now, now + timedelta(days=28)),
            "overrides": list(OnCallOverride.objects.filter(ends_at__gt=now).select_related("user", "created_by")
                              .order_by("starts_at")) if rota else [],
            "override_form": kwargs.get("override_form") or f.OverrideForm(),
            "rota_form": kwargs.get("rota_form") or f.RotaForm(initial={
                "name": rota.name, "anchor": timezone.localtime(rota.anchor), "shift_days": rota.shift_days,
                "members": ", ".join(m.user.username for m in rota.members.select_related("user"))} if rota else None),
        }

    def post(self, request):
        if not is_operator(request.user):
            return self.handle_no_permission()
        op = request.POST.get("op")
        try:
            if op == "override":
                form = f.OverrideForm(request.POST)
                if not form.is_valid():
                    return self.render_to_response(self.get_context_data(override_form=form))
                oncall_override_create(actor=request.user, **form.cleaned_data)
                messages.success(request, "Override added.")
            elif op == "delete-override":
                override = get_object_or_404(OnCallOverride, pk=request.POST.get("override"))
                oncall_override_delete(actor=request.user, override=override, reason=request.POST.get("reason", ""))
                messages.success(request, "Override removed.")
            elif op == "rota":
                form = f.RotaForm(request.POST)
                if not form.is_valid():
                    return self.render_to_response(self.get_context_data(rota_form=form))
                oncall_rota_set(actor=request.user, **form.cleaned_data)
                messages.success(request, "Rota saved.")
            else:
                raise Http404("Unknown operation.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("console:oncall"))


class NotificationListView(ConsoleListView):
    template_name = "incidents/notifications.html"
    title = "My notifications"
    nav = "notifications"
    empty = "No notifications for you."
    columns = [
        Column("When", "created_at", "time"),
        Column("Incident", "incident.incident_id", link=incident_url),
        Column("Subject", "subject"),
        Column("Message", "body", "code"),
        Column("Read", "read_at", "time"),
    ]

    def get_base_queryset(self):
        return console_notifications_for(self.request.user)

    def get_row_class(self, row) -> str:
        return "unread" if row.read_at is None else ""

    def post(self, request):
        ids = request.POST.getlist("notification") or list(
            console_notifications_for(request.user).filter(read_at__isnull=True).values_list("pk", flat=True))
        for notification in Notification.objects.filter(pk__in=ids, recipient=request.user):
            notification_mark_read(user=request.user, notification=notification)
        messages.success(request, "Marked as read.")
        return HttpResponseRedirect(reverse("console:incident-notifications"))
