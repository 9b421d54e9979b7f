"""File destination: JSON lines or CSV (format.type), one file per delivered batch in a folder per day
(the rotation), fsynced and renamed into place.

A repeated delivery of the same batch rewrites the same file with the same lines, so a worker killed
between writing and committing never duplicates a record.
"""
import csv
import io
import os
from pathlib import Path

import orjson
from django.conf import settings

from . import DeliveryError, OutgoingRecord, record_value


class FileDestination:
    def __init__(self, destination_id: str, spec: dict):
        self.destination_id = destination_id
        path = (spec.get("connection") or {}).get("path") or destination_id
        self.root = Path(settings.PIPELINE_OUTPUT_DIR) / path if not os.path.isabs(path) else Path(path)
        fmt = spec.get("format") or {}
        self.extension = "csv" if fmt.get("type") == "csv" else "jsonl"
        self.columns: dict = fmt.get("column_mapping") or {}

    def _csv(self, records: list[OutgoingRecord]) -> bytes:
        """CSV with the columns of format.column_mapping (record attribute or data field -> column)."""
        mapping = self.columns or {"record_id": "record_id", "source_id": "source_id", "ingested_at": "ingested_at",
                                   "quality_score": "quality_score", "payload": "payload"}
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(mapping.values())
        for record in records:
            writer.writerow(["" if (v := record_value(record, key)) is None else v for key in mapping])
        return out.getvalue().encode()

    def deliver(self, records: list[OutgoingRecord], *, batch_id: str) -> None:
        if not records:
            return
        day = records[0].ingested_at.strftime("%Y-%m-%d")
        folder = self.root / day
        final = folder / f"{batch_id}.{self.extension}"
        tmp = folder / f".{batch_id}.{self.extension}.tmp"
        lines = self._csv(records) if self.extension == "csv" else b"".join(
            orjson.dumps(
                {"record_id": r.record_id, "source_id": r.source_id, "ingested_at": r.ingested_at,
                 "quality_score": r.quality_score, "data": r.data}
            ) + b"\n"
            for r in records
        )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            # A full disk or a missing mount may clear; a permission error will not.
            transient = exc.errno not in (13, 30)  # EACCES, EROFS
            raise DeliveryError(f"cannot write {final}: {exc.strerror}", transient=transient) from exc

    def test(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise DeliveryError(f"{self.root} is not writable", transient=False)
        return f"{self.root} is writable"
