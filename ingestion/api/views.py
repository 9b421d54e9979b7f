"""Ingestion API: the http_push endpoint, and Module Alpha's operations (Runbook A).

The resource paths live under /api/ingestion/...; the manual's runbook paths under /api/alpha/admin/...
(urls.py) are aliases of the same views. Every view calls one service or selector."""
import time

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from opsconsole.errors import ApplicationError
from opsconsole.roles import CanPushRecords, IsOperator, IsViewerOrOperator

from .. import selectors
from ..filtersets import ValidationFailureFilterSet
from ..parsing import ParseError, parse_body
from ..polling import source_poll, source_test
from ..services import (
    IngestRefused, buffer_resize, buffer_status, ingestion_pause, ingestion_resume, records_ingest, source_drain,
    source_pause, source_resume, source_spec_for_ingest,
)
from . import serializers as s

_FORMATS = {"application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/json": "json", "text/csv": "csv"}


def refused_response(exc: IngestRefused) -> Response:
    """503/429 with Retry-After: the client keeps its records and sends them again later."""
    return Response({"error": exc.message, **exc.extra}, status=exc.status_code,
                    headers={"Retry-After": str(exc.retry_after)})


def _input(serializer_class, request):
    data = serializer_class(data=request.data if isinstance(request.data, dict) else {})
    data.is_valid(raise_exception=True)
    return data.validated_data


class SourceRecordsPush(APIView):
    """POST /api/sources/<source_id>/records: a JSON array, one object, JSON lines, or CSV (by Content-Type).

    503 with Retry-After while ingestion or the source is paused or the buffer is full; 429 with
    Retry-After while the buffer is throttled. Nothing of a refused request is stored."""

    permission_classes = [CanPushRecords]

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={202: OpenApiResponse(description="Accepted: batch ids, accepted and rejected counts"),
                   429: OpenApiResponse(description="Throttled by back-pressure; see Retry-After"),
                   503: OpenApiResponse(description="Ingestion paused or buffer full; see Retry-After")},
    )
    def post(self, request, source_id: str):
        spec = source_spec_for_ingest(source_id)
        if spec.get("source_type") != "http_push":
            raise ApplicationError(f"Source '{source_id}' is of type {spec.get('source_type')}, not http_push.", status_code=409)
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        limit = settings.INGEST_MAX_BODY_BYTES
        if length > limit:
            raise ApplicationError(f"Body of {length} bytes is over the limit of {limit} bytes.", status_code=413)
        body = request.body
        if len(body) > limit:
            raise ApplicationError(f"Body of {len(body)} bytes is over the limit of {limit} bytes.", status_code=413)
        if not body.strip():
            raise ApplicationError("Empty body: send a JSON array of records or JSON lines.")
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        parsing = spec.get("parsing") or {}
        fmt = _FORMATS.get(content_type) or parsing.get("format")
        started = time.perf_counter()
        try:
            parsed = parse_body(body, fmt, parsing.get("record_path"))
        except ParseError as exc:
            raise ApplicationError(f"Cannot parse body: {exc}.") from exc
        if parsed.bad:
            # A client can fix and resend its request, so nothing of a half-readable body is taken.
            shown = "; ".join(f"{pos}: {reason}" for pos, _, reason in parsed.bad[:5])
            raise ApplicationError(f"Cannot parse body: {len(parsed.bad)} unreadable entries ({shown}).",
                                   extra={"unreadable": len(parsed.bad)})
        try:
            batches = records_ingest(source_id=source_id, records=parsed.records,
                                     origin=f"push:{request.user.get_username()}", actor=request.user,
                                     parse_seconds=time.perf_counter() - started)
        except IngestRefused as exc:
            return refused_response(exc)
        return Response(
            {
                "batch_id": str(batches[0].id) if batches else None,
                "batch_ids": [str(b.id) for b in batches],
                "received": sum(b.received for b in batches),
                "accepted": sum(b.accepted for b in batches),
                "rejected": sum(b.rejected for b in batches),
            },
            status=status.HTTP_202_ACCEPTED,
        )


class SourceOperationsViewSet(viewsets.ViewSet):
    """A source's run-time state and operations: status, test, pause, resume, drain, poll now, errors."""

    permission_classes = [IsViewerOrOperator]
    lookup_field = "source_id"
    lookup_value_regex = r"[A-Za-z0-9_-]+"
    # Operators act (also the manual's GET test and GET drain); Viewers read.
    operator_actions = {"test", "pause", "resume", "drain", "poll"}

    def get_permissions(self):
        return [IsOperator()] if self.action in self.operator_actions else [IsViewerOrOperator()]

    @extend_schema(request=None, responses={200: OpenApiResponse(description="the status of every source (health grid)")})
    def list(self, request):
        return Response(selectors.source_statuses())

    @extend_schema(request=None, responses={200: OpenApiResponse(description="status, health, last poll/success/error, rates, "
                                                              "buffered records; 'status': 'disabled' when disabled")})
    def retrieve(self, request, source_id=None):
        answer = selectors.source_status(source_id=source_id)
        if answer is None:
            raise ApplicationError(f"Unknown source '{source_id}'.", status_code=404)
        return Response(answer)

    @extend_schema(request=None, responses={200: OpenApiResponse(description="as the source's detail")})
    @action(detail=True, methods=["get"])
    def status(self, request, source_id=None):
        return self.retrieve(request, source_id=source_id)

    @extend_schema(request=None, responses={200: OpenApiResponse(description="{ok, latency_ms, steps, failure: {kind, stage, message}}")})
    @action(detail=True, methods=["get", "post"])
    def test(self, request, source_id=None):
        return Response(source_test(source_id=source_id, actor=request.user))

    @extend_schema(request=s.ReasonInputSerializer, responses={200: OpenApiResponse(description="source status")})
    @action(detail=True, methods=["post"])
    def pause(self, request, source_id=None):
        source_pause(source_id=source_id, actor=request.user, reason=_input(s.ReasonInputSerializer, request)["reason"])
        return Response(selectors.source_status(source_id=source_id))

    @extend_schema(request=s.ReasonInputSerializer, responses={200: OpenApiResponse(description="source status")})
    @action(detail=True, methods=["post"])
    def resume(self, request, source_id=None):
        source_resume(source_id=source_id, actor=request.user, reason=_input(s.ReasonInputSerializer, request)["reason"])
        return Response(selectors.source_status(source_id=source_id))

    @extend_schema(request=None, responses={200: OpenApiResponse(description="{drained_records, queued_records, remaining}")})
    @action(detail=True, methods=["get", "post"])
    def drain(self, request, source_id=None):
        return Response(source_drain(source_id=source_id, actor=request.user))

    @extend_schema(request=None, responses={200: OpenApiResponse(description="the poll's outcome")})
    @action(detail=True, methods=["post"])
    def poll(self, request, source_id=None):
        """Poll a rest_api source now (the same poll beat runs on its interval)."""
        if selectors.source_status(source_id=source_id) is None:
            raise ApplicationError(f"Unknown source '{source_id}'.", status_code=404)
        from opsconsole.audit import audit_record

        result = source_poll(source_id=source_id)
        audit_record(actor=request.user, action="alpha.source.poll", target=f"source:{source_id}",
                     details={"outcome": result.outcome, "reason": result.reason, "ingested": result.ingested})
        return Response(result.as_dict())

    @extend_schema(request=None, responses={200: s.SourceErrorSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def errors(self, request, source_id=None):
        rows = selectors.source_errors(source_id=source_id)[:100]
        return Response(s.SourceErrorSerializer(rows, many=True).data)


class IngestionPause(APIView):
    """POST: pause all ingestion (polls and file scans skip, pushes answer 503 with Retry-After)."""

    permission_classes = [IsOperator]

    @extend_schema(request=s.ReasonInputSerializer, responses={200: OpenApiResponse(description="{paused, buffer}")})
    def post(self, request):
        control = ingestion_pause(actor=request.user, reason=_input(s.ReasonInputSerializer, request)["reason"])
        return Response({"paused": control.paused, "paused_at": control.paused_at, "buffer": buffer_status()})


class IngestionResume(APIView):
    """POST: resume all ingestion."""

    permission_classes = [IsOperator]

    @extend_schema(request=s.ReasonInputSerializer, responses={200: OpenApiResponse(description="{paused, buffer}")})
    def post(self, request):
        control = ingestion_resume(actor=request.user, reason=_input(s.ReasonInputSerializer, request)["reason"])
        return Response({"paused": control.paused, "buffer": buffer_status()})


class BufferStatus(APIView):
    """GET: capacity, buffered records (total, per source), alpha_buffer_utilization and back-pressure level."""

    permission_classes = [IsViewerOrOperator]

    @extend_schema(responses={200: OpenApiResponse(description="buffer status")})
    def get(self, request):
        return Response(buffer_status())


class BufferResize(APIView):
    """POST {"capacity": N}: the buffer's capacity in records, at run time."""

    permission_classes = [IsOperator]

    @extend_schema(request=s.BufferResizeInputSerializer, responses={200: OpenApiResponse(description="buffer status")})
    def post(self, request):
        data = _input(s.BufferResizeInputSerializer, request)
        return Response(buffer_resize(actor=request.user, capacity=data["capacity"], reason=data["reason"]))


class ValidationFailureViewSet(viewsets.ReadOnlyModelViewSet):
    """Validation failures, newest first; filters: source_id, error_code, field, created_after, created_before."""

    queryset = selectors.validation_failure_list()
    serializer_class = s.ValidationFailureSerializer
    filterset_class = ValidationFailureFilterSet
    permission_classes = [IsViewerOrOperator]

    @extend_schema(parameters=[OpenApiParameter("hours", float, description="window, default 1")],
                   responses={200: OpenApiResponse(description="[{source_id, error_code, count, last_at}]")})
    @action(detail=False, methods=["get"])
    def summary(self, request):
        """Validation failures by source and error code in the last hour (the manual's diagnostic query)."""
        try:
            hours = float(request.query_params.get("hours", 1))
        except ValueError as exc:
            raise ApplicationError("hours must be a number.") from exc
        if not 0 < hours <= 24 * 30:
            raise ApplicationError("hours must be more than 0 and at most 720.")
        return Response({"hours": hours, "rows": selectors.validation_failures_summary(hours=hours)})


class AlphaMetrics(APIView):
    """GET: the alpha_* metrics in Prometheus text format (the manual's `curl http://alpha:8080/metrics`)."""

    permission_classes = [IsViewerOrOperator]

    @extend_schema(responses={200: OpenApiResponse(description="Prometheus text format")})
    def get(self, request):
        text = generate_latest(REGISTRY).decode()
        lines = [line for line in text.splitlines()
                 if line.startswith(("alpha_", "# HELP alpha_", "# TYPE alpha_"))]
        return HttpResponse("\n".join(lines) + "\n", content_type=CONTENT_TYPE_LATEST)
