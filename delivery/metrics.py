"""Gamma gauges computed at scrape time."""
from prometheus_client.core import GaugeMetricFamily

from .choices import BREAKER_STATE_VALUE, DLQ_OPEN_STATES, BreakerState, DeliveryStatus
from .models import BatchDelivery, CircuitBreaker, DeadLetter, Destination


def collect():
    pending = GaugeMetricFamily("gamma_pending_deliveries", "Deliveries awaiting acknowledgment (records)",
                                labels=["destination"])
    totals: dict[str, int] = {}
    for destination_id, ids in BatchDelivery.objects.filter(status=DeliveryStatus.PENDING).values_list(
        "destination_id", "record_ids"
    ):
        totals[destination_id] = totals.get(destination_id, 0) + len(ids)
    for destination_id, n in sorted(totals.items()):
        pending.add_metric([destination_id], n)
    yield pending
    dlq = GaugeMetricFamily("gamma_dlq_size", "Dead letter queue size (entries awaiting a decision)")
    dlq.add_metric([], DeadLetter.objects.filter(state__in=DLQ_OPEN_STATES).count())
    yield dlq
    breakers = dict(CircuitBreaker.objects.values_list("destination_id", "state"))
    state = GaugeMetricFamily("gamma_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open",
                              labels=["destination"])
    status = GaugeMetricFamily("gamma_destination_status",
                               "1 when the destination is enabled and its breaker closed, else 0", labels=["destination"])
    for destination_id, enabled in Destination.objects.values_list("destination_id", "enabled"):
        breaker = breakers.get(destination_id, BreakerState.CLOSED)
        state.add_metric([destination_id], BREAKER_STATE_VALUE[breaker])
        status.add_metric([destination_id], 1 if enabled and breaker == BreakerState.CLOSED else 0)
    yield state
    yield status
