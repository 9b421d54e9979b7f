"""Reads about Module Gamma: destinations, deliveries and the dead letter queue."""
from datetime import datetime

from django.db.models import Count, OuterRef, Subquery

from .choices import DeliveryStatus
from .models import BatchDelivery, DeadLetter, Destination, RoutingRule


def pending_delivery_count() -> int:
    """Batch deliveries not yet acknowledged (gamma_pending_deliveries)."""
    return BatchDelivery.objects.filter(status=DeliveryStatus.PENDING).count()


def pending_deliveries_failing_count() -> int:
    """Pending deliveries whose last attempt failed: they are being retried with backoff."""
    return BatchDelivery.objects.filter(status=DeliveryStatus.PENDING).exclude(last_error="").count()


def pending_deliveries_stuck_count(*, older_than: datetime, now: datetime) -> int:
    """Pending deliveries never attempted since before `older_than` and not waiting for a retry."""
    return (
        BatchDelivery.objects.filter(status=DeliveryStatus.PENDING, created_at__lt=older_than, attempts=0)
        .exclude(next_attempt_at__gt=now)
        .count()
    )


def deliveries_failed_latest(*, limit: int = 5) -> list[BatchDelivery]:
    """The latest deliveries with an error (still retrying or dead-lettered), newest first."""
    return list(BatchDelivery.objects.exclude(last_error="").order_by("-updated_at", "-id")[:limit])


def batch_delivery_list(*, batch_id) -> list[BatchDelivery]:
    """The deliveries of one batch, each with `.record_count`."""
    deliveries = list(BatchDelivery.objects.filter(batch_id=batch_id).order_by("destination_id"))
    for delivery in deliveries:
        delivery.record_count = len(delivery.record_ids)
    return deliveries


def destination_list() -> list[Destination]:
    """Destinations, each with `.deliveries` (batch deliveries per status), `.last_error` and `.last_error_at`."""
    failing = BatchDelivery.objects.filter(destination_id=OuterRef("destination_id")).exclude(last_error="").order_by("-updated_at")
    destinations = list(
        Destination.objects.annotate(
            last_error=Subquery(failing.values("last_error")[:1]),
            last_error_at=Subquery(failing.values("updated_at")[:1]),
        )
    )
    counts: dict[str, dict[str, int]] = {}
    rows = BatchDelivery.objects.values_list("destination_id", "status").annotate(n=Count("id")).order_by()
    for destination_id, status, n in rows:
        counts.setdefault(destination_id, {})[status] = n
    for destination in destinations:
        found = counts.get(destination.destination_id, {})
        destination.deliveries = {status.value: found.get(status.value, 0) for status in DeliveryStatus}
    return destinations


def routing_rule_list():
    return RoutingRule.objects.order_by("priority", "rule_id")


def dead_letter_list():
    """The dead letter queue, latest failure first (filter with delivery.filtersets.DeadLetterFilterSet)."""
    return DeadLetter.objects.order_by("-last_failed_at", "-id")


def dead_letter_count() -> int:
    """DLQ size: (record, destination) pairs that could not be delivered (gamma_dlq_size)."""
    return DeadLetter.objects.count()


def dead_letters_added_count(*, since: datetime) -> int:
    """Dead letters added since `since` (a dead letter is written at its last failure)."""
    return DeadLetter.objects.filter(last_failed_at__gte=since).count()


def open_breaker_destinations() -> frozenset[str]:
    """Destinations whose circuit breaker is OPEN (routing sends to alternates, deliveries are held)."""
    from .choices import BreakerState
    from .models import CircuitBreaker

    return frozenset(CircuitBreaker.objects.filter(state=BreakerState.OPEN).values_list("destination_id", flat=True))
