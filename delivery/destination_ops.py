"""Destination operations of Runbooks C.1 and C.3: test, test delivery, status, recent errors."""
import time
from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from configuration.runtime import pipeline_runtime
from opsconsole.audit import audit_record
from opsconsole.errors import ApplicationError
from opsconsole.ids import time_ordered_uuid

from .breakers import breaker_get
from .choices import DeliveryStatus
from .destinations import DeliveryError, OutgoingRecord, get_adapter
from .models import BatchDelivery, DeliveryAttempt


def _spec(destination_id: str) -> dict:
    spec = pipeline_runtime().destinations.get(destination_id)
    if spec is None:
        raise ApplicationError(f"Unknown destination '{destination_id}'.", status_code=404)
    return spec


def destination_test(*, destination_id: str) -> dict:
    """Connect and authenticate (Runbook C.1 step 5); says precisely what failed."""
    spec = _spec(destination_id)
    started = time.perf_counter()
    try:
        detail = get_adapter(destination_id, spec).test()
        ok, error = True, None
    except DeliveryError as exc:
        ok, detail, error = False, None, {"category": exc.category, "message": exc.message, "http_status": exc.http_status}
    return {"destination_id": destination_id, "ok": ok, "detail": detail, "error": error,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def destination_test_delivery(*, actor, destination_id: str, payload: dict) -> dict:
    """Send one record marked as a test (Runbook C.1 step 6). It is not pipeline data: no counters,
    no reconciliation, no DLQ; its record id starts with `test-`."""
    if not isinstance(payload, dict) or not payload:
        raise ApplicationError('Send the test record as a JSON object, e.g. {"test_field": "test_value"}.')
    spec = _spec(destination_id)
    record_id = f"test-{time_ordered_uuid()}"
    record = OutgoingRecord(record_id, "__test__", timezone.now(), None, {**payload, "_opsconsole_test": True})
    started = time.perf_counter()
    try:
        get_adapter(destination_id, spec).deliver([record], batch_id=record_id)
        ok, error = True, None
    except DeliveryError as exc:
        ok, error = False, {"category": exc.category, "message": exc.message, "http_status": exc.http_status}
    audit_record(actor=actor, action="destination.test_delivery", target=f"destination:{destination_id}",
                 details={"record_id": record_id, "ok": ok})
    return {"destination_id": destination_id, "ok": ok, "record_id": record_id, "error": error,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _percentile(sorted_values: list[int], q: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return float(sorted_values[index])


def destination_status(*, destination_id: str, window: timedelta = timedelta(hours=1)) -> dict:
    """State, breaker, latency p50/p95/p99 and success rate over the window, pending and held work."""
    spec = _spec(destination_id)
    since = timezone.now() - window
    attempts = DeliveryAttempt.objects.filter(destination_id=destination_id, at__gte=since)
    durations = sorted(attempts.filter(ok=True).values_list("duration_ms", flat=True))
    totals = attempts.aggregate(n=Count("id"), ok=Count("id", filter=Q(ok=True)))
    breaker = breaker_get(destination_id)
    deliveries = dict(BatchDelivery.objects.filter(destination_id=destination_id)
                      .values_list("status").annotate(n=Count("id")).order_by())
    last_ok = attempts.filter(ok=True).order_by("-at").values_list("at", flat=True).first()
    return {
        "destination_id": destination_id,
        "state": "enabled" if spec.get("enabled", True) else "disabled",
        "type": (spec.get("connection") or {}).get("type"),
        "circuit_breaker": {"state": breaker.get_state_display(), "since": breaker.updated_at.isoformat(),
                            "reason": breaker.reason},
        "window_seconds": int(window.total_seconds()),
        "attempts": totals["n"],
        "success_rate": round(totals["ok"] / totals["n"], 4) if totals["n"] else None,
        "latency_ms": {"p50": _percentile(durations, 0.50), "p95": _percentile(durations, 0.95),
                       "p99": _percentile(durations, 0.99)},
        "deliveries": {s.value: deliveries.get(s.value, 0) for s in DeliveryStatus},
        "last_success": last_ok.isoformat() if last_ok else None,
    }


def parse_since(value: str | None, default: timedelta = timedelta(hours=1)) -> timedelta:
    """`1h`, `30m`, `2d`, `90s`."""
    if not value:
        return default
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        amount, unit = float(value[:-1]), value[-1]
        return timedelta(seconds=amount * units[unit])
    except (KeyError, ValueError) as exc:
        raise ApplicationError(f"since='{value}': use a number with s, m, h or d (e.g. 1h).") from exc


def destination_errors(*, destination_id: str, since: timedelta, limit: int = 200) -> dict:
    """Failed attempts in the window, newest first, and their reasons counted (Runbook C.3 2a)."""
    _spec(destination_id)
    failed = DeliveryAttempt.objects.filter(destination_id=destination_id, ok=False, at__gte=timezone.now() - since)
    reasons = failed.values("category", "error").annotate(count=Count("id")).order_by("-count")[:50]
    return {
        "destination_id": destination_id,
        "since_seconds": int(since.total_seconds()),
        "count": failed.count(),
        "by_reason": list(reasons),
        "errors": [
            {"at": a.at.isoformat(), "batch_id": str(a.delivery.batch_id), "records": a.records, "category": a.category,
             "http_status": a.http_status, "error": a.error, "duration_ms": a.duration_ms}
            for a in failed.select_related("delivery")[:limit]
        ],
    }
