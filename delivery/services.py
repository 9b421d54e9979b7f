"""Module Gamma services: deliver one batch to one destination through its circuit breaker, retry
transient failures with backoff, hold while the breaker is open, dead-letter the rest."""
import logging
import random
import time
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta

import orjson
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from configuration.runtime import pipeline_runtime
from ingestion.choices import BatchStage, RecordStatus
from ingestion.models import Batch, Record
from monitoring.metrics import DELIVERY_BUCKETS, LATENCY_BUCKETS
from monitoring.services import counters_add, histogram_increments, labels_key
from opsconsole.bulk import bulk_insert
from opsconsole.dispatch import send_after_commit

from .breakers import breaker_admit, breaker_record
from .choices import DeadLetterState, DeliveryStatus
from .destinations import DeliveryError, OutgoingRecord, get_adapter
from .models import BatchDelivery, DeadLetter, DeliveryAttempt

logger = logging.getLogger(__name__)

DEAD_LETTER_COLUMNS = (
    "record", "batch", "source_id", "destination_id", "category", "reason", "http_status", "attempts",
    "first_failed_at", "last_failed_at", "retry_eligible", "state", "note",
)
FINAL = (DeliveryStatus.DELIVERED, DeliveryStatus.DLQ)


def dead_letters_insert(rows: Iterable[tuple]) -> int:
    """Bulk-add DLQ entries; each row is (record_id, batch_id, source_id, destination_id, category, reason,
    http_status, attempts, first_failed_at, last_failed_at, retry_eligible)."""
    return bulk_insert(DeadLetter, DEAD_LETTER_COLUMNS, ((*row, DeadLetterState.NEW, "") for row in rows))


def retry_delay_seconds(spec: dict, attempts: int) -> float:
    """Exponential backoff from retry_delay_ms, with up to 20% jitter."""
    base = max(0.05, float((spec.get("delivery") or {}).get("retry_delay_ms", 1000)) / 1000.0)
    delay = min(base * (2 ** max(0, attempts - 1)), 300.0)
    return delay * (1 + random.random() * 0.2)


def _outgoing(batch: Batch, record_ids: list[str]) -> list[OutgoingRecord]:
    """The records of one delivery, read by batch (no id lists in SQL), data decoded with orjson."""
    wanted = set(record_ids)
    rows = (Record.objects.filter(batch=batch, status__in=(RecordStatus.ROUTED, RecordStatus.HELD))
            .annotate(data_text=Cast("data", TextField()))
            .values_list("id", "source_id", "ingested_at", "quality_score", "data_text"))
    out = [OutgoingRecord(rid, src, at, score, orjson.loads(text))
           for rid, src, at, score, text in ((str(r[0]), *r[1:]) for r in rows) if rid in wanted]
    out.sort(key=lambda r: r.record_id)
    return out


def _set_records(ids: list[str], from_statuses: tuple, **values) -> int:
    changed = 0
    for start in range(0, len(ids), 5000):
        changed += Record.objects.filter(id__in=ids[start:start + 5000], status__in=from_statuses).update(**values)
    return changed


def batch_finish_if_done(batch: Batch) -> None:
    """When every destination of the batch is final, each of its routed records gets one final status:
    dlq if any of its (record, destination) pairs failed or was refused, else delivered."""
    deliveries = list(batch.deliveries.values_list("status", "record_ids"))
    if any(status not in FINAL for status, _ in deliveries):
        return
    now = timezone.now()
    dead = sorted({str(r) for r in DeadLetter.objects.filter(batch=batch).values_list("record_id", flat=True)})
    in_flight = (RecordStatus.ROUTED, RecordStatus.HELD)
    _set_records(dead, in_flight, status=RecordStatus.DLQ, reason="delivery failed (see dead letter queue)", finished_at=now)
    # Every routed record of the batch is in `ids` (replays move their records into a batch of their own).
    delivered = Record.objects.filter(batch=batch, status__in=in_flight).update(
        status=RecordStatus.DELIVERED, finished_at=now)
    # Every record of a batch was ingested with it, so one latency stands for all of them.
    latency = (now - batch.created_at).total_seconds()
    counts = histogram_increments("pipeline_end_to_end_latency_seconds", {"source": batch.source_id},
                                  LATENCY_BUCKETS, [latency] if delivered else [], times=delivered)
    counts.update(histogram_increments("module_latency_seconds", {"module": "gamma"}, LATENCY_BUCKETS,
                                       [(now - batch.updated_at).total_seconds()]))
    counters_add(counts)
    batch.stage = BatchStage.DONE
    batch.save(update_fields=["stage", "updated_at"])


def _deliver_in_parts(adapter, spec: dict, records: list[OutgoingRecord], batch_id: str) -> None:
    """Send at most `delivery.batch_size` records per call. Each part has a stable id (the batch id, with
    `-<n>` when there are several), so a retry after a partial success repeats the same parts idempotently."""
    size = max(1, int((spec.get("delivery") or {}).get("batch_size", 1000)))
    parts = [records[i:i + size] for i in range(0, len(records), size)] or [[]]
    for number, part in enumerate(parts):
        adapter.deliver(part, batch_id=batch_id if len(parts) == 1 else f"{batch_id}-{number}")


def _hold(delivery: BatchDelivery, until) -> str:
    delivery.status = DeliveryStatus.HELD
    delivery.next_attempt_at = until
    delivery.save(update_fields=["status", "next_attempt_at", "updated_at"])
    _set_records(delivery.record_ids, (RecordStatus.ROUTED,), status=RecordStatus.HELD)
    return "held"


def _attempt_log(delivery: BatchDelivery, now, ok: bool, seconds: float, error: DeliveryError | None) -> None:
    DeliveryAttempt.objects.create(
        delivery=delivery, destination_id=delivery.destination_id, at=now, ok=ok, records=len(delivery.record_ids),
        duration_ms=int(seconds * 1000), category=error.category if error else "",
        http_status=error.http_status if error else None, error=error.message if error else "",
    )


def batch_deliver(*, batch_id: str, destination_id: str) -> str:
    """Deliver a batch's records to one destination. Returns what happened: delivered, retry, held, dlq,
    busy (a breaker probe is running; sent again shortly) or skipped (already final, not due yet, or gone):
    a duplicate message changes nothing."""
    runtime = pipeline_runtime()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(id=batch_id).first()
        if batch is None:
            return "skipped"
        delivery = BatchDelivery.objects.select_for_update().filter(batch=batch, destination_id=destination_id).first()
        now = timezone.now()
        if delivery is None or delivery.status in FINAL:
            return "skipped"
        if delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at and \
                delivery.next_attempt_at > now + timedelta(milliseconds=200):
            return "skipped"
        spec = runtime.destinations.get(destination_id) or {}
        admission = breaker_admit(destination_id=destination_id, spec=spec, now=now)
        if admission.busy:
            send_after_commit("delivery.deliver_batch", [str(batch.id), destination_id], countdown=1.0)
            return "busy"
        if not admission.allowed:
            return _hold(delivery, admission.hold_until)
        counts: Counter = Counter()
        started = time.perf_counter()
        try:
            if not spec:
                raise DeliveryError(f"destination '{destination_id}' is no longer configured", transient=False)
            _deliver_in_parts(get_adapter(destination_id, spec), spec, _outgoing(batch, delivery.record_ids), str(batch.id))
        except DeliveryError as error:
            seconds = time.perf_counter() - started
            return _failed(batch, delivery, spec, error, now, seconds, counts)
        seconds = time.perf_counter() - started
        breaker_record(destination_id=destination_id, spec=spec, ok=True, counted_failure=False, error="", now=now)
        _attempt_log(delivery, now, True, seconds, None)
        delivery.attempts += 1
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = ""
        delivery.save(update_fields=["attempts", "status", "delivered_at", "last_error", "updated_at"])
        counts[("gamma_records_delivered_total", labels_key({"destination": destination_id}))] += len(delivery.record_ids)
        counts.update(histogram_increments("gamma_delivery_duration_seconds", {"destination": destination_id},
                                           DELIVERY_BUCKETS, [seconds]))
        counters_add(counts)
        batch_finish_if_done(batch)
        return "delivered"


def _failed(batch, delivery, spec, error: DeliveryError, now, seconds: float, counts: Counter) -> str:
    destination_id = delivery.destination_id
    _attempt_log(delivery, now, False, seconds, error)
    delivery.attempts += 1
    delivery.last_error = error.message
    delivery.last_http_status = error.http_status
    counts[("gamma_delivery_failures_total", labels_key({"destination": destination_id, "category": error.category}))] += 1
    counts.update(histogram_increments("gamma_delivery_duration_seconds", {"destination": destination_id},
                                       DELIVERY_BUCKETS, [seconds]))
    counters_add(counts)
    is_open = breaker_record(destination_id=destination_id, spec=spec, ok=False, counted_failure=error.transient,
                             error=error.message, now=now)
    retry_count = int((spec.get("delivery") or {}).get("retry_count", 3))
    if error.transient and is_open:
        # The destination is down: keep the records in the pipeline instead of spending their retries.
        delivery.save(update_fields=["attempts", "last_error", "last_http_status", "updated_at"])
        return _hold(delivery, None)
    if error.transient and delivery.attempts <= retry_count:
        delay = error.retry_after if error.retry_after is not None else retry_delay_seconds(spec, delivery.attempts)
        delivery.next_attempt_at = now + timedelta(seconds=delay)
        delivery.status = DeliveryStatus.PENDING
        delivery.save(update_fields=["attempts", "last_error", "last_http_status", "next_attempt_at", "status", "updated_at"])
        send_after_commit("delivery.deliver_batch", [str(batch.id), destination_id], countdown=delay)
        logger.warning("delivery to %s failed, retry %d in %.1fs: %s", destination_id, delivery.attempts, delay,
                       error.message, extra={"component": "deliver", "module_name": "gamma"})
        return "retry"
    delivery.status = DeliveryStatus.DLQ
    delivery.save(update_fields=["attempts", "last_error", "last_http_status", "status", "updated_at"])
    dead_letters_insert(
        (rid, batch.id, batch.source_id, destination_id, error.category, error.message, error.http_status,
         delivery.attempts, delivery.created_at, now, error.transient)
        for rid in delivery.record_ids
    )
    batch_finish_if_done(batch)
    return "dlq"
