"""Reads that combine the modules: the pipeline status and the overview of the console."""
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from delivery import selectors as delivery_selectors
from delivery.choices import BreakerState
from ingestion import selectors as ingestion_selectors
from ingestion import services as ingestion_services
from ingestion.choices import BufferLevel, SourceHealth
from transform import selectors as transform_selectors

HEALTHY = "HEALTHY"
DEGRADED = "DEGRADED"
UNHEALTHY = "UNHEALTHY"

# The manual's gamma_dlq_growing alert: delta(gamma_dlq_size[1h]) > 100.
DLQ_GROWTH_PER_HOUR_UNHEALTHY = 100


@dataclass(frozen=True)
class PipelineStatus:
    level: str
    reasons: list[str] = field(default_factory=list)

    @property
    def css(self) -> str:
        return {HEALTHY: "ok", DEGRADED: "warn"}.get(self.level, "bad")


def pipeline_status(*, now: datetime | None = None) -> PipelineStatus:
    """The pipeline status indicator of the manual's System Overview dashboard: the aggregation of every
    module's health checks, read from the modules' own selectors.

    UNHEALTHY when work has stopped moving or failures pile up:
      - Alpha: the buffer is full (utilization at or above 100%: ingestion paused by back-pressure);
      - Beta: batches awaiting transformation that were ingested more than
        PIPELINE_STUCK_AFTER_SECONDS ago (Beta is down or not keeping up);
      - Gamma: pending deliveries created more than PIPELINE_STUCK_AFTER_SECONDS ago that Gamma never
        attempted and that are not waiting for a scheduled retry;
      - Gamma: the circuit breaker of every enabled destination is OPEN (nothing can be delivered);
      - Gamma: the dead letter queue grew by more than 100 entries in the last hour (gamma_dlq_growing).
    DEGRADED when the pipeline moves but not cleanly:
      - Alpha: ingestion paused by an operator;
      - Alpha: the buffer at or above the throttle threshold (ALPHA_BUFFER_THROTTLE, 80%: ingestion throttled);
      - Alpha: an enabled source whose health is UNHEALTHY (consecutive poll failures, missing directory);
      - Beta: draining (ingestion refuses new records until resumed);
      - Gamma: a destination's circuit breaker is OPEN (its deliveries are held);
      - Gamma: pending deliveries whose last attempt failed (retrying with backoff);
      - Gamma: the dead letter queue grew at all in the last hour.
    HEALTHY otherwise. `reasons` says, in the operator's words, which signals fired (the UNHEALTHY ones
    first, each list in pipeline order). The badge is on every console page: cheap reads, a few per source.
    """
    now = now or timezone.now()
    stuck_after = settings.PIPELINE_STUCK_AFTER_SECONDS
    unhealthy: list[str] = []
    degraded: list[str] = []

    # Module Alpha: the ingestion switch, back-pressure, source health.
    buffer = ingestion_services.buffer_status()
    if buffer["ingestion_paused"]:
        degraded.append("ingestion paused by an operator")
    if buffer["level"] == BufferLevel.FULL:
        unhealthy.append(f"ingestion buffer full ({buffer['utilization']:.0%} of {buffer['capacity']} records): "
                         "ingestion paused until Module Beta drains it")
    elif buffer["level"] == BufferLevel.THROTTLE:
        degraded.append(f"ingestion buffer at {buffer['utilization']:.0%} of {buffer['capacity']} records: "
                        "ingestion throttled")
    for source in ingestion_selectors.source_statuses(now=now):
        if source["enabled"] and source["health"] == SourceHealth.UNHEALTHY:
            error = source["last_error"]
            degraded.append(f"source {source['source_id']} UNHEALTHY"
                            + (f" ({error['kind']}: {error['message'][:80]})" if error else ""))

    # Module Beta: the drain switch, batches it does not pick up.
    if transform_selectors.beta_drain_status()["draining"]:
        degraded.append("Module Beta draining: ingestion refuses new records until resumed")
    stuck_batches = ingestion_selectors.batches_stuck_count(older_than_seconds=stuck_after, now=now)
    if stuck_batches:
        unhealthy.append(f"{stuck_batches} batch(es) awaiting transformation for more than {stuck_after} s")

    # Module Gamma: deliveries never attempted, circuit breakers, the DLQ, retries.
    stuck_deliveries = delivery_selectors.pending_deliveries_stuck_count(
        older_than=now - timedelta(seconds=stuck_after), now=now
    )
    if stuck_deliveries:
        unhealthy.append(f"{stuck_deliveries} deliveries not attempted for more than {stuck_after} s")
    if delivery_selectors.open_breaker_destinations():
        board = [b for b in delivery_selectors.breaker_board(transitions_per_destination=0) if b["enabled"]]
        open_ids = [b["destination_id"] for b in board if b["state"] == BreakerState.OPEN]
        if open_ids and len(open_ids) == len(board):
            unhealthy.append(f"circuit breakers OPEN for all destinations ({', '.join(open_ids)}): nothing is delivered")
        elif open_ids:
            degraded.append(f"circuit breaker OPEN for {', '.join(open_ids)}: its deliveries are held")
    dlq_growth = delivery_selectors.dead_letters_added_count(since=now - timedelta(hours=1))
    if dlq_growth > DLQ_GROWTH_PER_HOUR_UNHEALTHY:
        unhealthy.append(f"dead letter queue grew by {dlq_growth} in the last hour")
    elif dlq_growth:
        degraded.append(f"dead letter queue grew by {dlq_growth} in the last hour")
    failing = delivery_selectors.pending_deliveries_failing_count()
    if failing:
        degraded.append(f"{failing} deliveries retrying after errors")

    if unhealthy:
        return PipelineStatus(UNHEALTHY, unhealthy + degraded)
    if degraded:
        return PipelineStatus(DEGRADED, degraded)
    return PipelineStatus(HEALTHY)


def pipeline_overview(*, now: datetime | None = None) -> dict:
    """Everything the console's overview panel shows, read in one go."""
    now = now or timezone.now()
    reconciliation = ingestion_selectors.reconciliation()
    return {
        "at": now,
        "status": pipeline_status(now=now),
        "stages": ingestion_selectors.stage_counts(),
        "throughput": ingestion_selectors.records_per_minute(minutes=5, now=now),
        "batches_waiting": ingestion_selectors.batches_waiting(),
        "pending_deliveries": delivery_selectors.pending_delivery_count(),
        "dlq_size": delivery_selectors.dead_letter_count(),
        "validation_failures": ingestion_selectors.validation_failures_latest(limit=5),
        "failed_deliveries": delivery_selectors.deliveries_failed_latest(limit=5),
        "reconciliation": reconciliation["total"],
    }
