"""File sources: a directory of .json / .jsonl / .csv files.

A file is taken in one transaction with a row that remembers it (name + sha256), then moved to
`processed/`. A file that cannot be read as a whole goes to `quarantine/` with a `.reason.txt` beside
it. A worker killed between commit and move leaves the file in place; the next scan sees it was
already taken and only moves it, so nothing is ingested twice.
"""
import hashlib
import logging
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction

from monitoring.services import counters_add, labels_key

from .models import FileQuarantine, IngestedFile, Source, SourceState
from .parsing import ParseError, parse_body
from .services import records_ingest

logger = logging.getLogger(__name__)

EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
SETTLE_SECONDS = 1.0  # a file modified more recently may still be being written


def source_directory(spec: dict) -> Path:
    raw = (spec.get("connection") or {}).get("path") or ""
    path = Path(raw)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def _move(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{int(time.time() * 1000)}{path.suffix}"
    path.replace(target)
    return target


def _pending_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    now = time.time()
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS
        and now - p.stat().st_mtime >= SETTLE_SECONDS
    )


def file_source_scan(*, source_id: str) -> dict[str, int]:
    """Take in every settled file of a file source; returns counts of files ingested/quarantined/skipped."""
    result = {"ingested": 0, "quarantined": 0, "duplicates": 0}
    source = Source.objects.filter(source_id=source_id, enabled=True, source_type="file").first()
    if source is None:
        return result
    from .services import IngestRefused, alpha_control

    if alpha_control().paused or SourceState.objects.filter(source_id=source_id, paused=True).exists():
        result["paused"] = 1
        return result
    directory = source_directory(source.spec)
    parsing = source.spec.get("parsing") or {}
    for path in _pending_files(directory):
        try:
            outcome = _file_ingest(source_id, path, directory, parsing)
        except IngestRefused as refused:
            # Paused, buffer full or throttled: the file stays in the inbox for a later scan.
            result[refused.reason] = result.get(refused.reason, 0) + 1
            break
        result[outcome] += 1
    return result


def _file_ingest(source_id: str, path: Path, directory: Path, parsing: dict) -> str:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    fmt = EXTENSIONS[path.suffix.lower()]
    with transaction.atomic():
        # One scanner per source at a time: the source row is the lock.
        Source.objects.select_for_update().filter(source_id=source_id).first()
        if IngestedFile.objects.filter(source_id=source_id, file_name=path.name, sha256=digest).exists():
            outcome = "duplicates"
        else:
            started = time.perf_counter()
            try:
                parsed = parse_body(data, fmt, parsing.get("record_path") if fmt == "json" else None)
            except ParseError as exc:
                moved = _move(path, directory / "quarantine")
                moved.with_name(moved.name + ".reason.txt").write_text(f"{exc}\n")
                FileQuarantine.objects.create(source_id=source_id, file_name=path.name, moved_to=str(moved), reason=str(exc))
                counters_add({("alpha_parse_errors_total", labels_key({"source": source_id})): 1})
                logger.warning("quarantined %s: %s", path.name, exc, extra={"source_id": source_id, "component": "file_source"})
                return "quarantined"
            records_ingest(source_id=source_id, records=parsed.records, bad=parsed.bad, origin=f"file:{path.name}",
                           parse_seconds=time.perf_counter() - started)
            IngestedFile.objects.create(
                source_id=source_id, file_name=path.name, sha256=digest, records=len(parsed.records) + len(parsed.bad)
            )
            outcome = "ingested"
    _move(path, directory / "processed")
    return outcome
