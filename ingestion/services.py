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
from opsconsole.dispatch import send_after_commit, send_task_now
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
    parse_seconds: float | None = None, batch_size: int | None = None,
) -> list[Batch]:
    """Validate records of a source and commit them as batches; each valid batch then moves to Beta.

    `bad` are unreadable lines or rows (position, raw, reason): they are counted and kept as
    rejected records with a PARSE_ERROR, so nothing received goes unaccounted. A push by a person or
    client account (`actor`) is written to the audit log with its batch ids.

    Every source type obeys Module Alpha's switches and back-pressure here: while ingestion or the
    source is paused, or the buffer is full, this raises IngestRefused (503, Retry-After) and takes
    nothing; while throttled (80%) a source is admitted once per ALPHA_THROTTLE_INTERVAL_SECONDS (429
    otherwise). A caller that cannot store now keeps its records (a push client retries, a poll keeps
    its cursor, a file stays in the inbox), so nothing is dropped.
    """
    runtime = pipeline_runtime()
    source_spec_for_ingest(source_id)
    beta_intake_check()  # 503 while Module Beta is draining (POST /api/beta/admin/drain)
    ingest_admit(source_id=source_id)
    validate = runtime.validators[source_id]
    size = max(1, batch_size or settings.INGEST_BATCH_SIZE)
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


# --- Buffer, back-pressure and Module Alpha's switches ------------------------------------------------
# The buffer is what Alpha has ingested and Beta has not yet transformed: the accepted records of
# batches still at stage VALIDATED. Its fill ratio is alpha_buffer_utilization.

import math  # noqa: E402
from datetime import timedelta  # noqa: E402

from django.db.models import Q, Sum  # noqa: E402

from .choices import BufferEventKind, BufferLevel  # noqa: E402
from .models import AlphaControl, BufferEvent, Source, SourceState  # noqa: E402

MAX_BUFFER_CAPACITY = 100_000_000


class IngestRefused(ApplicationError):
    """Ingestion cannot take records now (paused, buffer full: 503; throttled: 429); retry after `retry_after` s."""

    def __init__(self, message: str, *, status_code: int, reason: str, retry_after: int, utilization: float):
        super().__init__(message, status_code=status_code,
                         extra={"reason": reason, "retry_after": retry_after, "buffer_utilization": round(utilization, 4)})
        self.reason = reason
        self.retry_after = retry_after


def alpha_control() -> AlphaControl:
    control, _ = AlphaControl.objects.get_or_create(pk=1)
    return control


def source_state(source_id: str) -> SourceState:
    state, _ = SourceState.objects.get_or_create(source_id=source_id)
    return state


def buffer_capacity(control: AlphaControl | None = None) -> int:
    control = control or alpha_control()
    return max(1, control.buffer_capacity or settings.ALPHA_BUFFER_CAPACITY)


def buffered_count(*, source_id: str | None = None) -> int:
    """Records ingested and not yet transformed, of one source or all."""
    batches = Batch.objects.filter(stage=BatchStage.VALIDATED)
    if source_id is not None:
        batches = batches.filter(source_id=source_id)
    return batches.aggregate(n=Sum("accepted"))["n"] or 0


def buffer_level_for(utilization: float) -> BufferLevel:
    if utilization >= 1.0:
        return BufferLevel.FULL
    if utilization >= settings.ALPHA_BUFFER_THROTTLE:
        return BufferLevel.THROTTLE
    if utilization >= settings.ALPHA_BUFFER_WARNING:
        return BufferLevel.WARNING
    return BufferLevel.NORMAL


def buffer_level_note(*, control: AlphaControl, level: str, utilization: float) -> bool:
    """Remember a change of back-pressure level once (whichever process sees it first), and say so."""
    if control.buffer_level == level:
        return False
    changed = AlphaControl.objects.filter(pk=control.pk, buffer_level=control.buffer_level).update(
        buffer_level=level, buffer_level_at=timezone.now())
    if changed:
        BufferEvent.objects.create(kind=BufferEventKind.LEVEL, level=level, utilization=utilization,
                                   detail=f"{control.buffer_level} -> {level} at {utilization:.0%}")
        log = logger.warning if level != BufferLevel.NORMAL else logger.info
        log("buffer back-pressure %s -> %s (utilization %.1f%%)", control.buffer_level, level, utilization * 100,
            extra={"component": "buffer", "module_name": "alpha"})
    control.buffer_level = level
    return bool(changed)


def ingest_admit(*, source_id: str) -> str:
    """May `source_id` ingest now? Returns the buffer level, or raises IngestRefused."""
    control = alpha_control()
    capacity = buffer_capacity(control)
    utilization = buffered_count() / capacity
    level = buffer_level_for(utilization)
    buffer_level_note(control=control, level=level, utilization=utilization)
    if control.paused:
        raise IngestRefused("Ingestion is paused (POST /api/alpha/admin/resume to resume).", status_code=503,
                            reason="paused", retry_after=settings.ALPHA_PAUSED_RETRY_AFTER_SECONDS,
                            utilization=utilization)
    if SourceState.objects.filter(source_id=source_id, paused=True).exists():
        raise IngestRefused(f"Source '{source_id}' is paused.", status_code=503, reason="source_paused",
                            retry_after=settings.ALPHA_PAUSED_RETRY_AFTER_SECONDS, utilization=utilization)
    if level == BufferLevel.FULL:
        raise IngestRefused(f"Buffer full ({utilization:.0%} of {capacity} records): ingestion paused until "
                            "Module Beta drains it.", status_code=503, reason="buffer_full",
                            retry_after=settings.ALPHA_FULL_RETRY_AFTER_SECONDS, utilization=utilization)
    if level == BufferLevel.THROTTLE:
        interval = settings.ALPHA_THROTTLE_INTERVAL_SECONDS
        now = timezone.now()
        source_state(source_id)
        admitted = SourceState.objects.filter(source_id=source_id).filter(
            Q(last_admitted_at__isnull=True) | Q(last_admitted_at__lte=now - timedelta(seconds=interval))
        ).update(last_admitted_at=now)
        if not admitted:
            raise IngestRefused(f"Buffer at {utilization:.0%}: ingestion throttled to one batch per {interval:g} s "
                                "per source.", status_code=429, reason="throttled",
                                retry_after=max(1, math.ceil(interval)), utilization=utilization)
    return level


def buffer_status() -> dict:
    """Capacity, buffered records (total and per source), utilization and back-pressure level."""
    control = alpha_control()
    capacity = buffer_capacity(control)
    by_source = dict(Batch.objects.filter(stage=BatchStage.VALIDATED).values_list("source_id")
                     .annotate(n=Sum("accepted")).values_list("source_id", "n"))
    buffered = sum(n or 0 for n in by_source.values())
    utilization = buffered / capacity
    level = buffer_level_for(utilization)
    buffer_level_note(control=control, level=level, utilization=utilization)
    return {
        "capacity": capacity,
        "capacity_default": settings.ALPHA_BUFFER_CAPACITY,
        "buffered": buffered,
        "utilization": round(utilization, 4),
        "level": str(level),
        "thresholds": {"warning": settings.ALPHA_BUFFER_WARNING, "throttle": settings.ALPHA_BUFFER_THROTTLE,
                       "critical": settings.ALPHA_BUFFER_CRITICAL, "pause": 1.0},
        "by_source": {k: v or 0 for k, v in sorted(by_source.items())},
        "ingestion_paused": control.paused,
        "level_since": control.buffer_level_at,
    }


def _actor_name(actor) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else (actor if isinstance(actor, str) else "system")


def buffer_resize(*, actor, capacity: int, reason: str = "") -> dict:
    """Set the buffer's capacity (records) at run time; back-pressure follows the new ratio at once."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= MAX_BUFFER_CAPACITY:
        raise ApplicationError(f"capacity must be a whole number of records from 1 to {MAX_BUFFER_CAPACITY}.")
    with transaction.atomic():
        control = AlphaControl.objects.select_for_update().get(pk=alpha_control().pk)
        previous = buffer_capacity(control)
        control.buffer_capacity = capacity
        control.save(update_fields=["buffer_capacity", "updated_at"])
        BufferEvent.objects.create(kind=BufferEventKind.RESIZE, detail=f"capacity {previous} -> {capacity}",
                                   actor=_actor_name(actor))
        audit_record(actor=actor, action="alpha.buffer.resize", target="alpha:buffer", reason=reason,
                     details={"previous": previous, "capacity": capacity})
    status = buffer_status()
    return {**status, "previous_capacity": previous}


def ingestion_pause(*, actor, reason: str = "") -> AlphaControl:
    """Pause all ingestion: polls and file scans skip, pushes answer 503 with Retry-After. Nothing is lost."""
    return _ingestion_switch(actor=actor, paused=True, reason=reason)


def ingestion_resume(*, actor, reason: str = "") -> AlphaControl:
    return _ingestion_switch(actor=actor, paused=False, reason=reason)


def _ingestion_switch(*, actor, paused: bool, reason: str) -> AlphaControl:
    with transaction.atomic():
        control = AlphaControl.objects.select_for_update().get(pk=alpha_control().pk)
        was = control.paused
        control.paused = paused
        control.paused_at = timezone.now() if paused else None
        control.paused_by = _actor_name(actor) if paused else ""
        control.pause_reason = reason if paused else ""
        control.save()
        BufferEvent.objects.create(kind=BufferEventKind.PAUSE if paused else BufferEventKind.RESUME,
                                   detail=reason, actor=_actor_name(actor))
        audit_record(actor=actor, action="alpha.pause" if paused else "alpha.resume", target="alpha:ingestion",
                     reason=reason, details={"was_paused": was})
    logger.warning("ingestion %s by %s", "paused" if paused else "resumed", _actor_name(actor),
                   extra={"component": "control", "module_name": "alpha"})
    return control


def _known_source(source_id: str) -> Source:
    source = Source.objects.filter(source_id=source_id).first()
    if source is None:
        raise ApplicationError(f"Unknown source '{source_id}'.", status_code=404)
    return source


def source_pause(*, source_id: str, actor, reason: str = "") -> SourceState:
    """Pause one source: its polls and scans skip, its pushes answer 503. Survives reloads."""
    return _source_switch(source_id=source_id, actor=actor, paused=True, reason=reason)


def source_resume(*, source_id: str, actor, reason: str = "") -> SourceState:
    return _source_switch(source_id=source_id, actor=actor, paused=False, reason=reason)


def _source_switch(*, source_id: str, actor, paused: bool, reason: str) -> SourceState:
    _known_source(source_id)
    with transaction.atomic():
        source_state(source_id)
        state = SourceState.objects.select_for_update().get(source_id=source_id)
        was = state.paused
        state.paused = paused
        state.paused_at = timezone.now() if paused else None
        state.paused_by = _actor_name(actor) if paused else ""
        state.pause_reason = reason if paused else ""
        state.save()
        BufferEvent.objects.create(kind=BufferEventKind.PAUSE if paused else BufferEventKind.RESUME,
                                   source_id=source_id, detail=reason, actor=_actor_name(actor))
        audit_record(actor=actor, action="alpha.source.pause" if paused else "alpha.source.resume",
                     target=f"source:{source_id}", reason=reason, details={"was_paused": was})
    return state


def source_drain(*, source_id: str, actor, budget_seconds: float = 10.0) -> dict:
    """Push everything buffered for a source through to Beta now (Runbook A.3 step 4).

    Batches are transformed here, oldest first, for up to `budget_seconds`; any left then are sent to
    the beta queue at once. Works for disabled sources too (that is when A.3 drains)."""
    from transform.services import batch_transform  # Beta's one way to transform a batch

    if not Source.objects.filter(source_id=source_id).exists() and not Batch.objects.filter(source_id=source_id).exists():
        raise ApplicationError(f"Unknown source '{source_id}'.", status_code=404)
    pending = list(Batch.objects.filter(source_id=source_id, stage=BatchStage.VALIDATED)
                   .order_by("created_at").values_list("id", "accepted"))
    started = time.monotonic()
    drained = {"batches": 0, "records": 0}
    queued = {"batches": 0, "records": 0}
    for batch_id, accepted in pending:
        if time.monotonic() - started < budget_seconds:
            if batch_transform(batch_id=str(batch_id)):
                drained["batches"] += 1
                drained["records"] += accepted
        else:
            send_task_now("transform.transform_batch", [str(batch_id)])
            queued["batches"] += 1
            queued["records"] += accepted
    remaining = buffered_count(source_id=source_id)
    result = {
        "source_id": source_id,
        "buffered_before": sum(n for _, n in pending),
        "drained_records": drained["records"],
        "drained_batches": drained["batches"],
        "queued_records": queued["records"],
        "queued_batches": queued["batches"],
        "remaining": remaining,
    }
    with transaction.atomic():
        BufferEvent.objects.create(kind=BufferEventKind.DRAIN, source_id=source_id, actor=_actor_name(actor),
                                   detail=f"{drained['records']} records transformed, {queued['records']} queued")
        audit_record(actor=actor, action="alpha.source.drain", target=f"source:{source_id}", details=result)
    return result


def buffer_sample() -> dict:
    """Record the buffer's fill for the dashboard and forget samples and source errors past their keep."""
    from .models import BufferSample, SourceError

    status = buffer_status()
    now = timezone.now()
    BufferSample.objects.create(at=now, buffered=status["buffered"], capacity=status["capacity"],
                                by_source=status["by_source"])
    BufferSample.objects.filter(at__lt=now - timedelta(hours=settings.ALPHA_KEEP_SAMPLES_HOURS)).delete()
    SourceError.objects.filter(created_at__lt=now - timedelta(days=settings.ALPHA_KEEP_SOURCE_ERRORS_DAYS)).delete()
    return status
