"""Reads about Module Gamma: destinations, deliveries and the dead letter queue."""
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q, Subquery

from .choices import DeliveryStatus
from .models import BatchDelivery, DeadLetter, DeliveryAttempt, Destination, RoutingRule


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


# --- Console: DLQ review, circuit breakers and the Module Gamma dashboard -------------------------------


def dead_letter_get(*, entry_id: int) -> DeadLetter | None:
    """One DLQ entry with its record, batch and deciding operator."""
    return DeadLetter.objects.select_related("record", "batch", "decided_by").filter(id=entry_id).first()


def dead_letter_payloads(entry: DeadLetter) -> dict:
    """What the entry page shows: the record as it would be replayed (`current`), and when corrected the
    original next to the correction. Transform failures replay the ingested payload, delivery failures
    the transformed data (the same fields delivery.dlq.dead_letter_correct edits)."""
    from .choices import FailureCategory

    record = entry.record
    stored = record.payload if entry.category == FailureCategory.TRANSFORM or record.data is None else record.data
    return {
        "current": entry.corrected_payload if entry.corrected_payload is not None else stored,
        "original": entry.original_payload if entry.corrected_payload is not None else None,
        "corrected": entry.corrected_payload,
        "field": "payload" if entry.category == FailureCategory.TRANSFORM else "data",
    }


def dead_letter_history(*, entry: DeadLetter, limit: int = 100) -> list:
    """The audit entries naming this DLQ entry, newest first: its correction (target `dlq:<id>`) and every
    triage, replay, export and purge whose details list it (ids in entry_ids, replayed, purged, refused)."""
    from django.db import connection
    from django.db.models import Q

    from opsconsole.models import AuditEntry

    candidates = AuditEntry.objects.filter(action__startswith="dlq.", at__gte=entry.first_failed_at).order_by("-at", "-id")
    if connection.vendor == "postgresql":  # JSON containment runs in the database
        q = Q(target=f"dlq:{entry.id}")
        for key in ("entry_ids", "replayed", "purged"):
            q |= Q(**{f"details__{key}__contains": [entry.id]})
        q |= Q(details__refused__contains=[{"entry_id": entry.id}])
        return list(candidates.filter(q)[:limit])
    found = []  # SQLite (embedded mode) has no JSON containment: read the DLQ actions since the failure
    for audit in candidates.iterator():
        details = audit.details or {}
        if (audit.target == f"dlq:{entry.id}"
                or any(entry.id in (details.get(k) or []) for k in ("entry_ids", "replayed", "purged"))
                or any(r.get("entry_id") == entry.id for r in details.get("refused") or [])):
            found.append(audit)
            if len(found) >= limit:
                break
    return found


def dead_letters_of_record(*, entry: DeadLetter) -> list[DeadLetter]:
    """The record's other DLQ entries (another destination, or a replay that failed again)."""
    return list(DeadLetter.objects.filter(record_id=entry.record_id).exclude(id=entry.id).order_by("-last_failed_at", "-id"))


def operation_run_get(*, run_id: int):
    from .models import OperationRun

    return OperationRun.objects.select_related("actor").filter(id=run_id).first()


def breaker_board(*, destination_id: str | None = None, transitions_per_destination: int = 5) -> list[dict]:
    """Every configured destination's circuit breaker (or one's) without creating rows (no row yet = CLOSED):
    state, since (its last transition), reason, counters, held deliveries and its latest transitions."""
    from django.db.models import Max

    from .choices import BreakerState
    from .models import BreakerTransition, CircuitBreaker

    breakers = {b.destination_id: b for b in CircuitBreaker.objects.all()}
    since = dict(BreakerTransition.objects.values_list("destination_id").annotate(at=Max("at")).order_by())
    held = dict(BatchDelivery.objects.filter(status=DeliveryStatus.HELD).values_list("destination_id")
                .annotate(n=Count("id")).order_by())
    recent: dict[str, list] = {}
    transitions = BreakerTransition.objects.select_related("actor").order_by("-at", "-id")
    if destination_id is not None:
        transitions = transitions.filter(destination_id=destination_id)
    for transition in transitions[:500] if transitions_per_destination else ():
        bucket = recent.setdefault(transition.destination_id, [])
        if len(bucket) < transitions_per_destination:
            bucket.append(transition)
    board = []
    destinations = Destination.objects.order_by("destination_id")
    if destination_id is not None:
        destinations = destinations.filter(destination_id=destination_id)
    for destination in destinations:
        breaker = breakers.get(destination.destination_id)
        state = breaker.state if breaker else BreakerState.CLOSED
        board.append({
            "destination_id": destination.destination_id,
            "enabled": destination.enabled,
            "state": state,
            "state_label": BreakerState(state).label,
            "css": {BreakerState.CLOSED: "ok", BreakerState.HALF_OPEN: "warn", BreakerState.OPEN: "bad"}[state],
            "since": since.get(destination.destination_id),
            "opened_at": breaker.opened_at if breaker else None,
            "reason": breaker.reason if breaker else "",
            "consecutive_failures": breaker.consecutive_failures if breaker else 0,
            "window_failures": breaker.window_failures if breaker else 0,
            "window_successes": breaker.window_successes if breaker else 0,
            "held_deliveries": held.get(destination.destination_id, 0),
            "transitions": recent.get(destination.destination_id, []),
        })
    return board


def _buckets(since: datetime, now: datetime, count: int) -> tuple[list[datetime], float]:
    width = (now - since).total_seconds() / count
    return [since + timedelta(seconds=width * i) for i in range(count)], width


def _bucket_index(at: datetime, since: datetime, width: float, count: int) -> int:
    return min(count - 1, max(0, int((at - since).total_seconds() // width)))


def delivery_rate_series(*, since: datetime, now: datetime, buckets: int = 12) -> dict:
    """Records acknowledged per minute, per destination, in equal time buckets from `since` to `now`:
    the sum of `records` of successful DeliveryAttempt rows in each bucket, divided by its minutes.
    Destinations with no successful attempt in the window have no series."""
    starts, width = _buckets(since, now, buckets)
    totals: dict[str, list[float]] = {}
    rows = DeliveryAttempt.objects.filter(ok=True, at__gte=since, at__lte=now).values_list("destination_id", "at", "records")
    for destination_id, at, records in rows.iterator():
        totals.setdefault(destination_id, [0.0] * buckets)[_bucket_index(at, since, width, buckets)] += records
    minutes = width / 60
    return {
        "starts": starts,
        "bucket_seconds": width,
        "series": [{"name": d, "values": [round(v / minutes, 2) for v in totals[d]]} for d in sorted(totals)],
        "records": int(sum(sum(v) for v in totals.values())),
    }


def _attempts_in_window(since: datetime, now: datetime):
    """Attempts in the window, each with `is_retry`: an earlier attempt of the same batch delivery exists."""
    earlier = DeliveryAttempt.objects.filter(delivery_id=OuterRef("delivery_id"), id__lt=OuterRef("id"))
    return DeliveryAttempt.objects.filter(at__gte=since, at__lte=now).annotate(is_retry=Exists(earlier))


def is_timeout(ok: bool, error: str) -> bool:
    """A failed attempt that got no acknowledgment in time (HTTP timeout, statement timeout)."""
    return not ok and "timeout" in (error or "").lower()


def acknowledgment_series(*, since: datetime, now: datetime, buckets: int = 12) -> dict:
    """Ack, timeout and retry rates (shares of all delivery attempts, in %) per time bucket, all destinations:
    ack = acknowledged (ok) attempts, timeout = attempts that timed out, retry = attempts that were not
    the first of their batch delivery. Buckets with no attempt are gaps (None)."""
    starts, width = _buckets(since, now, buckets)
    n, ok, timeout, retry = ([0] * buckets for _ in range(4))
    rows = _attempts_in_window(since, now).values_list("at", "ok", "error", "is_retry")
    for at, success, error, is_retry in rows.iterator():
        i = _bucket_index(at, since, width, buckets)
        n[i] += 1
        ok[i] += success
        timeout[i] += is_timeout(success, error)
        retry[i] += is_retry

    def share(part: list[int]) -> list[float | None]:
        return [round(100 * p / t, 1) if t else None for p, t in zip(part, n)]

    return {"starts": starts, "attempts": sum(n), "series": [
        {"name": "ack rate", "values": share(ok)},
        {"name": "timeout rate", "values": share(timeout)},
        {"name": "retry rate", "values": share(retry)},
    ]}


def destination_health(*, since: datetime, now: datetime) -> list[dict]:
    """The dashboard's health grid: per configured destination, its breaker, attempts in the window, ack /
    timeout / retry rates, latency p50/p95/p99 of acknowledged attempts (as the status endpoint computes
    them), records delivered, pending and held deliveries, and a colour (`css`) for the grid cell."""
    from .choices import BreakerState
    from .destination_ops import _percentile  # the same nearest-rank percentiles as GET .../status

    board = {b["destination_id"]: b for b in breaker_board(transitions_per_destination=0)}
    stats: dict[str, dict] = {}
    rows = _attempts_in_window(since, now).values_list("destination_id", "ok", "error", "is_retry", "duration_ms",
                                                       "records", "at")
    for destination_id, ok, error, is_retry, duration_ms, records, at in rows.iterator():
        s = stats.setdefault(destination_id, {"n": 0, "ok": 0, "timeout": 0, "retry": 0, "durations": [], "records": 0,
                                              "last_ok": None})
        s["n"] += 1
        s["timeout"] += is_timeout(ok, error)
        s["retry"] += is_retry
        if ok:
            s["ok"] += 1
            s["durations"].append(duration_ms)
            s["records"] += records
            s["last_ok"] = max(s["last_ok"], at) if s["last_ok"] else at
    deliveries: dict[str, dict] = {}
    for destination_id, status, count in (BatchDelivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.HELD])
                                          .values_list("destination_id", "status").annotate(c=Count("id")).order_by()):
        deliveries.setdefault(destination_id, {})[status] = count
    grid = []
    for destination_id, breaker in board.items():
        s = stats.get(destination_id, {"n": 0, "ok": 0, "timeout": 0, "retry": 0, "durations": [], "records": 0, "last_ok": None})
        durations = sorted(s["durations"])
        n = s["n"]
        success = s["ok"] / n if n else None
        if breaker["state"] == BreakerState.OPEN:
            css, health = "bad", "breaker open"
        elif not breaker["enabled"]:
            css, health = "muted", "disabled"
        elif breaker["state"] == BreakerState.HALF_OPEN:
            css, health = "warn", "probing"
        elif success is None:
            css, health = "plain", "idle"
        elif success < 0.5:
            css, health = "bad", "failing"
        elif success < 0.95:
            css, health = "warn", "degraded"
        else:
            css, health = "ok", "healthy"
        grid.append({
            "destination_id": destination_id, "css": css, "health": health, "breaker": breaker,
            "attempts": n, "success_rate": success,
            "ack_rate": success, "timeout_rate": s["timeout"] / n if n else None, "retry_rate": s["retry"] / n if n else None,
            "p50": _percentile(durations, 0.50), "p95": _percentile(durations, 0.95), "p99": _percentile(durations, 0.99),
            "records": s["records"], "last_success": s["last_ok"],
            "pending": deliveries.get(destination_id, {}).get(DeliveryStatus.PENDING, 0),
            "held": deliveries.get(destination_id, {}).get(DeliveryStatus.HELD, 0),
        })
    return grid


def retry_attempt_distribution(*, since: datetime) -> list[dict]:
    """How many attempts batch deliveries created since `since` took (attempted ones only): one row per
    attempt count, with the number of deliveries and how many of them were delivered."""
    rows = (BatchDelivery.objects.filter(created_at__gte=since, attempts__gte=1).values("attempts")
            .annotate(deliveries=Count("id"), delivered=Count("id", filter=Q(status=DeliveryStatus.DELIVERED)))
            .order_by("attempts"))
    return [dict(r) for r in rows]


def breaker_transitions_recent(*, limit: int = 50) -> list:
    """The latest circuit breaker transitions of every destination, newest first."""
    from .models import BreakerTransition

    return list(BreakerTransition.objects.select_related("actor").order_by("-at", "-id")[:limit])


def routing_rules_to(*, destination_id: str) -> list[RoutingRule]:
    """Routing rules that send records to this destination."""
    return list(RoutingRule.objects.filter(destination_id=destination_id).order_by("priority", "rule_id"))


def dead_letters_open_count(*, destination_id: str) -> int:
    """Open DLQ entries (awaiting a decision) of one destination."""
    from .choices import DLQ_OPEN_STATES

    return DeadLetter.objects.filter(destination_id=destination_id, state__in=DLQ_OPEN_STATES).count()


def operation_runs_recent(*, limit: int = 5) -> list:
    """The latest long DLQ operations (replays, purges, exports), newest first."""
    from .models import OperationRun

    return list(OperationRun.objects.select_related("actor").order_by("-created_at", "-id")[:limit])
