"""Gamma gauges computed at scrape time."""
from prometheus_client.core import GaugeMetricFamily

from .choices import DeliveryStatus
from .models import BatchDelivery, DeadLetter


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
    dlq = GaugeMetricFamily("gamma_dlq_size", "Dead letter queue size")
    dlq.add_metric([], DeadLetter.objects.count())
    yield dlq
