"""Module Gamma API: the runbook paths of C.1-C.3 (DESIGN.md §5). Views validate input and call services."""
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from configuration.runtime import pipeline_runtime
from opsconsole.errors import ApplicationError

from .. import breakers, destination_ops, dlq, operations
from ..filtersets import DeadLetterFilterSet
from ..models import BreakerTransition, DeadLetter, OperationRun
from . import serializers as s


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class DeadLetterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """`/api/gamma/admin/dlq/...`: entries, stats, analysis, replay, purge, export, triage, correct."""

    queryset = DeadLetter.objects.order_by("-last_failed_at", "-id")
    filterset_class = DeadLetterFilterSet

    def get_serializer_class(self):
        return s.DeadLetterDetailSerializer if self.action == "retrieve" else s.DeadLetterSerializer

    @extend_schema(responses={200: dict})
    @action(detail=False, methods=["get"])
    def stats(self, request):
        return Response(dlq.dlq_stats())

    @extend_schema(responses={200: dict})
    @action(detail=False, methods=["get"])
    def analysis(self, request):
        return Response(dlq.dlq_analysis())

    @extend_schema(request=s.SelectionSerializer, responses={200: dict, 202: dict})
    @action(detail=False, methods=["post"])
    def replay(self, request):
        data = _valid(s.SelectionSerializer, request)
        result = operations.dlq_replay(actor=request.user, entry_ids=data.get("entry_ids"), filter=data.get("filter"),
                                       reason=data["reason"])
        return Response(result, status=202 if "operation_id" in result else 200)

    @extend_schema(request=s.SelectionSerializer, responses={200: dict, 202: dict})
    @action(detail=False, methods=["post"])
    def purge(self, request):
        data = _valid(s.SelectionSerializer, request)
        result = operations.dlq_purge(actor=request.user, entry_ids=data.get("entry_ids"), filter=data.get("filter"),
                                      reason=data["reason"])
        return Response(result, status=202 if "operation_id" in result else 200)

    @extend_schema(request=s.SelectionSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def triage(self, request):
        data = _valid(s.SelectionSerializer, request)
        return Response({"triaged": dlq.dead_letters_triage(actor=request.user, entry_ids=data.get("entry_ids"),
                                                            note=data["reason"])})

    @extend_schema(request=s.SelectionSerializer, responses={200: dict})
    @action(detail=False, methods=["post"], url_path="mark-exported")
    def mark_exported(self, request):
        data = _valid(s.SelectionSerializer, request)
        return Response({"exported": dlq.dead_letters_mark_exported(actor=request.user, entry_ids=data.get("entry_ids"),
                                                                    reason=data["reason"])})

    @extend_schema(request=s.CorrectSerializer, responses={200: s.DeadLetterDetailSerializer})
    @action(detail=True, methods=["post"])
    def correct(self, request, pk=None):
        data = _valid(s.CorrectSerializer, request)
        entry = dlq.dead_letter_correct(actor=request.user, entry_id=int(pk), payload=data["payload"], note=data["note"])
        return Response(s.DeadLetterDetailSerializer(entry).data)

    @extend_schema(responses={200: bytes})
    @action(detail=False, methods=["get"])
    def export(self, request):
        """Stream the entries (filters as for the list) as ?format=json (default), jsonl or csv."""
        fmt = request.query_params.get("format", "json")
        if fmt not in operations.EXPORT_FORMATS:
            raise ApplicationError(f"format must be one of {', '.join(operations.EXPORT_FORMATS)}.")
        queryset = self.filter_queryset(self.get_queryset())
        content_type = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}[fmt]
        response = StreamingHttpResponse(operations.export_chunks(operations.export_rows(queryset), fmt),
                                         content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="dlq_export.{fmt}"'
        return response

    @extend_schema(request=s.ExportJobSerializer, responses={202: s.OperationRunSerializer})
    @action(detail=False, methods=["post"], url_path="export-jobs")
    def export_job(self, request):
        data = _valid(s.ExportJobSerializer, request)
        run = operations.dlq_export_start(actor=request.user, fmt=data["format"], filter=data.get("filter"))
        return Response(s.OperationRunSerializer(run).data, status=202)


class OperationRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Progress of long replays, purges and exports."""

    queryset = OperationRun.objects.all()
    serializer_class = s.OperationRunSerializer

    @extend_schema(responses={200: bytes})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        run = self.get_object()
        path = operations.export_path(run)
        if run.kind != "dlq_export" or run.status != "done" or not path.exists():
            raise ApplicationError("This operation has no finished export to download.", status_code=409)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


class CircuitBreakerStatus(APIView):
    """GET /api/gamma/admin/circuit-breakers/status: every destination's breaker, and recent transitions."""

    @extend_schema(responses={200: dict})
    def get(self, request):
        destinations = pipeline_runtime().destinations
        items = [s.CircuitBreakerSerializer(breakers.breaker_get(d)).data for d in sorted(destinations)]
        transitions = BreakerTransition.objects.select_related("actor")[:50]
        return Response({
            "circuit_breakers": items,
            "open": [i["destination_id"] for i in items if i["state"] == "OPEN"],
            "recent_transitions": s.BreakerTransitionSerializer(transitions, many=True).data,
        })


class CircuitBreakerReset(APIView):
    """POST /api/gamma/admin/circuit-breakers/<dest_id>/reset (audited)."""

    @extend_schema(request=s.ResetSerializer, responses={200: s.CircuitBreakerSerializer})
    def post(self, request, destination_id: str):
        data = _valid(s.ResetSerializer, request)
        breaker = breakers.breaker_reset(actor=request.user, destination_id=destination_id, reason=data["reason"])
        return Response(s.CircuitBreakerSerializer(breaker).data)


class DestinationTest(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, destination_id: str):
        result = destination_ops.destination_test(destination_id=destination_id)
        return Response(result, status=200 if result["ok"] else 502)


class DestinationTestDelivery(APIView):
    @extend_schema(request=dict, responses={200: dict})
    def post(self, request, destination_id: str):
        result = destination_ops.destination_test_delivery(actor=request.user, destination_id=destination_id,
                                                           payload=request.data)
        return Response(result, status=200 if result["ok"] else 502)


class DestinationStatus(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, destination_id: str):
        return Response(destination_ops.destination_status(destination_id=destination_id))


class DestinationErrors(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request, destination_id: str):
        since = destination_ops.parse_since(request.query_params.get("since"))
        return Response(destination_ops.destination_errors(destination_id=destination_id, since=since))
