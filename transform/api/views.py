"""Module Beta API: the manual's runbook paths under /api/beta/admin/ (DESIGN.md §5). Thin over
transform.services and transform.selectors; readers read, operators act, every action is audited."""
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from opsconsole.errors import ApplicationError
from opsconsole.roles import IsOperator, IsViewerOrOperator

from .. import selectors, services

MODULES = ("alpha", "beta", "gamma")


def _number(request, name: str, default: float, *, minimum: float, maximum: float, integer: bool = False) -> float:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise ApplicationError(f"Query parameter '{name}' must be {'an integer' if integer else 'a number'}.") from None
    if not minimum <= value <= maximum:
        raise ApplicationError(f"Query parameter '{name}' must be between {minimum:g} and {maximum:g}.")
    return value


def _body(request) -> dict:
    data = request.data
    if data in (None, "") or data == {}:
        return {}
    if not isinstance(data, dict):
        raise ApplicationError("Request body must be a JSON object.")
    return data


def _text(data: dict, name: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise ApplicationError(f"'{name}' must be text.")
    return value.strip()


class _Read(APIView):
    permission_classes = [IsViewerOrOperator]


class _Act(APIView):
    permission_classes = [IsOperator]


_WINDOW = OpenApiParameter("hours", float, description="Window in hours (default 24)")
_SOURCE = OpenApiParameter("source", str, description="Only this Alpha source")


class CacheStatus(_Read):
    """GET /api/beta/admin/cache/status (Runbook B.2 step 1)."""

    @extend_schema(responses={200: OpenApiResponse(description="backend, entries per source, refresh in progress")})
    def get(self, request):
        return Response(selectors.cache_status())


class CacheStats(_Read):
    """GET /api/beta/admin/cache/stats: entries and hit rates per source (B.2 step 5)."""

    @extend_schema(responses={200: OpenApiResponse(description="entries and hit rates per source")})
    def get(self, request):
        return Response(selectors.cache_stats())


class CacheRefresh(APIView):
    """POST /api/beta/admin/cache/refresh/<source> or /refresh/all: a background refresh (202);
    GET /api/beta/admin/cache/refresh/status: its progress (B.2 steps 2-4)."""

    permission_classes = [IsViewerOrOperator]

    @extend_schema(responses={200: OpenApiResponse(description="active refreshes and the last one")})
    def get(self, request, target: str):
        if target != "status":
            raise ApplicationError("Use GET .../cache/refresh/status, or POST .../cache/refresh/<source|all>.",
                                   status_code=405)
        return Response(selectors.cache_refresh_status())

    @extend_schema(request=None, responses={202: OpenApiResponse(description="the queued refresh")})
    def post(self, request, target: str):
        if target == "status":
            raise ApplicationError("'status' is read with GET.", status_code=405)
        job = services.cache_refresh_request(actor=request.user, target=target)
        return Response({"refresh": selectors.cache_refresh_latest(refresh_id=job.id),
                         "status_url": "/api/beta/admin/cache/refresh/status"}, status=status.HTTP_202_ACCEPTED)


class CacheExport(_Read):
    """GET /api/beta/admin/cache/export: every entry with its age (Beta state backup)."""

    @extend_schema(responses={200: OpenApiResponse(description="{format, exported_at, sources: {...}}")})
    def get(self, request):
        return Response(services.cache_export())


class CacheImport(_Act):
    """POST /api/beta/admin/cache/import -d @beta-cache.json (Beta recovery step 4)."""

    @extend_schema(request=dict, responses={200: OpenApiResponse(description="{loaded, entries, skipped_sources}")})
    def post(self, request):
        return Response(services.cache_import(actor=request.user, data=request.data))


class CacheClear(_Act):
    """POST /api/<module>/admin/cache/clear (Runbook E.3 step 4); for beta, body {"source": id} clears one."""

    @extend_schema(request=None, responses={200: OpenApiResponse(description="what was cleared")})
    def post(self, request, module: str):
        if module not in MODULES:
            raise ApplicationError(f"Unknown module '{module}' (alpha, beta, gamma).", status_code=404)
        data = _body(request)
        source = _text(data, "source") or None
        return Response(services.cache_clear(actor=request.user, module=module, source=source,
                                             reason=_text(data, "reason")))


class QualityStats(_Read):
    """GET /api/beta/admin/quality/stats (Runbook B.3 step 5)."""

    @extend_schema(parameters=[_WINDOW, _SOURCE], responses={200: OpenApiResponse(description="quality statistics")})
    def get(self, request):
        return Response(selectors.quality_stats(hours=_number(request, "hours", 24, minimum=0.01, maximum=24 * 90),
                                                source_id=request.query_params.get("source") or None))


class QualityDistribution(_Read):
    """GET /api/beta/admin/quality/distribution (Runbook E.2 step 1)."""

    @extend_schema(parameters=[_WINDOW, _SOURCE, OpenApiParameter("buckets", int)],
                   responses={200: OpenApiResponse(description="score histogram and thresholds")})
    def get(self, request):
        return Response(selectors.quality_distribution(
            hours=_number(request, "hours", 24, minimum=0.01, maximum=24 * 90),
            buckets=int(_number(request, "buckets", 10, minimum=1, maximum=100, integer=True)),
            source_id=request.query_params.get("source") or None))


class QualityLowScores(_Read):
    """GET /api/beta/admin/quality/low-scores?threshold=0.5&limit=100 (Runbook E.2 step 2)."""

    @extend_schema(parameters=[OpenApiParameter("threshold", float), OpenApiParameter("limit", int), _SOURCE],
                   responses={200: OpenApiResponse(description="records below the threshold, lowest first")})
    def get(self, request):
        hours = request.query_params.get("hours")
        return Response(selectors.quality_low_scores(
            threshold=_number(request, "threshold", 0.5, minimum=0, maximum=1),
            limit=int(_number(request, "limit", 100, minimum=1, maximum=1000, integer=True)),
            hours=_number(request, "hours", 24, minimum=0.01, maximum=24 * 90) if hours else None,
            source_id=request.query_params.get("source") or None))


class QualityDimensions(_Read):
    """GET /api/beta/admin/quality/dimensions (Runbook E.2 step 3)."""

    @extend_schema(parameters=[_WINDOW, _SOURCE], responses={200: OpenApiResponse(description="per-dimension breakdown")})
    def get(self, request):
        return Response(selectors.quality_dimensions(
            hours=_number(request, "hours", 24, minimum=0.01, maximum=24 * 90),
            source_id=request.query_params.get("source") or None))


class Drain(APIView):
    """POST /api/beta/admin/drain: finish the backlog, accept nothing new until resumed; GET: drain status."""

    permission_classes = [IsViewerOrOperator]

    @extend_schema(responses={200: OpenApiResponse(description="draining, drained, backlog")})
    def get(self, request):
        return Response(selectors.beta_drain_status())

    @extend_schema(request=None, responses={200: OpenApiResponse(description="draining, drained, backlog")})
    def post(self, request):
        services.beta_drain(actor=request.user, reason=_text(_body(request), "reason"))
        return Response(selectors.beta_drain_status())


class Resume(_Act):
    """POST /api/beta/admin/resume: accept records again after a drain."""

    @extend_schema(request=None, responses={200: OpenApiResponse(description="draining, drained, backlog")})
    def post(self, request):
        services.beta_resume(actor=request.user, reason=_text(_body(request), "reason"))
        return Response(selectors.beta_drain_status())


class QueueDepth(_Read):
    """GET /api/beta/admin/queues/depth (Runbook E.1 step 5)."""

    @extend_schema(responses={200: OpenApiResponse(description="records and batches awaiting transformation")})
    def get(self, request):
        return Response(selectors.beta_queue_depth())


class RuleTest(_Act):
    """POST /api/beta/admin/rules/test: {"rule": {...} | "rule_yaml": "...", "records": [...]} -> the tester's
    JSON (summary and before/after per record). Nothing in the pipeline changes."""

    @extend_schema(request=dict, responses={200: OpenApiResponse(description="{summary, results}")})
    def post(self, request):
        data = _body(request)
        if isinstance(data.get("rule"), (dict, list)):
            rule = data["rule"]
        elif isinstance(data.get("rule_yaml"), str):
            rule = services.rule_spec_parse(data["rule_yaml"])
        else:
            raise ApplicationError("Give the rule as 'rule' (an object) or 'rule_yaml' (the rule file's text).")
        records = data.get("records")
        if isinstance(records, str):
            records = services.samples_parse(records)
        if not isinstance(records, list):
            raise ApplicationError("'records' must be a list of sample records (or their JSON text).")
        return Response(services.rule_test(rule_spec=rule, records=records,
                                           enrichment=services.enrichment_registry()))


class BetaMetrics(_Read):
    """GET /api/beta/metrics: the beta_* metrics in Prometheus text (Runbook B.1 step 8: grep TRX_042)."""

    @extend_schema(responses={200: OpenApiResponse(description="Prometheus text format")})
    def get(self, request):
        text = generate_latest(REGISTRY).decode()
        keep = [line for line in text.splitlines() if line.removeprefix("# HELP ").removeprefix("# TYPE ").startswith("beta_")]
        return HttpResponse("\n".join(keep) + "\n", content_type=CONTENT_TYPE_LATEST)
