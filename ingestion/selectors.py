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
