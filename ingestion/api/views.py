"""Ingestion API: the http_push endpoint."""
import time

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from opsconsole.errors import ApplicationError
from opsconsole.roles import CanPushRecords

from ..parsing import ParseError, parse_body
from ..services import records_ingest, source_spec_for_ingest

_FORMATS = {"application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/json": "json", "text/csv": "csv"}


class SourceRecordsPush(APIView):
    """POST /api/sources/<source_id>/records: a JSON array, one object, JSON lines, or CSV (by Content-Type)."""

    permission_classes = [CanPushRecords]

    @extend_schema(
        request={"application/json": {"type": "array", "items": {"type": "object"}}},
        responses={202: OpenApiResponse(description="Accepted: batch ids, accepted and rejected counts")},
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
        batches = records_ingest(source_id=source_id, records=parsed.records, origin=f"push:{request.user.get_username()}",
                                 actor=request.user, parse_seconds=time.perf_counter() - started)
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
