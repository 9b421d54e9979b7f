"""Prometheus metrics of DESIGN.md §6.

*_total counters come from the durable MetricCounter table (exact across processes and restarts);
gauges are computed from the database at scrape time.
"""
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

COUNTER_HELP = {
    "alpha_records_ingested_total": ("Total records ingested", ["source"]),
    "alpha_records_validated_total": ("Total records validated", ["source"]),
    "alpha_validation_failures_total": ("Total validation failures", ["source", "error_code"]),
    "alpha_parse_errors_total": ("Total records or files that could not be parsed", ["source"]),
    "beta_records_transformed_total": ("Total records transformed", ["source"]),
    "beta_records_rejected_total": ("Records rejected by quality scoring", ["source"]),
    "beta_records_filtered_total": ("Records that matched no route", ["source"]),
    "gamma_records_delivered_total": ("Total records delivered", ["destination"]),
    "gamma_delivery_failures_total": ("Total delivery failures (attempts)", ["destination", "category"]),
}


def _parse_labels(key: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in key.split(",") if pair)


class PipelineCollector(Collector):
    def collect(self):
        from delivery.models import BatchDelivery, DeadLetter
        from ingestion.choices import BatchStage
        from ingestion.models import Batch

        from .models import MetricCounter

        families = {}
        for name, (help_text, label_names) in COUNTER_HELP.items():
            families[name] = (CounterMetricFamily(name[: -len("_total")], help_text, labels=label_names), label_names)
        for row in MetricCounter.objects.all().values("name", "labels", "value"):
            if row["name"] not in families:
                continue
            family, label_names = families[row["name"]]
            labels = _parse_labels(row["labels"])
            family.add_metric([labels.get(n, "") for n in label_names], row["value"])
        yield from (family for family, _ in families.values())

        queue = GaugeMetricFamily("beta_queue_depth", "Batches awaiting transformation (records)")
        waiting = sum(Batch.objects.filter(stage=BatchStage.VALIDATED).values_list("accepted", flat=True))
        queue.add_metric([], waiting)
        yield queue
        pending = GaugeMetricFamily("gamma_pending_deliveries", "Batch deliveries awaiting acknowledgment")
        pending.add_metric([], BatchDelivery.objects.filter(status="pending").count())
        yield pending
        dlq = GaugeMetricFamily("gamma_dlq_size", "Dead letter queue size")
        dlq.add_metric([], DeadLetter.objects.count())
        yield dlq

    def describe(self):
        return []  # collected lazily at scrape time (needs the database)
