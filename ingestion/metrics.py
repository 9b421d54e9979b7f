"""Alpha gauges computed at scrape time (monitoring.metrics.GAUGE_MODULES lists this module).

- alpha_buffer_utilization: records ingested but not yet transformed / buffer capacity (0..1). The
  series without a source (source="") is the whole buffer, which alpha_buffer_critical (> 0.9)
  watches; each source's series is its share of the capacity.
- alpha_source_connection_status: 1 when the source's last contact reached and authenticated (rest_api),
  its directory exists (file), or it is an enabled push source; 0 when it failed. Enabled sources only.
- alpha_active_connections: sources ingesting now: enabled, not paused, connection status 1.
"""
from django.db.models import Sum
from prometheus_client.core import GaugeMetricFamily

from .choices import BatchStage
from .models import Batch, Source, SourceState
from .selectors import _source_health
from .services import alpha_control, buffer_capacity


def collect():
    control = alpha_control()
    capacity = buffer_capacity(control)
    by_source = dict(Batch.objects.filter(stage=BatchStage.VALIDATED).values_list("source_id")
                     .annotate(n=Sum("accepted")).values_list("source_id", "n"))
    utilization = GaugeMetricFamily("alpha_buffer_utilization",
                                    "Buffer utilization: records awaiting transformation / capacity", labels=["source"])
    utilization.add_metric([""], sum(n or 0 for n in by_source.values()) / capacity)
    states = {s.source_id: s for s in SourceState.objects.all()}
    sources = list(Source.objects.all())
    for source in sources:
        utilization.add_metric([source.source_id], (by_source.get(source.source_id) or 0) / capacity)
    yield utilization

    capacity_family = GaugeMetricFamily("alpha_buffer_capacity", "Buffer capacity (records)")
    capacity_family.add_metric([], capacity)
    yield capacity_family
    paused = GaugeMetricFamily("alpha_ingestion_paused", "1 while all ingestion is paused by an operator")
    paused.add_metric([], int(control.paused))
    yield paused

    status = GaugeMetricFamily("alpha_source_connection_status", "1 connected, 0 connection failed", labels=["source"])
    active = GaugeMetricFamily("alpha_active_connections", "Active source connections (ingesting now)",
                               labels=["source"])
    failures = GaugeMetricFamily("alpha_source_consecutive_failures", "Failed polls in a row", labels=["source"])
    for source in sources:
        if not source.enabled:
            continue
        state = states.get(source.source_id)
        _, connected = _source_health(source, state)
        if connected is not None:
            status.add_metric([source.source_id], connected)
        source_paused = control.paused or bool(state and state.paused)
        active.add_metric([source.source_id], int(bool(connected) and not source_paused))
        failures.add_metric([source.source_id], state.consecutive_failures if state else 0)
    yield status
    yield active
    yield failures
