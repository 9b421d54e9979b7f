"""Circuit breakers per destination (Runbook C.3).

CLOSED: deliveries flow; transient failures are counted. `failure_threshold` consecutive failures, or a
failure ratio of `failure_ratio` over at least `min_requests` attempts in `window_seconds`, trips it.
OPEN: deliveries are held (records stay in the pipeline as `held`, not in the DLQ).
After `cooldown_seconds` one held delivery goes through as a probe (HALF_OPEN): success closes the
breaker and releases every held delivery; failure opens it again. An operator may reset it.
Every transition is recorded with its reason.
"""
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from opsconsole.audit import audit_record
from opsconsole.dispatch import send_after_commit
from opsconsole.errors import ApplicationError

from .choices import BreakerState, DeliveryStatus
from .models import BatchDelivery, BreakerTransition, CircuitBreaker

logger = logging.getLogger(__name__)

DEFAULTS = {
    "failure_threshold": 5, "failure_ratio": 0.5, "min_requests": 10, "window_seconds": 60, "cooldown_seconds": 30,
}


def breaker_settings(spec: dict | None) -> dict:
    return {**DEFAULTS, **((spec or {}).get("circuit_breaker") or {})}


def _transition(breaker: CircuitBreaker, method: str, reason: str, actor=None) -> None:
    before = breaker.state
    getattr(breaker, method)()
    breaker.reason = reason
    if breaker.state == BreakerState.OPEN:
        breaker.opened_at = timezone.now()
    if breaker.state == BreakerState.CLOSED:
        breaker.opened_at = None
        breaker.consecutive_failures = breaker.window_failures = breaker.window_successes = 0
        breaker.window_started_at = None
    breaker.save()
    BreakerTransition.objects.create(
        destination_id=breaker.destination_id, source_state=before, target_state=breaker.state, reason=reason,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
    )
    logger.warning("circuit breaker %s: %s -> %s (%s)", breaker.destination_id, before, breaker.state, reason,
                   extra={"component": "circuit_breaker", "module_name": "gamma"})


def breaker_get(destination_id: str) -> CircuitBreaker:
    breaker, _ = CircuitBreaker.objects.get_or_create(destination_id=destination_id)
    return breaker


@dataclass
class Admission:
    allowed: bool
    hold_until: datetime | None = None  # set when the delivery must wait behind an open breaker
    busy: bool = False  # another delivery is probing right now


def breaker_admit(*, destination_id: str, spec: dict, now: datetime) -> Admission:
    """May a delivery to this destination go now? Call inside the delivery's transaction."""
    breaker = breaker_get(destination_id)
    if breaker.state == BreakerState.CLOSED:
        return Admission(allowed=True)
    locked = CircuitBreaker.objects.select_for_update(skip_locked=True).filter(pk=breaker.pk).first()
    if locked is None:
        return Admission(allowed=False, busy=True)
    cooldown = timedelta(seconds=float(breaker_settings(spec)["cooldown_seconds"]))
    if locked.state == BreakerState.OPEN:
        reopen_at = (locked.opened_at or now) + cooldown
        if now < reopen_at:
            return Admission(allowed=False, hold_until=reopen_at)
        _transition(locked, "probe", f"cool-down of {cooldown.total_seconds():g}s elapsed: probing")
    # HALF_OPEN and the row is ours: this delivery is the probe; others skip the lock and wait.
    return Admission(allowed=True)


def breaker_record(*, destination_id: str, spec: dict, ok: bool, counted_failure: bool, error: str, now: datetime) -> bool:
    """Record an attempt's outcome; returns True when the breaker is (now) OPEN."""
    breaker = CircuitBreaker.objects.select_for_update().get(destination_id=destination_id)
    cfg = breaker_settings(spec)
    if breaker.state == BreakerState.HALF_OPEN:
        if ok:
            _transition(breaker, "close", "probe delivery succeeded")
            held_release(destination_id=destination_id)
        elif counted_failure:
            _transition(breaker, "trip", f"probe delivery failed: {error}")
        return breaker.state == BreakerState.OPEN
    if breaker.state == BreakerState.OPEN:
        return True
    if not ok and not counted_failure:
        return False  # a data error says the destination is up
    window = timedelta(seconds=float(cfg["window_seconds"]))
    if breaker.window_started_at is None or now - breaker.window_started_at > window:
        breaker.window_started_at, breaker.window_successes, breaker.window_failures = now, 0, 0
    if ok:
        breaker.window_successes += 1
        breaker.consecutive_failures = 0
    else:
        breaker.window_failures += 1
        breaker.consecutive_failures += 1
    attempts = breaker.window_successes + breaker.window_failures
    ratio = breaker.window_failures / attempts if attempts else 0.0
    if not ok and breaker.consecutive_failures >= int(cfg["failure_threshold"]):
        _transition(breaker, "trip", f"{breaker.consecutive_failures} consecutive failures; last: {error}")
    elif not ok and attempts >= int(cfg["min_requests"]) and ratio >= float(cfg["failure_ratio"]):
        _transition(breaker, "trip", f"failure ratio {ratio:.0%} over {attempts} attempts in {cfg['window_seconds']}s; last: {error}")
    else:
        breaker.save(update_fields=["window_started_at", "window_successes", "window_failures",
                                    "consecutive_failures", "updated_at"])
    return breaker.state == BreakerState.OPEN


def held_release(*, destination_id: str) -> int:
    """Send every held delivery of a destination again (its breaker closed)."""
    from ingestion.choices import RecordStatus
    from ingestion.models import Record

    held = list(BatchDelivery.objects.select_for_update().filter(destination_id=destination_id, status=DeliveryStatus.HELD))
    for delivery in held:
        delivery.status = DeliveryStatus.PENDING
        delivery.next_attempt_at = None
        delivery.save(update_fields=["status", "next_attempt_at", "updated_at"])
        Record.objects.filter(id__in=delivery.record_ids, status=RecordStatus.HELD).update(status=RecordStatus.ROUTED)
        send_after_commit("delivery.deliver_batch", [str(delivery.batch_id), destination_id])
    return len(held)


def breaker_reset(*, actor, destination_id: str, reason: str = "") -> CircuitBreaker:
    """Runbook C.3 2c: an operator closes the breaker of a recovered destination; held records flow."""
    with transaction.atomic():
        breaker = CircuitBreaker.objects.select_for_update().filter(destination_id=destination_id).first()
        if breaker is None:
            from configuration.runtime import pipeline_runtime

            if destination_id not in pipeline_runtime().destinations:
                raise ApplicationError(f"Unknown destination '{destination_id}'.", status_code=404)
            breaker = breaker_get(destination_id)
        before = breaker.state
        if before != BreakerState.CLOSED:
            _transition(breaker, "close", f"reset by {getattr(actor, 'username', actor)}" + (f": {reason}" if reason else ""),
                        actor=actor)
        released = held_release(destination_id=destination_id)
        audit_record(actor=actor, action="circuit_breaker.reset", target=f"destination:{destination_id}", reason=reason,
                     details={"from": before, "released_deliveries": released})
    return breaker


def breakers_probe_due(*, now: datetime | None = None) -> int:
    """For each OPEN breaker past its cool-down, send its oldest held delivery as the probe."""
    from configuration.runtime import pipeline_runtime

    now = now or timezone.now()
    destinations = pipeline_runtime().destinations
    sent = 0
    for breaker in CircuitBreaker.objects.filter(state__in=[BreakerState.OPEN, BreakerState.HALF_OPEN]):
        cooldown = timedelta(seconds=float(breaker_settings(destinations.get(breaker.destination_id))["cooldown_seconds"]))
        if breaker.state == BreakerState.OPEN and breaker.opened_at and now < breaker.opened_at + cooldown:
            continue
        oldest = (BatchDelivery.objects.filter(destination_id=breaker.destination_id, status=DeliveryStatus.HELD)
                  .order_by("created_at").values_list("batch_id", flat=True).first())
        if oldest:
            from opsconsole.dispatch import send_task_now

            send_task_now("delivery.deliver_batch", [str(oldest), breaker.destination_id])
            sent += 1
    return sent
