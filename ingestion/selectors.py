"""Reads about ingestion and the accounting of every record (DESIGN.md §3)."""
from collections import Counter, defaultdict

from django.db.models import Count, Sum

from .choices import IN_FLIGHT_STATUSES, RecordStatus
from .models import Batch, Record

BUCKETS = ("rejected", "filtered", "delivered", "held", "dlq", "in_flight")


def reconciliation() -> dict:
    """Per source and in total: ingested = rejected + filtered + delivered + held + dlq + in_flight.

    `ingested` is what batches received (the accepting side); the buckets count records by their
    one current status (the accounting side). `balanced` says whether the two agree."""
    received = dict(Batch.objects.values_list("source_id").annotate(n=Sum("received")).values_list("source_id", "n"))
    buckets: dict[str, dict[str, int]] = defaultdict(lambda: {b: 0 for b in BUCKETS})
    for source_id, status, n in Record.objects.values_list("source_id", "status").annotate(n=Count("id")).order_by():
        bucket = "in_flight" if status in IN_FLIGHT_STATUSES else status
        buckets[source_id][bucket] += n
    sources = {}
    for source_id in sorted(set(received) | set(buckets)):
        counts = dict(buckets[source_id])
        ingested = received.get(source_id, 0) or 0
        accounted = sum(counts.values())
        sources[source_id] = {"ingested": ingested, **counts, "accounted": accounted, "balanced": ingested == accounted}
    total = {key: sum(s[key] for s in sources.values()) for key in ("ingested", *BUCKETS, "accounted")}
    total["balanced"] = all(s["balanced"] for s in sources.values())
    return {"sources": sources, "total": total}


def stage_counts() -> dict[str, int]:
    """Live record counts per status (the overview page and its htmx panel)."""
    counts = {status.value: 0 for status in RecordStatus}
    for status, n in Record.objects.values_list("status").annotate(n=Count("id")).order_by():
        counts[status] = n
    return counts


# --- Console reads (opsconsole.console_views) ---------------------------------------------------
from datetime import timedelta  # noqa: E402

from django.db.models import Max, Q  # noqa: E402
from django.utils import timezone  # noqa: E402

from .choices import BatchStage  # noqa: E402
from .models import Source, ValidationFailure  # noqa: E402


def records_per_minute(*, minutes: int = 5, now=None) -> dict[str, float]:
    """Records ingested (any outcome) and delivered per minute, averaged over the last `minutes`."""
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    delivered = Q(status=RecordStatus.DELIVERED, finished_at__gte=since)
    counts = Record.objects.filter(Q(ingested_at__gte=since) | delivered).aggregate(
        ingested=Count("id", filter=Q(ingested_at__gte=since)), delivered=Count("id", filter=delivered)
    )
    return {"minutes": minutes, "ingested": counts["ingested"] / minutes, "delivered": counts["delivered"] / minutes}


def batches_waiting() -> dict[str, int]:
    """Unfinished batches per stage: `validated` wait for Beta, `transformed` wait for Gamma."""
    counts = {BatchStage.VALIDATED.value: 0, BatchStage.TRANSFORMED.value: 0}
    rows = Batch.objects.exclude(stage=BatchStage.DONE).values_list("stage").annotate(n=Count("id")).order_by()
    for stage, n in rows:
        counts[stage] = n
    return counts


def batches_stuck_count(*, older_than_seconds: int, now=None) -> int:
    """Batches still awaiting transformation although ingested more than `older_than_seconds` ago."""
    cutoff = (now or timezone.now()) - timedelta(seconds=older_than_seconds)
    return Batch.objects.filter(stage=BatchStage.VALIDATED, created_at__lt=cutoff).count()


def record_counts_by_source() -> dict[str, dict[str, int]]:
    """source_id -> {status: count} for every status (zeros included)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {status.value: 0 for status in RecordStatus})
    for source_id, status, n in Record.objects.values_list("source_id", "status").annotate(n=Count("id")).order_by():
        counts[source_id][status] = n
    return counts


def source_list() -> list:
    """Configured sources, each with `.counts` (records per status) and `.last_batch_at`."""
    counts = record_counts_by_source()
    last_batch = dict(Batch.objects.values_list("source_id").annotate(at=Max("created_at")).values_list("source_id", "at"))
    sources = list(Source.objects.all())
    for source in sources:
        source.counts = counts[source.source_id]
        source.last_batch_at = last_batch.get(source.source_id)
    return sources


def source_detail(*, source_id: str, limit: int = 20) -> dict | None:
    """A source with its record counts, recent batches and recent validation failures; None if unknown."""
    source = Source.objects.filter(source_id=source_id).first()
    if source is None:
        return None
    counts = {status.value: 0 for status in RecordStatus}
    for status, n in Record.objects.filter(source_id=source_id).values_list("status").annotate(n=Count("id")).order_by():
        counts[status] = n
    return {
        "source": source,
        "counts": counts,
        "batches": list(Batch.objects.filter(source_id=source_id).order_by("-created_at")[:limit]),
        "failures": list(ValidationFailure.objects.filter(source_id=source_id).order_by("-created_at", "-id")[:limit]),
    }


def batch_list():
    """All batches, newest first (filter with ingestion.filtersets.BatchFilterSet)."""
    return Batch.objects.order_by("-created_at")


def batch_detail(*, batch_id) -> dict | None:
    """A batch with its record counts per status and its validation failures; None if unknown."""
    batch = Batch.objects.filter(id=batch_id).first()
    if batch is None:
        return None
    counts = {status.value: 0 for status in RecordStatus}
    for status, n in Record.objects.filter(batch=batch).values_list("status").annotate(n=Count("id")).order_by():
        counts[status] = n
    return {"batch": batch, "counts": counts, "failures": list(ValidationFailure.objects.filter(batch=batch)[:100])}


def validation_failure_list():
    """All validation failures, newest first (filter with ingestion.filtersets.ValidationFailureFilterSet)."""
    return ValidationFailure.objects.order_by("-created_at", "-id")


def validation_failures_latest(*, limit: int = 5) -> list:
    return list(validation_failure_list()[:limit])


# --- Module Alpha operation reads (runbook status paths, health grid, dashboard) --------------------
from django.db.models.functions import TruncMinute  # noqa: E402

from .choices import SourceHealth, SourceType  # noqa: E402
from .models import BufferEvent, BufferSample, SourceError, SourceState  # noqa: E402


def _records_since(source_id: str, since) -> int:
    return Batch.objects.filter(source_id=source_id, created_at__gte=since).aggregate(n=Sum("received"))["n"] or 0


def _source_health(source: Source | None, state: SourceState | None) -> tuple[str, int | None]:
    """(health, connection status 1/0/None) of a source: rest_api from its polls, file from its directory."""
    if source is None:
        return SourceHealth.UNKNOWN, None
    if source.source_type == SourceType.REST_API:
        connected = None if state is None or state.connected is None else int(state.connected)
        return (state.health if state else SourceHealth.UNKNOWN), connected
    if source.source_type == SourceType.FILE:
        from .files import source_directory

        ok = source_directory(source.spec).is_dir()
        return (SourceHealth.HEALTHY if ok else SourceHealth.UNHEALTHY), int(ok)
    return SourceHealth.HEALTHY, 1


def _cursor_view(cursor: dict) -> dict:
    """The cursor without its remembered ids (a count is enough to read)."""
    view = {k: v for k, v in (cursor or {}).items() if k not in ("page_ids", "since_ids")}
    view["ids_remembered"] = len((cursor or {}).get("page_ids") or []) + len((cursor or {}).get("since_ids") or [])
    return view


def source_status(*, source_id: str, now=None) -> dict | None:
    """What GET /api/alpha/admin/sources/<id>/status answers; None for a source never configured nor seen."""
    from django_celery_beat.models import PeriodicTask

    from .schedules import poll_task_name
    from .services import alpha_control

    now = now or timezone.now()
    source = Source.objects.filter(source_id=source_id).first()
    state = SourceState.objects.filter(source_id=source_id).first()
    if source is None and state is None and not Batch.objects.filter(source_id=source_id).exists():
        return None
    control = alpha_control()
    health, connection_status = _source_health(source, state)
    enabled = bool(source and source.enabled)
    paused = bool(state and state.paused)
    if source is None:
        status = "removed"
    elif not enabled:
        status = "disabled"
    elif paused or control.paused:
        status = "paused"
    else:
        status = "active"
    task = PeriodicTask.objects.filter(name=poll_task_name(source_id)).first()
    polling = (source.spec.get("polling") or {}) if source else {}
    buffered = Batch.objects.filter(source_id=source_id, stage=BatchStage.VALIDATED).aggregate(n=Sum("accepted"))["n"] or 0
    return {
        "source_id": source_id,
        "source_type": source.source_type if source else None,
        "status": status,
        "enabled": enabled,
        "paused": paused,
        "ingestion_paused": control.paused,
        "pause_reason": state.pause_reason if paused else "",
        "paused_by": state.paused_by if paused else "",
        "paused_at": state.paused_at if paused else None,
        "health": health,
        "connection_status": connection_status if enabled else None,
        "consecutive_failures": state.consecutive_failures if state else 0,
        "last_poll": {"at": state.last_poll_at, "outcome": state.last_poll_outcome} if state and state.last_poll_at else None,
        "last_success_at": state.last_success_at if state else None,
        "last_error": ({"at": state.last_error_at, "kind": state.last_error_kind, "message": state.last_error}
                       if state and state.last_error_at else None),
        "errors_last_hour": SourceError.objects.filter(source_id=source_id, created_at__gte=now - timedelta(hours=1)).count(),
        "records_last_minute": _records_since(source_id, now - timedelta(minutes=1)),
        "records_last_hour": _records_since(source_id, now - timedelta(hours=1)),
        "buffered": buffered,
        "cursor": _cursor_view(state.cursor) if state and state.cursor else None,
        "polling": ({"interval_seconds": polling.get("interval_seconds"), "batch_size": polling.get("batch_size"),
                     "scheduled": bool(task and task.enabled), "last_run_at": task.last_run_at if task else None}
                    if source and source.source_type == SourceType.REST_API else None),
        "last_test": state.last_test if state else None,
        "config_version": source.config_version if source else None,
    }


def source_statuses(*, now=None) -> list[dict]:
    """The health grid: the status of every configured source."""
    now = now or timezone.now()
    return [source_status(source_id=sid, now=now) for sid in Source.objects.values_list("source_id", flat=True)]


def source_errors(*, source_id: str | None = None):
    errors = SourceError.objects.order_by("-created_at", "-id")
    return errors.filter(source_id=source_id) if source_id else errors


def validation_failures_summary(*, hours: float = 1, now=None) -> list[dict]:
    """The manual's diagnostic: validation failures by source and error code in the last `hours`."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    rows = (ValidationFailure.objects.filter(created_at__gte=since).values("source_id", "error_code")
            .annotate(count=Count("id"), last_at=Max("created_at")).order_by("-count", "source_id", "error_code"))
    return [dict(row) for row in rows]


def ingestion_rate_series(*, minutes: int = 60, now=None) -> dict[str, list[tuple]]:
    """source_id -> [(minute, records/second)] over the last `minutes`, zeros included (from batches)."""
    now = now or timezone.now()
    start = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    rows = (Batch.objects.filter(created_at__gte=start).annotate(minute=TruncMinute("created_at"))
            .values_list("source_id", "minute").annotate(n=Sum("received")).order_by())
    minutes_axis = [start + timedelta(minutes=i) for i in range(minutes + 1)]
    series: dict[str, dict] = defaultdict(dict)
    for source_id, minute, n in rows:
        series[source_id][minute] = n or 0
    for source_id in Source.objects.values_list("source_id", flat=True):
        series.setdefault(source_id, {})
    return {sid: [(m, values.get(m, 0) / 60) for m in minutes_axis] for sid, values in sorted(series.items())}


def parse_series(*, minutes: int = 60, now=None) -> list[tuple]:
    """[(minute, parse success ratio)] over the last `minutes`: records read vs unreadable lines, rows and bodies."""
    now = now or timezone.now()
    start = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    received = dict(Batch.objects.filter(created_at__gte=start).annotate(minute=TruncMinute("created_at"))
                    .values_list("minute").annotate(n=Sum("received")).values_list("minute", "n").order_by())
    bad = Counter(dict(ValidationFailure.objects.filter(created_at__gte=start, error_code="PARSE_ERROR")
                       .annotate(minute=TruncMinute("created_at")).values_list("minute")
                       .annotate(n=Count("id")).values_list("minute", "n").order_by()))
    bodies = dict(SourceError.objects.filter(created_at__gte=start, stage="parse").annotate(minute=TruncMinute("created_at"))
                  .values_list("minute").annotate(n=Count("id")).values_list("minute", "n").order_by())
    bad.update(bodies)
    points = []
    for i in range(minutes + 1):
        minute = start + timedelta(minutes=i)
        total = (received.get(minute) or 0) + bodies.get(minute, 0)
        points.append((minute, None if not total else 1 - bad.get(minute, 0) / total))
    return points


def validation_series(*, minutes: int = 60, step: int = 5, now=None) -> tuple[list, dict[str, list[int]]]:
    """Validation failures per error code in buckets of `step` minutes: (bucket starts, {code: counts})."""
    now = now or timezone.now()
    start = (now - timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    buckets = [start + timedelta(minutes=i) for i in range(0, minutes, step)]
    stacks: dict[str, list[int]] = defaultdict(lambda: [0] * len(buckets))
    rows = (ValidationFailure.objects.filter(created_at__gte=start).annotate(minute=TruncMinute("created_at"))
            .values_list("error_code", "minute").annotate(n=Count("id")).order_by())
    for code, minute, n in rows:
        index = min(len(buckets) - 1, int((minute - start).total_seconds() // 60) // step)
        stacks[code][index] += n
    return buckets, dict(sorted(stacks.items()))


def validation_pass_rate(*, minutes: int = 60, now=None) -> float | None:
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    totals = Batch.objects.filter(created_at__gte=since).aggregate(received=Sum("received"), accepted=Sum("accepted"))
    return None if not totals["received"] else (totals["accepted"] or 0) / totals["received"]


def error_distribution(*, hours: float = 1, now=None) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """Errors by source and type in the last `hours` (validation codes and poll failure kinds): rows, columns, counts."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    counts: dict[tuple[str, str], int] = {}
    for source_id, code, n in (ValidationFailure.objects.filter(created_at__gte=since)
                               .values_list("source_id", "error_code").annotate(n=Count("id")).order_by()):
        counts[(source_id, code)] = n
    for source_id, kind, n in (SourceError.objects.filter(created_at__gte=since)
                               .values_list("source_id", "kind").annotate(n=Count("id")).order_by()):
        counts[(source_id, f"poll:{kind}")] = counts.get((source_id, f"poll:{kind}"), 0) + n
    sources = sorted(set(Source.objects.values_list("source_id", flat=True)) | {s for s, _ in counts})
    kinds = sorted({k for _, k in counts})
    return sources, kinds, counts


def buffer_series(*, minutes: int = 60, now=None) -> list[tuple]:
    """[(time, utilization)] from the buffer samples of the last `minutes`."""
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    return [(at, buffered / capacity if capacity else 0.0) for at, buffered, capacity in
            BufferSample.objects.filter(at__gte=since).order_by("at").values_list("at", "buffered", "capacity")]


def buffer_events(*, limit: int = 20) -> list:
    return list(BufferEvent.objects.order_by("-at", "-id")[:limit])


def histogram_quantiles(name: str, quantiles=(0.5, 0.95, 0.99)) -> dict[str, dict[str, float | None]]:
    """Per source, quantiles estimated from a durable histogram's buckets (linear within a bucket)."""
    from monitoring.metrics import HISTOGRAMS
    from monitoring.models import MetricCounter

    bounds = HISTOGRAMS[name][2]
    per_source: dict[str, dict[str, int]] = defaultdict(dict)
    for labels, value in MetricCounter.objects.filter(name=f"{name}_bucket").values_list("labels", "value"):
        parts = dict(p.split("=", 1) for p in labels.split(",") if p)
        per_source[parts.get("source", "")][parts.get("le", "+Inf")] = value
    answer = {}
    for source_id, buckets in sorted(per_source.items()):
        counts = [buckets.get(repr(float(b)), 0) for b in bounds] + [buckets.get("+Inf", 0)]
        total = sum(counts)
        estimates: dict[str, float | None] = {}
        for q in quantiles:
            if not total:
                estimates[f"p{round(q * 100)}"] = None
                continue
            target, seen, lower = q * total, 0, 0.0
            value = None
            for upper, n in zip([*bounds, None], counts):
                if seen + n >= target and n:
                    value = upper if upper is None else lower + (upper - lower) * (target - seen) / n
                    if upper is None:
                        value = bounds[-1]  # above the last bound: report the bound
                    break
                seen += n
                lower = upper if upper is not None else lower
            estimates[f"p{round(q * 100)}"] = value
        answer[source_id] = {**estimates, "count": total}
    return answer
