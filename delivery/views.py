"""Console pages of Module Gamma: the DLQ review workflow (Runbook C.2), circuit breakers (C.3), a
destination's page (C.1 tests and status) and the Module Gamma dashboard.

Thin: forms parse what operators type, delivery.dlq / operations / breakers / destination_ops act (and
audit), delivery.selectors read. Pages are for readers; every POST needs an operator role (403 otherwise).
"""
import json
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from opsconsole.console import Column, ConsoleListView, ConsolePageMixin, OperatorRequiredMixin, ReaderRequiredMixin
from opsconsole.errors import ApplicationError
from opsconsole.roles import is_operator

from . import breakers, destination_ops, dlq, operations
from . import selectors as s
from .choices import DLQ_OPEN_STATES, OperationStatus
from .filtersets import DeadLetterFilterSet
from .forms import BULK_ACTIONS, BreakerResetForm, BulkActionForm, CorrectForm, EntryActionForm, TestDeliveryForm

# Transitions of DeadLetter an operator starts from the entry page (correct has its own form).
ENTRY_ACTIONS = {"triage": "Triage", "replay": "Replay", "export": "Mark exported", "purge": "Purge"}
DASHBOARD_WINDOWS = {"15m": "15 minutes", "1h": "hour", "6h": "6 hours", "24h": "24 hours"}


def is_htmx(request) -> bool:
    return bool(getattr(request, "htmx", False))


def entry_url(row) -> str:
    return reverse("console:dlq-entry", args=[row.id])


def destination_url(row) -> str | None:
    destination_id = row.destination_id if hasattr(row, "destination_id") else row.get("destination_id")
    return reverse("console:destination-detail", args=[destination_id]) if destination_id else None


def filter_from_query(query: QueryDict) -> dict | None:
    """The page's filter as the services' selection filter ({"category": "permanent", ...}); None when the
    filter form is invalid. Uses the same FilterSet as the list, so both always agree."""
    filterset = DeadLetterFilterSet(query, queryset=s.dead_letter_list())
    if not filterset.is_valid():
        return None
    return {k: v for k, v in filterset.form.cleaned_data.items() if v not in (None, "")}


def matching_open_count(selection_filter: dict | None) -> int:
    """How many entries "select all matching the filter" acts on (the services skip closed states unless
    the filter names a state)."""
    if selection_filter is None:
        return 0
    if not selection_filter:
        return dlq.dead_letters_open().count()
    return dlq.dead_letters_select(filter=selection_filter).count()


def dlq_charts(stats: dict) -> dict:
    """Chart data from dlq_stats(): growth per hour over 24 h and the age of open entries. A queue that
    stayed empty gets no chart (the template says so) rather than a flat line of zeros."""
    growth = stats["growth_per_hour"]
    added = [h["added"] for h in growth]
    return {
        "growth_times": [datetime.fromisoformat(h["hour_start"]) for h in growth],
        "growth_series": [{"name": "entries added", "values": added}] if any(added) else [],
        "age_categories": list(stats["age_distribution"]),
        "age_series": [{"name": "open entries", "values": list(stats["age_distribution"].values())}] if stats["size"] else [],
    }


# --- DLQ review -----------------------------------------------------------------------------------


class DeadLetterReviewView(ConsoleListView):
    """The DLQ with its summary, filters, per-row and select-all selection, and bulk actions."""

    template_name = "delivery/dlq_list.html"
    title = "Dead letter queue"
    nav = "dlq"
    filterset_class = DeadLetterFilterSet
    empty = "The dead letter queue is empty."
    columns = [
        Column("Entry", "id", link=entry_url),
        Column("Last failed", "last_failed_at", "time"),
        Column("Source", "source_id", link=lambda r: reverse("console:source-detail", args=[r.source_id])),
        Column("Destination", "destination_id", link=destination_url),
        Column("Category", "category", "status"),
        Column("Reason", "reason", "code"),
        Column("HTTP", "http_status"),
        Column("Attempts", "attempts", "number"),
        Column("Retry eligible", "retry_eligible", "bool"),
        Column("First failed", "first_failed_at", "time"),
    ]

    def get_base_queryset(self):
        return s.dead_letter_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        selection_filter = filter_from_query(self.request.GET)
        stats = dlq.dlq_stats()
        context.update(
            stats=stats,
            **dlq_charts(stats),
            by_category=sorted(stats["by_category"].items(), key=lambda kv: -kv[1]),
            oldest_failure=datetime.fromisoformat(stats["oldest_failure"]) if stats["oldest_failure"] else None,
            query=self.request.GET.urlencode(),
            selection_filter=selection_filter,
            matching_count=matching_open_count(selection_filter),
            bulk_actions=BULK_ACTIONS,
            export_formats=operations.EXPORT_FORMATS,
            operations_recent=s.operation_runs_recent(limit=5),
        )
        return context


class DeadLetterBulkView(OperatorRequiredMixin, View):
    """POST a bulk action (triage, replay, mark exported, purge, export file) on the ticked entries or on
    everything matching the page's filter. htmx gets the outcome panel; a plain form post a redirect."""

    http_method_names = ["post"]

    def post(self, request):
        query = QueryDict(request.POST.get("query", ""))
        form = BulkActionForm(request.POST)
        outcome = {"action": request.POST.get("action", "")}
        changed = False
        if not form.is_valid():
            outcome["error"] = "; ".join(" ".join(errors) for errors in form.errors.values())
        else:
            data = form.cleaned_data
            outcome["action"] = data["action"]
            try:
                changed = self.act(request, data, query, outcome)
            except ApplicationError as exc:
                outcome["error"] = exc.message
        if is_htmx(request):
            response = render(request, "delivery/_dlq_outcome.html", {"outcome": outcome, "bulk_actions": BULK_ACTIONS})
            if changed:
                response["HX-Trigger"] = "dlq-changed"
            return response
        if "error" in outcome:
            messages.error(request, outcome["error"])
        else:
            messages.success(request, outcome["message"])
            for refusal in outcome.get("refused", [])[:50]:
                messages.warning(request, f"Entry {refusal['entry_id']}: {refusal['reason']}")
        return HttpResponseRedirect(reverse("console:dlq") + (f"?{query.urlencode()}" if query else ""))

    def selection(self, data: dict, query: QueryDict) -> dict:
        """{"entry_ids": [...]} for ticked rows, {"filter": {...}} for "select all matching the filter"."""
        if not data["select_all"]:
            return {"entry_ids": data["entry_ids"]}
        selection_filter = filter_from_query(query)
        if selection_filter is None:
            raise ApplicationError("The page's filter is not valid; fix it before selecting everything it matches.")
        if selection_filter:
            return {"filter": selection_filter}
        ids = list(dlq.dead_letters_open().order_by("id").values_list("id", flat=True))
        if not ids:
            raise ApplicationError("No open entries to act on.")
        return {"entry_ids": ids}

    def ids(self, selection: dict) -> list[int]:
        """Triage and mark-exported take ids: resolve a filter selection with the services' own selector."""
        if "entry_ids" in selection:
            return selection["entry_ids"]
        ids = list(dlq.dead_letters_select(**selection).order_by("id").values_list("id", flat=True))
        if not ids:
            raise ApplicationError("No entries match the filter.")
        return ids

    def act(self, request, data: dict, query: QueryDict, outcome: dict) -> bool:
        actor, reason, action = request.user, data["reason"].strip(), data["action"]
        if action == "export":
            selection_filter = filter_from_query(query)
            if selection_filter is None:
                raise ApplicationError("The page's filter is not valid.")
            run = operations.dlq_export_start(actor=actor, fmt=data["format"] or "jsonl", filter=selection_filter or None)
            outcome.update(message=f"Export of {run.total} entries started ({run.params['format']}).", operation=run)
            return False
        selection = self.selection(data, query)
        if action == "triage":
            count = dlq.dead_letters_triage(actor=actor, entry_ids=self.ids(selection), note=reason)
            outcome["message"] = f"Triaged {count} entr{'y' if count == 1 else 'ies'}."
        elif action == "mark_exported":
            count = dlq.dead_letters_mark_exported(actor=actor, entry_ids=self.ids(selection), reason=reason)
            outcome["message"] = f"Marked {count} entr{'y' if count == 1 else 'ies'} as exported."
        elif action == "replay":
            result = operations.dlq_replay(actor=actor, reason=reason, **selection)
            self.result(result, "replayed", "Replayed", outcome)
        elif action == "purge":
            result = operations.dlq_purge(actor=actor, reason=reason, **selection)
            self.result(result, "purged", "Purged", outcome)
        return True

    def result(self, result: dict, key: str, verb: str, outcome: dict) -> None:
        if "operation_id" in result:
            run = s.operation_run_get(run_id=result["operation_id"])
            outcome.update(message=f"{verb[:-1]}ing {result['total']} entries in the background.", operation=run)
            return
        refused = result["refused"]
        outcome.update(message=f"{verb} {result[key]}" + (f"; refused {len(refused)}." if refused else "."),
                       refused=refused, count=result[key])


class OperationRunView(ReaderRequiredMixin, TemplateView):
    """Progress of a long replay, purge or export: htmx polls the partial until it is done."""

    def get_template_names(self):
        return ["delivery/_operation.html" if is_htmx(self.request) else "delivery/operation.html"]

    def get_context_data(self, **kwargs):
        run = s.operation_run_get(run_id=self.kwargs["run_id"])
        if run is None:
            raise Http404("Unknown operation.")
        context = super().get_context_data(**kwargs)
        context.update(run=run, title=f"Operation {run.id}", nav="dlq", user_is_operator=is_operator(self.request.user))
        return context

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        if is_htmx(self.request) and context["run"].status in (OperationStatus.DONE, OperationStatus.FAILED):
            response["HX-Trigger"] = "dlq-changed"  # the list and summary refresh once the work is done
        return response


def entry_context(request, entry, correct_form=None) -> dict:
    """What the entry page shows; the correct view re-renders it with a bound form on errors."""
    payloads = s.dead_letter_payloads(entry)
    available = {t.name for t in entry.get_available_state_transitions()}
    return {
        "entry": entry,
        "title": f"DLQ entry {entry.id}",
        "nav": "dlq",
        "payloads": payloads,
        "current_json": json.dumps(payloads["current"], indent=2, sort_keys=True, default=str),
        "original_json": json.dumps(payloads["original"], indent=2, sort_keys=True, default=str),
        "corrected_json": json.dumps(payloads["corrected"], indent=2, sort_keys=True, default=str),
        "actions": [(name, label) for name, label in ENTRY_ACTIONS.items() if name in available],
        "can_correct": "correct" in available,
        "correct_form": correct_form or CorrectForm(initial={
            "payload": json.dumps(payloads["current"], indent=2, sort_keys=True, default=str), "note": entry.note}),
        "history": s.dead_letter_history(entry=entry),
        "related": s.dead_letters_of_record(entry=entry),
        "record_status": entry.record.status,
        "is_open": entry.state in DLQ_OPEN_STATES,
    }


class DeadLetterDetailView(ConsolePageMixin, TemplateView):
    template_name = "delivery/dlq_entry.html"
    nav = "dlq"

    def get_context_data(self, **kwargs):
        entry = s.dead_letter_get(entry_id=self.kwargs["entry_id"])
        if entry is None:
            raise Http404("Unknown DLQ entry.")
        self.title = f"DLQ entry {entry.id}"
        return {**super().get_context_data(**kwargs), **entry_context(self.request, entry)}


class DeadLetterCorrectView(OperatorRequiredMixin, View):
    """POST a corrected payload (JSON object) for an entry; it is kept next to the original."""

    http_method_names = ["post"]

    def post(self, request, entry_id: int):
        entry = s.dead_letter_get(entry_id=entry_id)
        if entry is None:
            raise Http404("Unknown DLQ entry.")
        form = CorrectForm(request.POST)
        if form.is_valid():
            try:
                dlq.dead_letter_correct(actor=request.user, entry_id=entry.id, payload=form.cleaned_data["payload"],
                                        note=form.cleaned_data["note"])
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, f"Entry {entry.id} corrected; the original payload is kept. Replay it to deliver.")
                url = reverse("console:dlq-entry", args=[entry.id])
                if is_htmx(request):
                    return HttpResponse(status=204, headers={"HX-Redirect": url})
                return HttpResponseRedirect(url)
        context = entry_context(request, entry, correct_form=form)
        if is_htmx(request):
            return render(request, "delivery/_correct_form.html", context)
        from monitoring.selectors import pipeline_status

        return render(request, "delivery/dlq_entry.html",
                      {**context, "pipeline_status": pipeline_status(), "user_is_operator": True}, status=400)


class DeadLetterActionView(OperatorRequiredMixin, View):
    """POST one transition of one entry (triage, replay, export, purge) through the same services as the
    bulk actions; the page reloads with the outcome."""

    http_method_names = ["post"]

    def post(self, request, entry_id: int, action: str):
        if action not in ENTRY_ACTIONS:
            raise Http404("Unknown action.")
        form = EntryActionForm(request.POST)
        form.is_valid()
        reason = (form.cleaned_data.get("reason") or "").strip()
        actor, ids = request.user, [entry_id]
        try:
            if action == "triage":
                dlq.dead_letters_triage(actor=actor, entry_ids=ids, note=reason)
                messages.success(request, f"Entry {entry_id} triaged.")
            elif action == "export":
                dlq.dead_letters_mark_exported(actor=actor, entry_ids=ids, reason=reason)
                messages.success(request, f"Entry {entry_id} marked as exported.")
            else:
                call = operations.dlq_replay if action == "replay" else operations.dlq_purge
                result = call(actor=actor, entry_ids=ids, reason=reason)
                done = result["replayed" if action == "replay" else "purged"]
                if done:
                    messages.success(request, f"Entry {entry_id} {'replayed' if action == 'replay' else 'purged'}.")
                for refusal in result["refused"]:
                    messages.error(request, f"{ENTRY_ACTIONS[action]} refused: {refusal['reason']}.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("console:dlq-entry", args=[entry_id]))


# --- Circuit breakers -------------------------------------------------------------------------------


class BreakerBoardView(ConsolePageMixin, TemplateView):
    """Runbook C.3: every destination's breaker, green / yellow / red, and the latest transitions."""

    template_name = "delivery/breakers.html"
    title = "Circuit breakers"
    nav = "breakers"

    def get_context_data(self, **kwargs):
        board = s.breaker_board()
        return {**super().get_context_data(**kwargs), "board": board,
                "open_count": sum(1 for b in board if b["state"] == "open"),
                "transitions": s.breaker_transitions_recent(limit=50)}


class BreakerResetView(OperatorRequiredMixin, View):
    """POST: close a destination's breaker and release its held deliveries (audited by the service)."""

    http_method_names = ["post"]

    def post(self, request, destination_id: str):
        form = BreakerResetForm(request.POST)
        form.is_valid()
        note, error = "", ""
        try:
            breaker = breakers.breaker_reset(actor=request.user, destination_id=destination_id,
                                             reason=(form.cleaned_data.get("reason") or "").strip())
            note = f"Reset: the breaker of {destination_id} is {breaker.get_state_display()}; held deliveries released."
        except ApplicationError as exc:
            if exc.status_code == 404:
                raise Http404(exc.message) from exc
            error = exc.message
        if is_htmx(request):
            [card] = s.breaker_board(destination_id=destination_id) or [None]
            if card is None:
                raise Http404("Unknown destination.")
            return render(request, "delivery/_breaker_card.html",
                          {"b": card, "note": note, "error": error, "user_is_operator": True})
        (messages.error if error else messages.success)(request, error or note)
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = reverse("console:breakers")
        return HttpResponseRedirect(back)


# --- Destinations --------------------------------------------------------------------------------------


class DestinationDetailView(ConsolePageMixin, TemplateView):
    """Runbook C.1/C.3 for one destination: status, breaker, latency, errors of the last hour, tests."""

    template_name = "delivery/destination_detail.html"
    nav = "destinations"

    def get_context_data(self, **kwargs):
        destination_id = self.kwargs["destination_id"]
        try:
            status = destination_ops.destination_status(destination_id=destination_id)
            errors = destination_ops.destination_errors(destination_id=destination_id, since=timedelta(hours=1))
        except ApplicationError as exc:
            raise Http404(exc.message) from exc
        self.title = f"Destination {destination_id}"
        # The services answer ISO strings (the API's shape); the page shows times in the operator's zone.
        for error in errors["errors"]:
            error["at"] = datetime.fromisoformat(error["at"])
        last_success = datetime.fromisoformat(status["last_success"]) if status["last_success"] else None
        destination = next((d for d in s.destination_list() if d.destination_id == destination_id), None)
        [card] = s.breaker_board(destination_id=destination_id) or [None]
        return {
            **super().get_context_data(**kwargs),
            "destination_id": destination_id,
            "status": status,
            "last_success": last_success,
            "errors": errors,
            "destination": destination,
            "breaker": card,
            "routes": s.routing_rules_to(destination_id=destination_id),
            "dlq_open": s.dead_letters_open_count(destination_id=destination_id),
            "dlq_url": reverse("console:dlq") + "?" + urlencode({"destination_id": destination_id}),
            "test_delivery_form": TestDeliveryForm(),
        }


class DestinationTestView(OperatorRequiredMixin, View):
    """POST: connect and authenticate (Runbook C.1 step 5); the result is shown inline."""

    http_method_names = ["post"]

    def post(self, request, destination_id: str):
        try:
            result = destination_ops.destination_test(destination_id=destination_id)
        except ApplicationError as exc:
            raise Http404(exc.message) from exc
        return render(request, "delivery/_destination_result.html", {"result": result, "kind": "test"})


class DestinationTestDeliveryView(OperatorRequiredMixin, View):
    """POST: send one record marked as a test (Runbook C.1 step 6), shown inline; audited by the service."""

    http_method_names = ["post"]

    def post(self, request, destination_id: str):
        form = TestDeliveryForm(request.POST)
        result = None
        if form.is_valid():
            try:
                result = destination_ops.destination_test_delivery(actor=request.user, destination_id=destination_id,
                                                                   payload=form.cleaned_data["payload"])
            except ApplicationError as exc:
                if exc.status_code == 404:
                    raise Http404(exc.message) from exc
                form.add_error("payload", exc.message)
        return render(request, "delivery/_test_delivery.html",
                      {"result": result, "kind": "test-delivery", "test_delivery_form": form, "destination_id": destination_id})


# --- The Module Gamma dashboard -------------------------------------------------------------------------


class GammaDashboardView(ConsolePageMixin, TemplateView):
    """The manual's Module Gamma Dashboard: delivery rate, destination health, acknowledgments, DLQ status,
    latency per destination and retry analysis, from the database (no sampled or invented data)."""

    template_name = "delivery/dashboard.html"
    title = "Module Gamma dashboard"
    nav = "gamma"

    def get_context_data(self, **kwargs):
        window = self.request.GET.get("window", "1h")
        if window not in DASHBOARD_WINDOWS:
            window = "1h"
        now = timezone.now()
        since = now - destination_ops.parse_since(window)
        rate = s.delivery_rate_series(since=since, now=now)
        acks = s.acknowledgment_series(since=since, now=now)
        health = s.destination_health(since=since, now=now)
        timed = [h for h in health if h["p50"] is not None]
        retries = s.retry_attempt_distribution(since=since)
        stats = dlq.dlq_stats(now=now)
        window_label = DASHBOARD_WINDOWS[window]
        return {
            **super().get_context_data(**kwargs),
            "window": window, "windows": DASHBOARD_WINDOWS, "window_label": window_label, "since": since, "now": now,
            "empty": f"No deliveries in the last {window_label}.",
            "rate": rate,
            "acks": acks,
            "health": health,
            "latency_categories": [h["destination_id"] for h in timed],
            "latency_series": [{"name": q, "values": [h[q] for h in timed]} for q in ("p50", "p95", "p99")],
            "retries": retries,
            "retry_categories": [str(r["attempts"]) for r in retries],
            "retry_series": [{"name": "batch deliveries", "values": [r["deliveries"] for r in retries]}],
            "dlq": stats,
            **{f"dlq_{key}": value for key, value in dlq_charts(stats).items()},
            "dlq_by_category": sorted(stats["by_category"].items(), key=lambda kv: -kv[1]),
            "open_breakers": [h["destination_id"] for h in health if h["breaker"]["state"] == "open"],
        }
