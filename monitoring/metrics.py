"""Prometheus metrics of DESIGN.md §6, collected from the database at scrape time.

- Counters and histograms: declared in COUNTERS / HISTOGRAMS (name, help, labels, buckets as in
  the manual) and written with monitoring.services.counters_add / histogram_observe.
- Gauges: each app may have a `metrics.py` with `collect()` yielding metric families computed from
  its tables; GAUGE_MODULES lists them.
"""
from importlib import import_module

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from .services import SUM_SCALE

COUNTERS = {
    "alpha_records_ingested_total": ("Total records ingested", ["source"]),
    "alpha_records_validated_total": ("Total records validated", ["source"]),
    "alpha_validation_failures_total": ("Total validation failures", ["source", "error_code"]),
    "alpha_parse_errors_total": ("Total records or files that could not be parsed", ["source"]),
    "alpha_source_errors_total": ("Failed polls, token requests and source reads, by failure kind", ["source", "kind"]),
    "alpha_source_polls_total": ("Polls of rest_api sources by outcome (ok, failed, skipped)", ["source", "outcome"]),
    "beta_records_transformed_total": ("Total records transformed", ["source"]),
    "beta_records_rejected_total": ("Records rejected by quality scoring", ["source"]),
    "beta_records_filtered_total": ("Records that matched no route", ["source"]),
    "beta_records_dropped_total": ("Records filtered out by a drop rule", ["source", "rule"]),
    "beta_records_failed_total": ("Records sent to the DLQ by a rule with on_failure: fail", ["source", "rule"]),
    "beta_rule_executions_total": ("Records a transformation rule was evaluated on", ["rule"]),
    "beta_rule_matches_total": ("Records a transformation rule matched", ["rule"]),
    "beta_rule_failures_total": ("Records a transformation rule failed on (any on_failure)", ["rule"]),
    "beta_enrichment_lookups_total": ("Total enrichment lookups, by result (hit, miss, stale, error)",
                                      ["source", "result"]),
    "beta_schema_mapping_total": ("Records mapped per schema, by outcome (success, failure)", ["schema", "outcome"]),
    "beta_quality_flagged_total": ("Records flagged by quality scoring (warn, error)", ["source", "level"]),
    "gamma_records_delivered_total": ("Total records delivered", ["destination"]),
    "gamma_delivery_failures_total": ("Total delivery failures (attempts)", ["destination", "category"]),
    "gamma_routes_refused_total": ("Routes refused by a destination's authorization", ["destination", "source"]),
}

# The manual's buckets (Monitoring and Alerting > Metric Types > Histogram Metrics).
PARSE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1)
TRANSFORM_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0)
DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
# Not in the manual's table (Runbook E.1 greps source_fetch_duration): request latency buckets.
FETCH_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
# Not in the manual's table: per-record time of one transformation rule (the dashboard's heat map).
RULE_BUCKETS = (0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

HISTOGRAMS = {
    "alpha_parse_duration_seconds": ("Time to parse a body or file", ["source"], PARSE_BUCKETS),
    "alpha_validation_duration_seconds": ("Time to validate a batch", ["source"], PARSE_BUCKETS),
    "alpha_source_fetch_duration_seconds": ("Time to fetch one page from a rest_api source", ["source"], FETCH_BUCKETS),
    "beta_transform_duration_seconds": ("Time to transform a batch", ["source"], TRANSFORM_BUCKETS),
    "beta_enrichment_duration_seconds": ("Time of enrichment lookups", ["source"], TRANSFORM_BUCKETS),
    "beta_rule_duration_seconds": ("Time per record of a transformation rule", ["rule"], RULE_BUCKETS),
    "gamma_delivery_duration_seconds": ("Time to deliver a batch", ["destination"], DELIVERY_BUCKETS),
    "pipeline_end_to_end_latency_seconds": ("Ingest-to-delivery latency per record", ["source"], LATENCY_BUCKETS),
    "module_latency_seconds": ("Time a batch spends in each module", ["module"], LATENCY_BUCKETS),
}

GAUGE_MODULES = ("ingestion.metrics", "transform.metrics", "delivery.metrics")


def _parse_labels(key: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in key.split(",") if pair)


def _histogram_families(rows: list[dict]):
    by_series: dict[tuple[str, str], dict] = {}
    for row in rows:
        for name in HISTOGRAMS:
            if row["name"].startswith(name + "_"):
                suffix = row["name"][len(name) + 1:]
                labels = _parse_labels(row["labels"])
                le = labels.pop("le", None)
                series = by_series.setdefault((name, ",".join(f"{k}={v}" for k, v in sorted(labels.items()))),
                                              {"buckets": {}, "sum": 0, "labels": labels})
                if suffix == "bucket" and le is not None:
                    series["buckets"][le] = row["value"]
                elif suffix == "sum":
                    series["sum"] = row["value"]
    for name, (help_text, label_names, buckets) in HISTOGRAMS.items():
        family = HistogramMetricFamily(name, help_text, labels=label_names)
        for (series_name, _), series in sorted(by_series.items()):
            if series_name != name:
                continue
            cumulative, points = 0, []
            for bound in [repr(float(b)) for b in buckets] + ["+Inf"]:
                cumulative += series["buckets"].get(bound, 0)
                points.append((bound, cumulative))
            family.add_metric([series["labels"].get(n, "") for n in label_names], points, series["sum"] / SUM_SCALE)
        yield family


class PipelineCollector(Collector):
    def collect(self):
        from .models import MetricCounter

        rows = list(MetricCounter.objects.all().values("name", "labels", "value"))
        families = {
            name: (CounterMetricFamily(name[: -len("_total")], help_text, labels=label_names), label_names)
            for name, (help_text, label_names) in COUNTERS.items()
        }
        for row in rows:
            if row["name"] in families:
                family, label_names = families[row["name"]]
                labels = _parse_labels(row["labels"])
                family.add_metric([labels.get(n, "") for n in label_names], row["value"])
        yield from (family for family, _ in families.values())
        yield from _histogram_families(rows)
        for module in GAUGE_MODULES:
            try:
                collect = import_module(module).collect
            except ModuleNotFoundError:
                continue
            yield from collect()

    def describe(self):
        return []  # collected lazily at scrape time (needs the database)
