"""Opening incidents from the pipeline's own durable signals (a beat task polls them).

  - circuit breakers not CLOSED (Runbook C.3): one destination → P3 ("a single delivery destination
    unavailable"), several → P2 ("multiple delivery destinations"), every enabled destination → P1
    ("simultaneous unavailability of all configured delivery destinations");
  - dead letter queue growth above the manual's gamma_dlq_growing threshold (100 in an hour) → P3.

Each condition has one signal key, so a condition that persists finds its open incident instead of
opening another; a condition that worsens (P2 → P1) records an "impact expanded" trigger on it.
Other apps (alerts, breakers) call incidents.services.incident_open_from_signal directly.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from .choices import ComponentKind, Severity
from .models import Incident
from .services import incident_open_from_signal, signal_key_for_destination

DESTINATIONS_KEY = "gamma.destinations.unavailable"
DLQ_KEY = "gamma.dlq.growing"
DLQ_GROWTH_PER_HOUR = 100  # the manual's gamma_dlq_growing: delta(gamma_dlq_size[1h]) > 100


def pipeline_signals_check(*, now: datetime | None = None) -> list[tuple[Incident, bool]]:
    """Look at the breakers and the DLQ; open (or find) the incident of each firing condition."""
    from delivery.choices import BreakerState
    from delivery.models import CircuitBreaker, DeadLetter, Destination

    now = now or timezone.now()
    results: list[tuple[Incident, bool]] = []
    enabled = set(Destination.objects.filter(enabled=True).values_list("destination_id", flat=True))
    unavailable = {b.destination_id: b for b in CircuitBreaker.objects.exclude(state=BreakerState.CLOSED)
                   if b.destination_id in enabled}
    if len(unavailable) == 1:
        [(destination_id, breaker)] = unavailable.items()
        results.append(incident_open_from_signal(
            key=signal_key_for_destination(destination_id), severity=Severity.P3,
            summary=f"Destination {destination_id} unavailable (circuit breaker {breaker.get_state_display()})",
            impact=f"Deliveries to {destination_id} are held; other destinations receive data.",
            description=breaker.reason, now=now, source="circuit breaker",
            components=[(ComponentKind.MODULE, "gamma"), (ComponentKind.DESTINATION, destination_id)],
            details={"destinations": [destination_id]}))
    elif unavailable:
        everything = set(unavailable) >= enabled
        names = ", ".join(sorted(unavailable))
        results.append(incident_open_from_signal(
            key=DESTINATIONS_KEY, severity=Severity.P1 if everything else Severity.P2,
            summary=("All delivery destinations unavailable" if everything else "Multiple delivery destinations unavailable")
            + f" ({names})",
            impact=("No output reaches downstream consumers." if everything else
                    f"Deliveries to {names} are held."),
            description="; ".join(f"{d}: {b.reason}" for d, b in sorted(unavailable.items())), now=now,
            source="circuit breaker",
            components=[(ComponentKind.MODULE, "gamma"), *[(ComponentKind.DESTINATION, d) for d in sorted(unavailable)]],
            details={"destinations": sorted(unavailable)}))
    since = now - timedelta(hours=1)
    growth = (DeadLetter.objects.filter(last_failed_at__gte=since).values("destination_id")
              .annotate(n=Count("id")).order_by())
    per_destination = {row["destination_id"] or "(transform)": row["n"] for row in growth}
    total = sum(per_destination.values())
    if total > DLQ_GROWTH_PER_HOUR:
        components = [(ComponentKind.MODULE, "gamma"), *[(ComponentKind.DESTINATION, d) for d in per_destination if d in enabled]]
        results.append(incident_open_from_signal(
            key=DLQ_KEY, severity=Severity.P3, now=now, source="dead letter queue",
            summary=f"Dead letter queue growing ({total} entries in the last hour)",
            impact="Records are failing delivery: " + ", ".join(f"{d} {n}" for d, n in sorted(per_destination.items())),
            components=components, details={"dlq_growth": per_destination}))
    return results
