"""Destination adapters. Each delivers a list of records idempotently (a repeat changes nothing)."""
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from opsconsole.fields import MISSING, get_path


class DeliveryError(Exception):
    """A failed delivery. `transient` ones are retried (after `retry_after` seconds when the
    destination said so); the rest go to the dead letter queue."""

    def __init__(self, message: str, *, transient: bool, category: str | None = None,
                 http_status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.category = category or ("transient" if transient else "permanent")
        self.http_status = http_status
        self.retry_after = retry_after


@dataclass
class OutgoingRecord:
    record_id: str
    source_id: str
    ingested_at: datetime
    quality_score: float | None
    data: Any


def record_value(record: OutgoingRecord, key: str):
    """A column_mapping key: a record attribute (record_id, source_id, ingested_at, quality_score,
    payload = the data as JSON, timestamp = data.timestamp or ingested_at) or a data field path."""
    if key == "record_id":
        return record.record_id
    if key == "source_id":
        return record.source_id
    if key == "ingested_at":
        return record.ingested_at
    if key == "quality_score":
        return record.quality_score
    if key == "payload":
        return orjson.dumps(record.data).decode()
    if key == "timestamp":
        found = get_path(record.data, "timestamp") if isinstance(record.data, dict) else MISSING
        return record.ingested_at if found in (MISSING, None) else found
    found = get_path(record.data, key) if isinstance(record.data, dict) else MISSING
    return None if found is MISSING else found


class Adapter(Protocol):
    def deliver(self, records: list[OutgoingRecord], *, batch_id: str) -> None: ...


def get_adapter(destination_id: str, spec: dict) -> Adapter:
    from .file import FileDestination
    from .http import HttpDestination
    from .postgresql import PostgresDestination

    kind = (spec.get("connection") or {}).get("type")
    if kind == "postgresql":
        return PostgresDestination.for_spec(destination_id, spec)
    if kind == "file":
        return FileDestination(destination_id, spec)
    if kind == "http":
        return HttpDestination(destination_id, spec)
    raise DeliveryError(f"destination type '{kind}' is not supported", transient=False)
