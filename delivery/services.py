"""Module Gamma services: deliver one batch to one destination, retry transient failures, DLQ the rest."""
import logging
import time
import random
from collections import Counter
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from configuration.runtime import pipeline_runtime
from ingestion.choices import BatchStage, RecordStatus
from ingestion.models import Batch, Record
from monitoring.metrics import DELIVERY_BUCKETS, LATENCY_BUCKETS
from monitoring.services import counters_add, histogram_increments, labels_key
from opsconsole.bulk import bulk_insert
from opsconsole.dispatch import send_after_commit

from .choices import DeliveryStatus
from .destinations import DeliveryError, OutgoingRecord, get_adapter
from .models import BatchDelivery, DeadLetter

logger = logging.getLogger(__name__)

DEAD_LETTER_COLUMNS = (
    "record", "batch", "source_id", "destination_id", "category", "reason", "attempts",
    "first_failed_at", "last_failed_at", "retry_eligible", "state",
)


def retry_delay_seconds(spec: dict, attempts: int) -> float:
    """Exponential backoff from retry_delay_ms, with up to 20% jitter."""
    base = max(0.05, float((spec.get("delivery") or {}).get("retry_delay_ms", 1000)) / 1000.0)
    delay = min(base * (2 ** max(0, attempts - 1)), 300.0)
    return delay * (1 + random.random() * 0.2)


def _outgoing(record_ids: list[str]) -> list[OutgoingRecord]:
    out = []
    for start in range(0, len(record_ids), 5000):
        rows = Record.objects.filter(id__in=record_ids[start:start + 5000]).values_list(
            "id", "source_id", "ingested_at", "quality_score", "data"
        )
        out.extend(OutgoingRecord(str(rid), src, at, score, data) for rid, src, at, score, data in rows)
    out.sort(key=lambda r: r.record_id)
    return out


def _dead_letter(delivery: BatchDelivery, batch: Batch, error: DeliveryError, now) -> None:
    rows = [
        (Record._meta.pk.to_python(rid), batch.id, batch.source_id, delivery.destination_id, error.category,
         error.message, delivery.attempts, delivery.created_at, now, error.transient, "new")
        for rid in delivery.record_ids
    ]
    bulk_insert(DeadLetter, DEAD_LETTER_COLUMNS, rows)


def _finish_batch_if_done(batch: Batch) -> None:
    """When every destination of the batch is final, each routed record gets its one final status."""
    statuses = list(batch.deliveries.values_list("status", "record_ids"))
    if any(status == DeliveryStatus.PENDING for status, _ in statuses):
        return
    now = timezone.now()
    failed = sorted({rid for status, ids in statuses if status == DeliveryStatus.DLQ for rid in ids})
    for start in range(0, len(failed), 5000):
        Record.objects.filter(id__in=failed[start:start + 5000], status=RecordStatus.ROUTED).update(
            status=RecordStatus.DLQ, reason="delivery failed (see dead letter queue)", finished_at=now
        )
    delivered = Record.objects.filter(batch=batch, status=RecordStatus.ROUTED).update(
        status=RecordStatus.DELIVERED, finished_at=now
    )
    # Every record of a batch was ingested with it, so one latency stands for all of them.
    latency = (now - batch.created_at).total_seconds()
    counts = histogram_increments("pipeline_end_to_end_latency_seconds", {"source": batch.source_id},
                                  LATENCY_BUCKETS, [latency] * delivered)
    counts.update(histogram_increments("module_latency_seconds", {"module": "gamma"}, LATENCY_BUCKETS,
                                       [(now - batch.updated_at).total_seconds()]))
    counters_add(counts)
    batch.stage = BatchStage.DONE
    batch.save(update_fields=["stage", "updated_at"])


def batch_deliver(*, batch_id: str, destination_id: str) -> str:
    """Deliver a batch's records to one destination. Returns what happened: delivered, retry, dlq, or
    skipped (already final, not due yet, or gone): a duplicate message changes nothing."""
    runtime = pipeline_runtime()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(id=batch_id).first()
        if batch is None:
            return "skipped"
        delivery = BatchDelivery.objects.select_for_update().filter(batch=batch, destination_id=destination_id).first()
        now = timezone.now()
        if delivery is None or delivery.status != DeliveryStatus.PENDING:
            return "skipped"
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(milliseconds=200):
            return "skipped"
        spec = runtime.destinations.get(destination_id)
        counts: Counter = Counter()
        label = labels_key({"destination": destination_id})
        try:
            if spec is None:
                raise DeliveryError(f"destination '{destination_id}' is no longer configured", transient=False)
            adapter = get_adapter(destination_id, spec)
            started = time.perf_counter()
            adapter.deliver(_outgoing(delivery.record_ids), batch_id=str(batch.id))
            counts.update(histogram_increments("gamma_delivery_duration_seconds", {"destination": destination_id},
                                               DELIVERY_BUCKETS, [time.perf_counter() - started]))
        except DeliveryError as error:
            delivery.attempts += 1
            delivery.last_error = error.message
            counts[("gamma_delivery_failures_total", labels_key({"destination": destination_id, "category": error.category}))] += 1
            retry_count = int(((spec or {}).get("delivery") or {}).get("retry_count", 3))
            if error.transient and delivery.attempts <= retry_count:
                delay = retry_delay_seconds(spec, delivery.attempts)
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                delivery.save(update_fields=["attempts", "last_error", "next_attempt_at", "updated_at"])
                counters_add(counts)
                send_after_commit("delivery.deliver_batch", [str(batch.id), destination_id], countdown=delay)
                logger.warning("delivery failed, retry %d in %.1fs: %s", delivery.attempts, delay, error.message,
                               extra={"component": "deliver", "module_name": "gamma", "details_destination": destination_id})
                return "retry"
            delivery.status = DeliveryStatus.DLQ
            delivery.save(update_fields=["attempts", "last_error", "status", "updated_at"])
            _dead_letter(delivery, batch, error, now)
            counters_add(counts)
            _finish_batch_if_done(batch)
            return "dlq"
        delivery.attempts += 1
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.last_error = ""
        delivery.save(update_fields=["attempts", "status", "delivered_at", "last_error", "updated_at"])
        counts[("gamma_records_delivered_total", label)] += len(delivery.record_ids)
        counters_add(counts)
        _finish_batch_if_done(batch)
        return "delivered"
