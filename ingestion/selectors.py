"""Reads about ingestion and the accounting of every record (DESIGN.md §3)."""
from collections import defaultdict

from django.db.models import Count, Sum

from .choices import IN_FLIGHT_STATUSES, RecordStatus
from .models import Batch, Record

BUCKETS = ("rejected", "filtered", "delivered", "held", "dlq", "in_flight")


def reconciliation() -> dict:
    """Per source and in total: ingested = rejected + filtered + delivered + held + dlq + in_flight.

    `ingested` is what batches received (the accepting side); the buckets count records by their
    one current status (the accounting side). `balanced` says whether the two agree."""
    received = dict(Batch.objects.values_list("source_id").annotate(n=Sum("received")).values_list("source_id", "n"))
    buckets: dict[str, dict[str, int]] = defaultdict(lambda: {b: 0 for b in BUCKETS})
    for source_id, status, n in Record.objects.values_list("source_id", "status").annotate(n=Count("id")).order_by():
        bucket = "in_flight" if status in IN_FLIGHT_STATUSES else status
        buckets[source_id][bucket] += n
    sources = {}
    for source_id in sorted(set(received) | set(buckets)):
        counts = dict(buckets[source_id])
        ingested = received.get(source_id, 0) or 0
        accounted = sum(counts.values())
        sources[source_id] = {"ingested": ingested, **counts, "accounted": accounted, "balanced": ingested == accounted}
    total = {key: sum(s[key] for s in sources.values()) for key in ("ingested", *BUCKETS, "accounted")}
    total["balanced"] = all(s["balanced"] for s in sources.values())
    return {"sources": sources, "total": total}


def stage_counts() -> dict[str, int]:
    """Live record counts per status (the overview page and its htmx panel)."""
    counts = {status.value: 0 for status in RecordStatus}
    for status, n in Record.objects.values_list("status").annotate(n=Count("id")).order_by():
        counts[status] = n
    return counts


# --- Console reads (opsconsole.console_views) ---------------------------------------------------
from datetime import timedelta  # noqa: E402

from django.db.models import Max, Q  # noqa: E402
from django.utils import timezone  # noqa: E402

from .choices import BatchStage  # noqa: E402
from .models import Source, ValidationFailure  # noqa: E402


def records_per_minute(*, minutes: int = 5, now=None) -> dict[str, float]:
    """Records ingested (any outcome) and delivered per minute, averaged over the last `minutes`."""
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    delivered = Q(status=RecordStatus.DELIVERED, finished_at__gte=since)
    counts = Record.objects.filter(Q(ingested_at__gte=since) | delivered).aggregate(
        ingested=Count("id", filter=Q(ingested_at__gte=since)), delivered=Count("id", filter=delivered)
    )
    return {"minutes": minutes, "ingested": counts["ingested"] / minutes, "delivered": counts["delivered"] / minutes}


def batches_waiting() -> dict[str, int]:
    """Unfinished batches per stage: `validated` wait for Beta, `transformed` wait for Gamma."""
    counts = {BatchStage.VALIDATED.value: 0, BatchStage.TRANSFORMED.value: 0}
    rows = Batch.objects.exclude(stage=BatchStage.DONE).values_list("stage").annotate(n=Count("id")).order_by()
    for stage, n in rows:
        counts[stage] = n
    return counts


def batches_stuck_count(*, older_than_seconds: int, now=None) -> int:
    """Batches still awaiting transformation although ingested more than `older_than_seconds` ago."""
    cutoff = (now or timezone.now()) - timedelta(seconds=older_than_seconds)
    return Batch.objects.filter(stage=BatchStage.VALIDATED, created_at__lt=cutoff).count()


def record_counts_by_source() -> dict[str, dict[str, int]]:
    """source_id -> {status: count} for every status (zeros included)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {status.value: 0 for status in RecordStatus})
    for source_id, status, n in Record.objects.values_list("source_id", "status").annotate(n=Count("id")).order_by():
        counts[source_id][status] = n
    return counts


def source_list() -> list:
    """Configured sources, each with `.counts` (records per status) and `.last_batch_at`."""
    counts = record_counts_by_source()
    last_batch = dict(Batch.objects.values_list("source_id").annotate(at=Max("created_at")).values_list("source_id", "at"))
    sources = list(Source.objects.all())
    for source in sources:
        source.counts = counts[source.source_id]
        source.last_batch_at = last_batch.get(source.source_id)
    return sources


def source_detail(*, source_id: str, limit: int = 20) -> dict | None:
    """A source with its record counts, recent batches and recent validation failures; None if unknown."""
    source = Source.objects.filter(source_id=source_id).first()
    if source is None:
        return None
    counts = {status.value: 0 for status in RecordStatus}
    for status, n in Record.objects.filter(source_id=source_id).values_list("status").annotate(n=Count("id")).order_by():
        counts[status] = n
    return {
        "source": source,
        "counts": counts,
        "batches": list(Batch.objects.filter(source_id=source_id).order_by("-created_at")[:limit]),
        "failures": list(ValidationFailure.objects.filter(source_id=source_id).order_by("-created_at", "-id")[:limit]),
    }


def batch_list():
    """All batches, newest first (filter with ingestion.filtersets.BatchFilterSet)."""
    return Batch.objects.order_by("-created_at")


def batch_detail(*, batch_id) -> dict | None:
    """A batch with its record counts per status and its validation failures; None if unknown."""
    batch = Batch.objects.filter(id=batch_id).first()
    if batch is None:
        return None
    counts = {status.value: 0 for status in RecordStatus}
    for status, n in Record.objects.filter(batch=batch).values_list("status").annotate(n=Count("id")).order_by():
        counts[status] = n
    return {"batch": batch, "counts": counts, "failures": list(ValidationFailure.objects.filter(batch=batch)[:100])}


def validation_failure_list():
    """All validation failures, newest first (filter with ingestion.filtersets.ValidationFailureFilterSet)."""
    return ValidationFailure.objects.order_by("-created_at", "-id")


def validation_failures_latest(*, limit: int = 5) -> list:
    return list(validation_failure_list()[:limit])
