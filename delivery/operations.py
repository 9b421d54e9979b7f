"""Long DLQ replays, purges and exports run as tasks, with progress on an OperationRun row."""
import csv
import io
from collections.abc import Iterator
from pathlib import Path

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from opsconsole.audit import audit_record
from opsconsole.dispatch import send_after_commit
from opsconsole.errors import ApplicationError

from .choices import OperationKind, OperationStatus
from .dlq import SYNC_LIMIT, dead_letters_purge_chunk, dead_letters_replay_chunk, dead_letters_select, purge_reason
from .models import DeadLetter, OperationRun

CHUNK = 500
EXPORT_FORMATS = ("json", "jsonl", "csv")
EXPORT_COLUMNS = ("entry_id", "state", "source_id", "destination_id", "category", "reason", "http_status", "attempts",
                  "first_failed_at", "last_failed_at", "retry_eligible", "record_id", "payload")


def _start(*, actor, kind: str, ids: list[int], params: dict) -> OperationRun:
    run = OperationRun.objects.create(kind=kind, params={**params, "entry_ids": ids}, total=len(ids),
                                      actor=actor if getattr(actor, "is_authenticated", False) else None)
    send_after_commit(f"delivery.{kind}_run", [run.id])
    audit_record(actor=actor, action=f"{kind}.queued", target=f"operation:{run.id}", reason=params.get("reason", ""),
                 details={"total": len(ids)})
    return run


def dlq_replay(*, actor, entry_ids=None, filter=None, reason: str = "") -> dict:
    """Replay now, or as a background operation when the selection is large."""
    queryset = dead_letters_select(entry_ids=entry_ids, filter=filter)
    ids = list(queryset.order_by("id").values_list("id", flat=True))
    if len(ids) > SYNC_LIMIT:
        with transaction.atomic():
            run = _start(actor=actor, kind=OperationKind.DLQ_REPLAY, ids=ids, params={"reason": reason})
        return {"operation_id": run.id, "status": run.status, "total": run.total}
    return dead_letters_replay_chunk(actor=actor, queryset=DeadLetter.objects.filter(id__in=ids), reason=reason)


def dlq_purge(*, actor, entry_ids=None, filter=None, reason: str = "") -> dict:
    reason = purge_reason(reason)
    queryset = dead_letters_select(entry_ids=entry_ids, filter=filter)
    ids = list(queryset.order_by("id").values_list("id", flat=True))
    if len(ids) > SYNC_LIMIT:
        with transaction.atomic():
            run = _start(actor=actor, kind="dlq_purge", ids=ids, params={"reason": reason})
        return {"operation_id": run.id, "status": run.status, "total": run.total}
    return dead_letters_purge_chunk(actor=actor, queryset=DeadLetter.objects.filter(id__in=ids), reason=reason)


def dlq_export_start(*, actor, fmt: str, filter: dict | None = None) -> OperationRun:
    """Write the selected entries to a file in the background; download it when done."""
    if fmt not in EXPORT_FORMATS:
        raise ApplicationError(f"format must be one of {', '.join(EXPORT_FORMATS)}.")
    queryset = dead_letters_select(filter=filter) if filter else DeadLetter.objects.all()
    ids = list(queryset.order_by("id").values_list("id", flat=True))
    with transaction.atomic():
        return _start(actor=actor, kind=OperationKind.DLQ_EXPORT, ids=ids, params={"format": fmt})


def _run(run_id: int, step) -> None:
    run = OperationRun.objects.filter(id=run_id).first()
    if run is None or run.status in (OperationStatus.DONE, OperationStatus.FAILED):
        return
    OperationRun.objects.filter(id=run_id).update(status=OperationStatus.RUNNING)
    ids = run.params.get("entry_ids", [])
    result: dict = {}
    try:
        for start in range(run.done, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            step(run, chunk, result)
            OperationRun.objects.filter(id=run_id).update(done=start + len(chunk), result=result)
    except Exception as exc:  # recorded for the operator; the task itself must not retry blindly
        OperationRun.objects.filter(id=run_id).update(status=OperationStatus.FAILED, error=f"{type(exc).__name__}: {exc}",
                                                      finished_at=timezone.now(), result=result)
        raise
    OperationRun.objects.filter(id=run_id).update(status=OperationStatus.DONE, finished_at=timezone.now(), result=result)


def _tally(result: dict, outcome: dict, key: str) -> None:
    result[key] = result.get(key, 0) + outcome[key]
    result["refused"] = (result.get("refused", []) + outcome["refused"])[:1000]


def dlq_replay_run(run_id: int) -> None:
    def step(run, chunk, result):
        actor = run.actor or "system"
        _tally(result, dead_letters_replay_chunk(actor=actor, queryset=DeadLetter.objects.filter(id__in=chunk),
                                                 reason=run.params.get("reason", "")), "replayed")
    _run(run_id, step)


def dlq_purge_run(run_id: int) -> None:
    def step(run, chunk, result):
        actor = run.actor or "system"
        _tally(result, dead_letters_purge_chunk(actor=actor, queryset=DeadLetter.objects.filter(id__in=chunk),
                                                reason=run.params["reason"]), "purged")
    _run(run_id, step)


def export_rows(queryset) -> Iterator[dict]:
    for entry in queryset.select_related("record").order_by("id").iterator(chunk_size=1000):
        yield {
            "entry_id": entry.id, "state": entry.state, "source_id": entry.source_id,
            "destination_id": entry.destination_id, "category": entry.category, "reason": entry.reason,
            "http_status": entry.http_status, "attempts": entry.attempts,
            "first_failed_at": entry.first_failed_at.isoformat(), "last_failed_at": entry.last_failed_at.isoformat(),
            "retry_eligible": entry.retry_eligible, "record_id": str(entry.record_id),
            "payload": entry.corrected_payload if entry.corrected_payload is not None else (
                entry.record.data if entry.record.data is not None else entry.record.payload),
        }


class ExportWriter:
    """Writes rows as a JSON array, JSON lines or CSV to a text stream, one row at a time."""

    def __init__(self, stream, fmt: str):
        self.stream, self.fmt, self.count = stream, fmt, 0
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, fieldnames=EXPORT_COLUMNS)
            self.csv.writeheader()
        elif fmt == "json":
            stream.write("[")

    def write(self, row: dict) -> None:
        if self.fmt == "csv":
            self.csv.writerow({**row, "payload": orjson.dumps(row["payload"]).decode()})
        elif self.fmt == "json":
            self.stream.write(("," if self.count else "") + orjson.dumps(row).decode())
        else:
            self.stream.write(orjson.dumps(row).decode() + "\n")
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("]\n")


def export_chunks(rows: Iterator[dict], fmt: str) -> Iterator[bytes]:
    """The export as pieces of bytes, for a streaming HTTP answer."""
    buffer = io.StringIO()
    writer = ExportWriter(buffer, fmt)
    for row in rows:
        writer.write(row)
        if buffer.tell() > 65536:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    writer.close()
    yield buffer.getvalue().encode()


def export_path(run: OperationRun) -> Path:
    return Path(settings.VAR_DIR) / "exports" / f"dlq-export-{run.id}.{run.params.get('format', 'jsonl')}"


def dlq_export_run(run_id: int) -> None:
    run = OperationRun.objects.filter(id=run_id).first()
    if run is None or run.status != OperationStatus.QUEUED:
        return  # done, failed, or picked up by another worker
    path = export_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = ExportWriter(handle, run.params["format"])

        def step(run, chunk, result):
            for row in export_rows(DeadLetter.objects.filter(id__in=chunk)):
                writer.write(row)
            result["file"] = path.name
            result["rows"] = writer.count

        _run(run_id, step)
        writer.close()
