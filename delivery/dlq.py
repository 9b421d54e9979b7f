"""The dead letter queue and its review workflow (Runbook C.2).

Entries move NEW -> TRIAGED -> REPLAYED, or -> CORRECTED -> REPLAYED, or -> EXPORTED, or -> PURGED
(delivery.models.DeadLetter). Every service here locks the entries it changes, so a replay clicked
twice or by two operators at once delivers once: the second finds the entries already REPLAYED.
"""
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_fsm import can_proceed

from configuration.runtime import pipeline_runtime
from ingestion.choices import BatchStage, RecordStatus
from ingestion.models import Batch, Record
from opsconsole.audit import audit_record
from opsconsole.dispatch import send_after_commit
from opsconsole.errors import ApplicationError

from .choices import DLQ_OPEN_STATES, BreakerState, FailureCategory
from .models import BatchDelivery, CircuitBreaker, DeadLetter
from .routing import authorization_refusal

# The keys a replay or purge `filter` may use, with how each narrows the entries.
FILTER_KEYS = {
    "retry_eligible": lambda v: Q(retry_eligible=bool(v)),
    "category": lambda v: Q(category=v),
    "destination_id": lambda v: Q(destination_id=v),
    "source_id": lambda v: Q(source_id=v),
    "state": lambda v: Q(state=v),
    "failed_after": lambda v: Q(last_failed_at__gte=_when(v, "failed_after")),
    "failed_before": lambda v: Q(last_failed_at__lt=_when(v, "failed_before")),
    "reason_contains": lambda v: Q(reason__icontains=str(v)),
}
SYNC_LIMIT = 1000  # larger selections run as a background task with progress


def _when(value: Any, key: str) -> datetime:
    parsed = parse_datetime(str(value))
    if parsed is None:
        raise ApplicationError(f"filter.{key}: '{value}' is not an ISO 8601 date-time.")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.utc)


def dead_letters_open() -> QuerySet:
    return DeadLetter.objects.filter(state__in=DLQ_OPEN_STATES)


def dead_letters_select(*, entry_ids: Iterable | None = None, filter: dict | None = None) -> QuerySet:
    """Entries named by id, or matching a filter such as {"retry_eligible": true}; exactly one of them."""
    if (entry_ids is None) == (filter is None):
        raise ApplicationError('Give either "entry_ids": [...] or "filter": {...}.')
    if entry_ids is not None:
        if not isinstance(entry_ids, list) or not entry_ids:
            raise ApplicationError('"entry_ids" must be a non-empty list of entry ids.')
        try:
            ids = [int(str(i).removeprefix("entry_")) for i in entry_ids]
        except ValueError as exc:
            raise ApplicationError(f'"entry_ids" must be numeric ids: {exc}.') from exc
        found = set(DeadLetter.objects.filter(id__in=ids).values_list("id", flat=True))
        missing = sorted(set(ids) - found)
        if missing:
            raise ApplicationError(f"Unknown DLQ entries: {', '.join(map(str, missing[:20]))}.", status_code=404)
        return DeadLetter.objects.filter(id__in=ids)
    if not isinstance(filter, dict) or not filter:
        raise ApplicationError('"filter" must be a non-empty object, e.g. {"retry_eligible": true}.')
    unknown = sorted(set(filter) - set(FILTER_KEYS))
    if unknown:
        raise ApplicationError(f"Unknown filter keys: {', '.join(unknown)} (known: {', '.join(sorted(FILTER_KEYS))}).")
    query = Q()
    for key, value in filter.items():
        query &= FILTER_KEYS[key](value)
    if "state" not in filter:
        query &= Q(state__in=DLQ_OPEN_STATES)
    return DeadLetter.objects.filter(query)


def _decide(entry: DeadLetter, method: str, actor) -> None:
    getattr(entry, method)()
    entry.decided_by = actor if getattr(actor, "is_authenticated", False) else None
    entry.decided_at = timezone.now()


def _locked(queryset: QuerySet) -> list[DeadLetter]:
    return list(queryset.select_for_update().order_by("id"))


def _bulk_transition(*, actor, entry_ids: list, method: str, action: str, note: str = "") -> int:
    """Apply one transition to every named entry, all or nothing."""
    with transaction.atomic():
        entries = _locked(dead_letters_select(entry_ids=entry_ids))
        refused = [e.id for e in entries if not can_proceed(getattr(e, method))]
        if refused:
            names = ", ".join(f"#{e.id} is {e.get_state_display()}" for e in entries if e.id in refused)
            raise ApplicationError(f"Cannot {method} entries: {names}.", status_code=409)
        for entry in entries:
            _decide(entry, method, actor)
            entry.note = note or entry.note
            entry.save()
        audit_record(actor=actor, action=action, target="dlq", reason=note, details={"entry_ids": [e.id for e in entries]})
    return len(entries)


def dead_letters_triage(*, actor, entry_ids: list, note: str = "") -> int:
    """Mark entries as looked at (NEW -> TRIAGED), with an optional note."""
    return _bulk_transition(actor=actor, entry_ids=entry_ids, method="triage", action="dlq.triage", note=note)


def dead_letters_mark_exported(*, actor, entry_ids: list, reason: str = "") -> int:
    """Record that entries were handed over for processing outside the pipeline."""
    return _bulk_transition(actor=actor, entry_ids=entry_ids, method="export", action="dlq.export", note=reason)


def dead_letter_correct(*, actor, entry_id: int, payload: Any, note: str = "") -> DeadLetter:
    """Edit a record's payload before replay; the original is kept on the entry."""
    if not isinstance(payload, dict):
        raise ApplicationError('"payload" must be a JSON object (the corrected record).')
    with transaction.atomic():
        entry = DeadLetter.objects.select_for_update().filter(id=entry_id).first()
        if entry is None:
            raise ApplicationError(f"Unknown DLQ entry {entry_id}.", status_code=404)
        if not can_proceed(entry.correct):
            raise ApplicationError(f"Entry {entry_id} is {entry.get_state_display()}: only NEW or TRIAGED entries "
                                   "can be corrected.", status_code=409)
        record = entry.record
        entry.original_payload = record.payload if entry.category == FailureCategory.TRANSFORM else record.data
        entry.corrected_payload = payload
        entry.note = note or entry.note
        _decide(entry, "correct", actor)
        entry.save()
        audit_record(actor=actor, action="dlq.correct", target=f"dlq:{entry.id}", reason=note,
                     details={"record_id": str(record.id)})
    return entry


def _replay_refusal(entry: DeadLetter, open_breakers: set[str], record_status: str | None) -> str | None:
    if not can_proceed(entry.replay):
        return f"entry is {entry.get_state_display()}"
    if record_status != RecordStatus.DLQ:
        return f"its record is {record_status or 'gone'}, not in the dead letter queue"
    if entry.category == FailureCategory.TRANSFORM:
        return None
    runtime = pipeline_runtime()
    spec = runtime.destinations.get(entry.destination_id)
    if spec is None:
        return f"destination '{entry.destination_id}' is no longer configured"
    if not spec.get("enabled", True):
        return f"destination '{entry.destination_id}' is disabled"
    if entry.destination_id in open_breakers:
        return f"circuit breaker of '{entry.destination_id}' is OPEN"
    refusal = authorization_refusal(entry.source_id, runtime.sources.get(entry.source_id), spec)
    return f"route still refused: {refusal}" if refusal else None


def dead_letters_replay_chunk(*, actor, queryset: QuerySet, reason: str = "") -> dict:
    """Replay the entries of `queryset` in one transaction; returns counts and per-entry refusals."""
    with transaction.atomic():
        entries = _locked(queryset)
        open_breakers = set(CircuitBreaker.objects.filter(state=BreakerState.OPEN).values_list("destination_id", flat=True))
        statuses = dict(Record.objects.filter(id__in=[e.record_id for e in entries]).values_list("id", "status"))
        accepted: list[DeadLetter] = []
        refused: list[dict] = []
        for entry in entries:
            why = _replay_refusal(entry, open_breakers, statuses.get(entry.record_id))
            if why:
                refused.append({"entry_id": entry.id, "reason": why})
            else:
                accepted.append(entry)
        batches = _replay_batches(accepted, actor)
        for entry in accepted:
            _decide(entry, "replay", actor)
            entry.save()
        if accepted or refused:
            audit_record(actor=actor, action="dlq.replay", target="dlq", reason=reason,
                         details={"replayed": [e.id for e in accepted], "refused": refused, "batches": batches})
    return {"replayed": len(accepted), "refused": refused, "batch_ids": batches}


def _replay_batches(entries: list[DeadLetter], actor) -> list[str]:
    """One new batch per source and kind: transform failures go back to Beta, delivery failures to Gamma."""
    version = pipeline_runtime().version
    who = getattr(actor, "username", None) or "system"
    groups: dict[tuple[str, bool], list[DeadLetter]] = defaultdict(list)
    for entry in entries:
        groups[(entry.source_id, entry.category == FailureCategory.TRANSFORM)].append(entry)
    batch_ids = []
    for (source_id, retransform), group in sorted(groups.items()):
        batch = Batch.objects.create(
            source_id=source_id, stage=BatchStage.VALIDATED if retransform else BatchStage.TRANSFORMED,
            received=0, accepted=len({e.record_id for e in group}), origin=f"replay:{who}", config_version=version,
        )
        batch_ids.append(str(batch.id))
        record_ids = sorted({e.record_id for e in group})
        status = RecordStatus.VALIDATED if retransform else RecordStatus.ROUTED
        Record.objects.filter(id__in=record_ids).update(batch=batch, status=status, reason="", finished_at=None)
        for entry in group:
            if entry.corrected_payload is not None:
                field = "payload" if retransform else "data"
                Record.objects.filter(id=entry.record_id).update(**{field: entry.corrected_payload})
        if retransform:
            send_after_commit("transform.transform_batch", [str(batch.id)])
            continue
        by_destination: dict[str, list[str]] = defaultdict(list)
        for entry in group:
            by_destination[entry.destination_id].append(str(entry.record_id))
        for destination_id, ids in sorted(by_destination.items()):
            BatchDelivery.objects.create(batch=batch, destination_id=destination_id, record_ids=sorted(set(ids)))
            send_after_commit("delivery.deliver_batch", [str(batch.id), destination_id])
    return batch_ids


def purge_reason(reason: str | None) -> str:
    """A purge is final, so it must say why."""
    if not reason or not str(reason).strip():
        raise ApplicationError('A "reason" is required to purge DLQ entries.')
    return str(reason).strip()


def dead_letters_purge_chunk(*, actor, queryset: QuerySet, reason: str) -> dict:
    """Remove entries from the queue for good; a record with no open entry left counts as rejected."""
    reason = purge_reason(reason)
    with transaction.atomic():
        entries = _locked(queryset)
        refused = [{"entry_id": e.id, "reason": f"entry is {e.get_state_display()}"} for e in entries if not can_proceed(e.purge)]
        purged = [e for e in entries if can_proceed(e.purge)]
        for entry in purged:
            _decide(entry, "purge", actor)
            entry.note = reason
            entry.save()
        record_ids = {e.record_id for e in purged}
        still_open = set(dead_letters_open().filter(record_id__in=record_ids).values_list("record_id", flat=True))
        who = getattr(actor, "username", None) or "system"
        Record.objects.filter(id__in=record_ids - still_open, status=RecordStatus.DLQ).update(
            status=RecordStatus.REJECTED, reason=f"purged from the DLQ by {who}: {reason}"[:1000]
        )
        audit_record(actor=actor, action="dlq.purge", target="dlq", reason=reason,
                     details={"purged": [e.id for e in purged], "refused": refused})
    return {"purged": len(purged), "refused": refused}


def dlq_stats(*, now: datetime | None = None) -> dict:
    """Size, growth per clock hour over the last 24 hours (oldest first, the current hour last), and the
    age distribution of the open entries."""
    now = now or timezone.now()
    open_entries = dead_letters_open()
    first_hour = (now - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    added = dict(DeadLetter.objects.filter(first_failed_at__gte=now - timedelta(hours=24))
                 .annotate(hour=TruncHour("first_failed_at")).values_list("hour").annotate(n=Count("id")).order_by())
    hours = [{"hour_start": (first_hour + timedelta(hours=h)).isoformat(),
              "added": added.get(first_hour + timedelta(hours=h), 0)} for h in range(-1, 24)][-24:]
    ages = {"<1h": 0, "1h-6h": 0, "6h-24h": 0, "1d-7d": 0, ">7d": 0}
    edges = [(timedelta(hours=1), "<1h"), (timedelta(hours=6), "1h-6h"), (timedelta(hours=24), "6h-24h"),
             (timedelta(days=7), "1d-7d")]
    for first in open_entries.values_list("first_failed_at", flat=True).iterator():
        age = now - first
        ages[next((label for edge, label in edges if age < edge), ">7d")] += 1
    span = open_entries.aggregate(oldest=Min("first_failed_at"), newest=Max("last_failed_at"))
    return {
        "size": open_entries.count(),
        "by_state": dict(DeadLetter.objects.values_list("state").annotate(n=Count("id")).order_by()),
        "by_category": dict(open_entries.values_list("category").annotate(n=Count("id")).order_by()),
        "retry_eligible": open_entries.filter(retry_eligible=True).count(),
        "growth_last_hour": DeadLetter.objects.filter(first_failed_at__gte=now - timedelta(hours=1)).count(),
        "growth_per_hour": hours,
        "age_distribution": ages,
        "oldest_failure": span["oldest"].isoformat() if span["oldest"] else None,
    }


def dlq_analysis() -> dict:
    """Open entries grouped by destination, category and reason, most frequent first."""
    rows = (dead_letters_open().values("destination_id", "category", "reason")
            .annotate(count=Count("id"), first=Min("first_failed_at"), last=Max("last_failed_at"))
            .order_by("-count", "destination_id"))
    return {
        "failure_reasons": [
            {"destination_id": r["destination_id"] or None, "category": r["category"], "reason": r["reason"],
             "count": r["count"], "first_failure": r["first"].isoformat(), "last_failure": r["last"].isoformat()}
            for r in rows[:200]
        ],
        "total": dead_letters_open().count(),
    }
