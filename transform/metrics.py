"""Beta gauges computed at scrape time."""
from django.db.models import Sum
from prometheus_client.core import GaugeMetricFamily

from ingestion.choices import BatchStage
from ingestion.models import Batch


def collect():
    depth = GaugeMetricFamily("beta_queue_depth", "Records awaiting transformation")
    depth.add_metric([], Batch.objects.filter(stage=BatchStage.VALIDATED).aggregate(n=Sum("accepted"))["n"] or 0)
    yield depth
