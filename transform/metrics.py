"""Beta gauges computed at scrape time: queue depth, cache size, hit rate, quality, schema mapping, drain."""
import logging
from collections import Counter, defaultdict

from django.db.models import Sum
from prometheus_client.core import GaugeMetricFamily

from ingestion.choices import BatchStage
from ingestion.models import Batch

from .cache import cache_store
from .enrichment import hit_rate
from .models import BetaControl, EnrichmentSource
from .selectors import recent_window_runs

logger = logging.getLogger(__name__)


def collect():
    depth = GaugeMetricFamily("beta_queue_depth", "Records awaiting transformation")
    depth.add_metric([], Batch.objects.filter(stage=BatchStage.VALIDATED).aggregate(n=Sum("accepted"))["n"] or 0)
    yield depth

    draining = GaugeMetricFamily("beta_draining", "1 while Module Beta drains (ingestion refuses new records)")
    draining.add_metric([], 1 if BetaControl.objects.filter(name="beta", draining=True).exists() else 0)
    yield draining

    size = GaugeMetricFamily("beta_cache_size", "Enrichment cache entries", labels=["source"])
    try:
        store = cache_store()
        for source_id in EnrichmentSource.objects.values_list("enrichment_id", flat=True):
            size.add_metric([source_id], store.count(source_id))
    except Exception as exc:  # an unreachable cache must not break /metrics
        logger.warning("beta_cache_size: cache unreachable: %s", exc, extra={"component": "metrics"})
    yield size

    # Recent values (last 15 minutes of transformed batches), as the manual's alerts compare them.
    lookups: dict[str, Counter] = defaultdict(Counter)
    quality: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    schemas: dict[str, Counter] = defaultdict(Counter)
    for run in recent_window_runs().values("source_id", "schema", "records", "transformed", "dropped", "quality_sum",
                                           "scored", "enrichment"):
        for source, counts in (run["enrichment"] or {}).items():
            lookups[source].update({k: counts.get(k, 0) for k in ("hit", "miss", "stale", "error")})
        quality[run["source_id"]][0] += run["quality_sum"]
        quality[run["source_id"]][1] += run["scored"]
        mapped = run["transformed"] + run["dropped"]
        schemas[run["schema"]].update({"success": mapped, "all": run["records"]})
    rate = GaugeMetricFamily("beta_enrichment_cache_hit_rate", "Enrichment cache hit rate, last 15 minutes",
                             labels=["source"])
    for source, counts in sorted(lookups.items()):
        value = hit_rate(counts)
        if value is not None:
            rate.add_metric([source], value)
    yield rate
    score = GaugeMetricFamily("beta_quality_score", "Average quality score, last 15 minutes", labels=["source"])
    for source, (total, n) in sorted(quality.items()):
        if n:
            score.add_metric([source], round(total / n, 4))
    yield score
    mapping = GaugeMetricFamily("beta_schema_mapping_success_ratio", "Records mapped without a rule failure, "
                                "last 15 minutes", labels=["schema"])
    for schema, counts in sorted(schemas.items()):
        if counts["all"]:
            mapping.add_metric([schema], round(counts["success"] / counts["all"], 4))
    yield mapping
