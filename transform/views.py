"""Module Beta console pages: the dashboard, quality, the rule tester, the enrichment cache.
Thin over transform.selectors and transform.services (the API calls the same ones)."""
import yaml
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from opsconsole import charts
from opsconsole.console import (
    ConsolePageMixin,
    OperatorRequiredMixin,
    ReaderRequiredMixin,
)
from opsconsole.errors import ApplicationError

from . import selectors, services

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


def _float(value, default: float, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return min(high, max(low, number))


def _quality_histogram(distribution: dict):
    """The manual's "bar chart with threshold markers": scores over [0, 1], a marker per quality level."""
    return charts.histogram(distribution["buckets"], thresholds=charts.named_thresholds(distribution["thresholds"]),
                            title="Quality score distribution", unit="records")


class DashboardView(ConsolePageMixin, TemplateView):
    """The manual's Module Beta dashboard: throughput, quality distribution, enrichment, rule heat map,
    schema mapping, resources; plus queue depth and the drain switch."""

    template_name = "transform/dashboard.html"
    title = "Module Beta"
    nav = "beta"

    def get_context_data(self, **kwargs):
        minutes = int(_float(self.request.GET.get("minutes"), 60, 5, 24 * 60))
        data = selectors.beta_dashboard(minutes=minutes)
        labels = [timezone.localtime(t).strftime("%H:%M") for t in data["labels"]]
        peak = max([c for row in data["rules"] for c in row["cells"] if c is not None] + [0])
        for row in data["rules"]:
            row["styled"] = [(c, charts.heat_colour(c, peak)) for c in row["cells"]]
        for row in data["schemas"]:
            row["chart"] = charts.bar_chart(labels, [
                {"name": "mapped", "values": [ok for ok, _ in row["series"]], "color": charts.GOOD},
                {"name": "failed", "values": [bad for _, bad in row["series"]], "color": charts.BAD},
            ], stacked=True, percent=True, axes=False, legend=False, height=80,
                title=f"Schema {row['schema']} mapping success")
        distribution = data["quality"]["distribution"]
        baseline = data["throughput"]["baseline"]
        return {
            **super().get_context_data(**kwargs),
            "d": data,
            "labels": labels,
            "throughput_chart": charts.bar_chart(
                labels, [{"name": "records transformed", "values": data["throughput"]["series"], "color": charts.GOOD}],
                thresholds=[] if baseline is None else
                [charts.Threshold(baseline, f"baseline {baseline:g}", "baseline", charts.THRESHOLD_COLOURS["baseline"])],
                title="Records transformed per slot"),
            "quality_chart": _quality_histogram(distribution),
            "minutes_choices": [15, 60, 360, 1440],
        }


class DashboardPanelView(ReaderRequiredMixin, TemplateView):
    """The queue and drain panel alone; htmx refreshes it every 5 seconds."""

    template_name = "transform/_queue_panel.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "drain": selectors.beta_drain_status()}


class DrainView(OperatorRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request):
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("action") == "resume":
            services.beta_resume(actor=request.user, reason=reason)
            messages.success(request, "Module Beta resumed: ingestion accepts records again.")
        else:
            services.beta_drain(actor=request.user, reason=reason)
            messages.warning(request, "Module Beta is draining: ingestion refuses new records until resumed.")
        return HttpResponseRedirect(reverse("console:beta:dashboard"))


class QualityView(ConsolePageMixin, TemplateView):
    """Runbook E.2 on one page: distribution with thresholds, dimensions, low-scored records."""

    template_name = "transform/quality.html"
    title = "Quality scores (Beta)"
    nav = "beta-quality"

    def get_context_data(self, **kwargs):
        hours = _float(self.request.GET.get("hours"), 24, 0.1, 24 * 90)
        threshold = _float(self.request.GET.get("threshold"), 0.5, 0, 1)
        source = self.request.GET.get("source") or None
        distribution = selectors.quality_distribution(hours=hours, source_id=source)
        return {
            **super().get_context_data(**kwargs),
            "hours": hours, "threshold": threshold, "source": source or "",
            "stats": selectors.quality_stats(hours=hours, source_id=source),
            "distribution": distribution,
            "chart": _quality_histogram(distribution),
            "dimensions": selectors.quality_dimensions(hours=hours, source_id=source),
            "low": selectors.quality_low_scores(threshold=threshold, limit=100, hours=hours, source_id=source),
        }


class RuleTesterView(ConsolePageMixin, TemplateView):
    """The beta-rule-tester in the console: paste or upload a rule and samples, see before/after per record."""

    template_name = "transform/tester.html"
    title = "Rule tester (Beta)"
    nav = "beta-tester"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rules = list(selectors.transform_rule_list())
        context.setdefault("rule_text", "")
        context.setdefault("samples_text", "")
        context.update(rules=rules)
        return context

    def post(self, request):
        if not self.get_context_data()["user_is_operator"]:
            messages.error(request, "Testing rules needs an operator role (Operations Team or above).")
            return HttpResponseRedirect(reverse("console:beta:tester"))
        applied = request.POST.get("applied_rule", "")
        context = {"rule_text": request.POST.get("rule_text", ""), "samples_text": request.POST.get("samples_text", ""),
                   "applied_rule": applied}
        try:
            rule_text = context["rule_text"] = _upload_or_text(request, "rule_file", "rule_text")
            samples_text = context["samples_text"] = _upload_or_text(request, "samples_file", "samples_text")
            if applied and not rule_text.strip():
                rule = next((r.spec for r in selectors.transform_rule_list() if r.rule_id == applied), None)
                if rule is None:
                    raise ApplicationError(f"No applied rule '{applied}'.")
                context["rule_text"] = yaml.safe_dump(rule, sort_keys=False, allow_unicode=True)
            else:
                rule = services.rule_spec_parse(rule_text)
            records = services.samples_parse(samples_text)
            context["result"] = services.rule_test(rule_spec=rule, records=records,
                                                   enrichment=services.enrichment_registry())
        except ApplicationError as exc:
            context["error"] = exc.message
            context["errors"] = exc.extra.get("errors", [])
        return self.render_to_response(self.get_context_data(**context))


def _upload_or_text(request, file_field: str, text_field: str) -> str:
    upload = request.FILES.get(file_field)
    if upload is not None:
        if upload.size > MAX_UPLOAD_BYTES:
            raise ApplicationError(f"{upload.name} is over {MAX_UPLOAD_BYTES // 1048576} MB; test with a smaller sample.")
        return upload.read().decode("utf-8", errors="replace")
    return request.POST.get(text_field, "")


class CacheView(ConsolePageMixin, TemplateView):
    """Runbook B.2 in the console: status and stats per source, refresh (with live progress), clear, export."""

    template_name = "transform/cache.html"
    title = "Enrichment cache (Beta)"
    nav = "beta-cache"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "status": selectors.cache_status()}


class CacheRefreshPanelView(ReaderRequiredMixin, TemplateView):
    template_name = "transform/_refresh_panel.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "refresh": selectors.cache_refresh_status()}


class CacheActionView(OperatorRequiredMixin, View):
    """POST: refresh a source (or all), or clear the cache (the services audit it)."""

    http_method_names = ["post"]

    def post(self, request):
        action = request.POST.get("action")
        source = request.POST.get("source", "").strip()
        try:
            if action == "refresh":
                job = services.cache_refresh_request(actor=request.user, target=source or "all")
                messages.success(request, f"Cache refresh #{job.id} of {job.target} queued; progress below.")
            elif action == "clear":
                result = services.cache_clear(actor=request.user, module="beta", source=source or None,
                                              reason=request.POST.get("reason", "").strip())
                messages.success(request, f"Cleared {result['cleared']['enrichment_entries']} cache entries "
                                          f"({result['cleared']['enrichment_source']}).")
            else:
                messages.error(request, "Unknown cache action.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return HttpResponseRedirect(reverse("console:beta:cache"))
