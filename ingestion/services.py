"""Module Alpha services: accepting records from any source type into durable batches."""
import logging
import time
from collections import Counter
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from configuration.runtime import pipeline_runtime
from monitoring.metrics import PARSE_BUCKETS
from monitoring.services import counters_add, histogram_increments, labels_key
from opsconsole.audit import audit_record
from opsconsole.bulk import bulk_insert
from opsconsole.dispatch import send_after_commit
from opsconsole.errors import ApplicationError
from opsconsole.ids import time_ordered_uuid
from transform.services import beta_intake_check

from .choices import BatchStage, RecordStatus
from .models import Batch, Record, ValidationFailure

logger = logging.getLogger(__name__)

RECORD_COLUMNS = ("id", "batch", "source_id", "status", "payload", "reason", "ingested_at")
FAILURE_COLUMNS = ("source_id", "batch", "error_code", "field", "message", "raw", "created_at")


def source_spec_for_ingest(source_id: str) -> dict:
    """The applied spec of an enabled source, or a clear 404/409."""
    spec = pipeline_runtime().sources.get(source_id)
    if spec is None:
        raise ApplicationError(f"Unknown source '{source_id}'.", status_code=404)
    if not spec.get("enabled", True):
        raise ApplicationError(f"Source '{source_id}' is disabled.", status_code=409)
    return spec


def _raw_text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    cap = settings.VALIDATION_RAW_MAX_BYTES
    return text if len(text) <= cap else text[:cap] + "…[truncated]"


def records_ingest(
    *, source_id: str, records: list[Any], origin: str, bad: list[tuple[str, str, str]] | None = None, actor=None,
    parse_seconds: float | None = None,
) -> list[Batch]:
    """Validate records of a source and commit them as batches; each valid batch then moves to Beta.

    `bad` are unreadable lines or rows (position, raw, reason): they are counted and kept as
    rejected records with a PARSE_ERROR, so nothing received goes unaccounted. A push by a person or
    client account (`actor`) is written to the audit log with its batch ids.
    """
    runtime = pipeline_runtime()
    source_spec_for_ingest(source_id)
    beta_intake_check()  # 503 while Module Beta is draining (POST /api/beta/admin/drain)
    validate = runtime.validators[source_id]
    size = max(1, settings.INGEST_BATCH_SIZE)
    items: list[tuple[Any, Any]] = [(r, None) for r in records] + [(raw, (pos, reason)) for pos, raw, reason in (bad or [])]
    batches: list[Batch] = []
    counts: Counter = Counter()
    source_label = labels_key({"source": source_id})
    with transaction.atomic():
        for start in range(0, max(len(items), 1), size):
            chunk = items[start:start + size]
            if not chunk:
                break
            now = timezone.now()
            batch = Batch(source_id=source_id, received=len(chunk), origin=origin[:255], config_version=runtime.version)
            record_rows, failure_rows = [], []
            started = time.perf_counter()
            for value, parse_problem in chunk:
                rid = time_ordered_uuid()
                if parse_problem is not None:
                    pos, reason = parse_problem
                    failure = ("PARSE_ERROR", "", f"{pos}: {reason}")
                    counts[("alpha_parse_errors_total", source_label)] += 1
                else:
                    problem = validate(value)
                    failure = (problem.error_code, problem.field, problem.message) if problem else None
                if failure is None:
                    record_rows.append((rid, batch.id, source_id, RecordStatus.VALIDATED, value, "", now))
                    continue
                code, field, message = failure
                reason = f"{code} {field}: {message}" if field else f"{code}: {message}"
                record_rows.append((rid, batch.id, source_id, RecordStatus.REJECTED, value, reason, now))
                failure_rows.append((source_id, batch.id, code, field, message, _raw_text(value), now))
                counts[("alpha_validation_failures_total", labels_key({"source": source_id, "error_code": code}))] += 1
            counts.update(histogram_increments(
                "alpha_validation_duration_seconds", {"source": source_id}, PARSE_BUCKETS, [time.perf_counter() - started]
            ))
            batch.rejected = len(failure_rows)
            batch.accepted = len(record_rows) - batch.rejected
            batch.stage = BatchStage.VALIDATED if batch.accepted else BatchStage.DONE
            batch.save(force_insert=True)
            bulk_insert(Record, RECORD_COLUMNS, record_rows)
            if failure_rows:
                bulk_insert(ValidationFailure, FAILURE_COLUMNS, failure_rows)
            counts[("alpha_records_ingested_total", source_label)] += len(chunk)
            counts[("alpha_records_validated_total", source_label)] += batch.accepted
            if batch.accepted:
                send_after_commit("transform.transform_batch", [str(batch.id)])
            batches.append(batch)
        if parse_seconds is not None:
            counts.update(histogram_increments("alpha_parse_duration_seconds", {"source": source_id}, PARSE_BUCKETS,
                                               [parse_seconds]))
        counters_add(counts)
        if actor is not None:
            audit_record(
                actor=actor, action="records.push", target=f"source:{source_id}",
                details={"batch_ids": [str(b.id) for b in batches], "received": len(items),
                         "rejected": sum(b.rejected for b in batches)},
            )
    logger.info(
        "ingested %d records into %d batches", len(items), len(batches),
        extra={"source_id": source_id, "component": "ingest", "module_name": "alpha"},
    )
    return batches
