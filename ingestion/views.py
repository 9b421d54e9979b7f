"""Module Alpha pages of the console: the Alpha dashboard (the manual's "Module Alpha Dashboard") and the
one-click operator actions (pause/resume, test, drain, poll now, buffer resize). Thin over services."""
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from opsconsole import charts
from opsconsole.console import ConsolePageMixin, OperatorRequiredMixin, ReaderRequiredMixin
from opsconsole.errors import ApplicationError

from . import selectors
from .polling import source_poll, source_test
from .services import (
    buffer_resize, buffer_status, ingestion_pause, ingestion_resume, source_drain, source_pause, source_resume,
)


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _lines(points_by_name: dict) -> tuple[list, list[dict]]:
    """{name: [(time, value)]} on one time axis (as the selectors give them) -> the chart's times and series."""
    times = [moment for moment, _ in next(iter(points_by_name.values()), [])]
    return times, [{"name": name, "values": [value for _, value in points]} for name, points in points_by_name.items()]


def alpha_dashboard_context() -> dict:
    """Everything the dashboard's panels show, read once."""
    buffer = buffer_status()
    rate = selectors.ingestion_rate_series(minutes=60)
    buckets, stacks = selectors.validation_series(minutes=60, step=5)
    rows, kinds, counts = selectors.error_distribution(hours=1)
    from django.conf import settings

    thresholds = [(settings.ALPHA_BUFFER_WARNING, "60% warn"), (settings.ALPHA_BUFFER_THROTTLE, "80% throttle"),
                  (settings.ALPHA_BUFFER_CRITICAL, "90% critical"), (1.0, "100% pause")]
    from django.utils import timezone

    # The samples beat takes, and the fill of this very moment.
    buffer_points = [*selectors.buffer_series(minutes=60), (timezone.now(), buffer["utilization"])]
    return {
        "buffer": buffer,
        "buffer_percent": _percent(buffer["utilization"]),
        "statuses": selectors.source_statuses(),
        "rate_chart": charts.line_chart(*_lines(rate), title="Ingestion rate by source (records/second, per minute)",
                                        empty="Ingestion rate: no data yet."),
        "parse_chart": charts.line_chart(*_lines({"parse success": selectors.parse_series(minutes=60)}),
                                         title="Parse success rate", y_max=1.0, y_format=_percent,
                                         empty="Parse success rate: no records read in the last hour."),
        "parse_quantiles": selectors.histogram_quantiles("alpha_parse_duration_seconds"),
        "validation_chart": charts.bar_chart([b.strftime("%H:%M") for b in buckets],
                                             [{"name": code, "values": counts} for code, counts in stacks.items()],
                                             stacked=True, title="Validation failures by error code (5-minute buckets)",
                                             empty="Validation failures: nothing in this period."),
        "validation_pass_rate": selectors.validation_pass_rate(minutes=60),
        "validation_quantiles": selectors.histogram_quantiles("alpha_validation_duration_seconds"),
        "buffer_chart": charts.line_chart(*_lines({"buffer utilization": buffer_points}), title="Buffer utilization",
                                          y_max=1.05, y_format=_percent, thresholds=thresholds, area=True),
        "buffer_events": selectors.buffer_events(limit=10),
        "error_heatmap": charts.heatmap(rows, kinds, counts, title="Errors by source and type (last hour)",
                                        empty="Errors by source and type: nothing in this period."),
        "failure_summary": selectors.validation_failures_summary(hours=1),
    }


class AlphaDashboardView(ConsolePageMixin, TemplateView):
    template_name = "ingestion/alpha_dashboard.html"
    title = "Module Alpha dashboard"
    nav = "alpha"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **alpha_dashboard_context()}


class AlphaDashboardPanelsView(ReaderRequiredMixin, TemplateView):
    """The dashboard's panels alone; htmx refreshes them every 10 seconds."""

    template_name = "ingestion/_alpha_panels.html"

    def get_context_data(self, **kwargs):
        from opsconsole.roles import is_operator

        return {**super().get_context_data(**kwargs), **alpha_dashboard_context(),
                "user_is_operator": is_operator(self.request.user)}


class _ActionView(OperatorRequiredMixin, View):
    """POST-only operator action; goes back to `next` (same host) or the default page, with a message."""

    http_method_names = ["post"]

    def default_url(self) -> str:
        return reverse("console:alpha")

    def post(self, request, **kwargs):
        try:
            text, level = self.act(request, **kwargs)
        except ApplicationError as exc:
            text, level = str(exc), messages.ERROR
        messages.add_message(request, level, text)
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
            target = self.default_url()
        return HttpResponseRedirect(target)

    def reason(self, request) -> str:
        return request.POST.get("reason", "").strip()[:1000]


class IngestionPauseView(_ActionView):
    def act(self, request):
        ingestion_pause(actor=request.user, reason=self.reason(request))
        return "Ingestion paused: polls and file scans skip, pushes are answered 503 with Retry-After.", messages.WARNING


class IngestionResumeView(_ActionView):
    def act(self, request):
        ingestion_resume(actor=request.user, reason=self.reason(request))
        return "Ingestion resumed.", messages.SUCCESS


class BufferResizeView(_ActionView):
    def act(self, request):
        try:
            capacity = int(request.POST.get("capacity", ""))
        except ValueError as exc:
            raise ApplicationError("Capacity must be a whole number of records.") from exc
        status = buffer_resize(actor=request.user, capacity=capacity, reason=self.reason(request))
        return (f"Buffer capacity {status['previous_capacity']} → {status['capacity']} records; "
                f"utilization now {_percent(status['utilization'])} ({status['level']})."), messages.SUCCESS


class _SourceActionView(_ActionView):
    def default_url(self) -> str:
        return reverse("console:source-detail", args=[self.kwargs["source_id"]])


class SourcePauseView(_SourceActionView):
    def act(self, request, source_id):
        source_pause(source_id=source_id, actor=request.user, reason=self.reason(request))
        return f"Source {source_id} paused.", messages.WARNING


class SourceResumeView(_SourceActionView):
    def act(self, request, source_id):
        source_resume(source_id=source_id, actor=request.user, reason=self.reason(request))
        return f"Source {source_id} resumed.", messages.SUCCESS


class SourceTestView(_SourceActionView):
    def act(self, request, source_id):
        answer = source_test(source_id=source_id, actor=request.user)
        steps = ", ".join(f"{s['step']} {s.get('latency_ms', '')} ms" if s["ok"] else f"{s['step']} failed"
                          for s in answer["steps"])
        if answer["ok"]:
            return f"Test of {source_id}: OK in {answer['latency_ms']} ms ({steps}).", messages.SUCCESS
        failure = answer["failure"]
        return (f"Test of {source_id} failed after {answer['latency_ms']} ms: {failure['kind']} at "
                f"{failure['stage']}: {failure['message']}"), messages.ERROR


class SourceDrainView(_SourceActionView):
    def act(self, request, source_id):
        result = source_drain(source_id=source_id, actor=request.user)
        return (f"Drained {source_id}: {result['drained_records']} records transformed now, "
                f"{result['queued_records']} queued to Beta, {result['remaining']} still buffered."), messages.SUCCESS


class SourcePollView(_SourceActionView):
    def act(self, request, source_id):
        from opsconsole.audit import audit_record

        result = source_poll(source_id=source_id)
        audit_record(actor=request.user, action="alpha.source.poll", target=f"source:{source_id}",
                     details={"outcome": result.outcome, "reason": result.reason, "ingested": result.ingested})
        if result.outcome == "failed":
            return f"Poll of {source_id} failed: {result.reason}", messages.ERROR
        if result.outcome == "skipped":
            return f"Poll of {source_id} skipped: {result.reason}", messages.WARNING
        return (f"Poll of {source_id}: {result.pages} page(s), {result.ingested} new record(s), "
                f"{result.duplicates} already taken."), messages.SUCCESS
