"""The data plane's services in-process: ingest -> transform -> deliver, with every failure path."""
import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from django.conf import settings

from delivery.models import BatchDelivery, DeadLetter
from delivery.services import batch_deliver
from ingestion.choices import BatchStage, RecordStatus
from ingestion.models import Batch, Record, ValidationFailure
from ingestion.selectors import reconciliation
from ingestion.services import records_ingest
from monitoring.models import MetricCounter
from opsconsole.errors import ApplicationError
from tests.conftest import (
    DEFAULT_SCORING,     FILE_DESTINATION, PHONE_RULE, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE, ROUTE_TO_ANALYTICS, postgres_destination,
    warehouse_rows,
)
from transform.services import batch_transform

pytestmark = pytest.mark.django_db


def good_record(i: int, **extra) -> dict:
    return {
        "id": f"r{i}", "timestamp": datetime.now(timezone.utc).isoformat(), "payload": {"n": i},
        "customer_id": f"c{i}", "transaction_date": "2026-11-28", "amount": 10.0 + i, **extra,
    }


def archive_lines() -> list[dict]:
    root = Path(settings.PIPELINE_OUTPUT_DIR) / "local_archive"
    return [json.loads(line) for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]


def run_batch(batch: Batch) -> list[str]:
    batch_transform(batch_id=str(batch.id))
    return [
        batch_deliver(batch_id=str(batch.id), destination_id=d)
        for d in BatchDelivery.objects.filter(batch=batch).values_list("destination_id", flat=True)
    ]


@pytest.fixture
def archive_config(apply_config):
    return apply_config(sources=[PUSH_SOURCE], rules=[PHONE_RULE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])


def test_valid_and_invalid_records_are_accounted_with_reasons(archive_config):
    records = [good_record(1, phone_number="(555) 123-4567"), {"id": "x", "payload": {}}, "not an object",
               {"id": 5, "timestamp": "t", "payload": {}}]
    [batch] = records_ingest(source_id="api_source_1", records=records, origin="test")
    assert (batch.received, batch.accepted, batch.rejected) == (4, 1, 3)
    failures = {f.error_code: f for f in ValidationFailure.objects.all()}
    assert failures["MISSING_REQUIRED_FIELD"].field == "timestamp"
    assert "NOT_AN_OBJECT" in failures
    assert failures["SCHEMA_TYPE"].field == "id"
    assert run_batch(batch) == ["delivered"]
    [line] = archive_lines()
    assert line["data"]["phone_number"] == "+15551234567"  # the manual's E.164 rule, as written
    assert line["record_id"] == str(Record.objects.get(status=RecordStatus.DELIVERED).id)
    batch.refresh_from_db()
    assert batch.stage == BatchStage.DONE
    total = reconciliation()["total"]
    assert total["ingested"] == 4 and total["rejected"] == 3 and total["delivered"] == 1 and total["balanced"]


def test_stage_tasks_are_idempotent(archive_config):
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(i) for i in range(5)], origin="test")
    assert batch_transform(batch_id=str(batch.id)) is True
    assert batch_transform(batch_id=str(batch.id)) is False  # a duplicate message does nothing
    assert batch_deliver(batch_id=str(batch.id), destination_id="local_archive") == "delivered"
    assert batch_deliver(batch_id=str(batch.id), destination_id="local_archive") == "skipped"
    assert len(archive_lines()) == 5
    counters = dict(MetricCounter.objects.values_list("name", "value"))
    assert counters["gamma_records_delivered_total"] == 5
    assert counters["alpha_records_ingested_total"] == 5


def test_low_quality_is_rejected_and_unrouted_is_filtered(apply_config):
    narrow_route = {**ROUTE_ALL_TO_ARCHIVE, "match": {"source_id": {"in": ["other"]}}}
    strict = copy.deepcopy(DEFAULT_SCORING)
    strict["quality_scoring"]["thresholds"] = {"warn": 0.9, "error": 0.8, "reject": 0.7}
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[narrow_route], scoring=strict)
    stale = {"id": "old", "timestamp": "2020-01-01T00:00:00Z", "payload": {}}  # no required fields, 6 years old
    [batch] = records_ingest(source_id="api_source_1", records=[stale, good_record(1)], origin="test")
    assert run_batch(batch) == []
    by_id = {r.payload["id"]: r for r in Record.objects.all()}
    assert by_id["old"].status == RecordStatus.REJECTED
    # completeness 1 - 3 * 0.2 = 0.4, timeliness 0: 0.3 * 0.4 + 0.25 + 0.25 + 0.2 * 0 = 0.62
    assert by_id["old"].quality_score == 0.62
    assert by_id["old"].reason.startswith("quality score 0.62 below reject threshold 0.7: "
                                          "completeness: missing customer_id, transaction_date, amount; timeliness: ")
    assert by_id["old"].quality["level"] == "reject"
    assert by_id["old"].quality["dimensions"]["completeness"] == 0.4
    assert by_id["r1"].status == RecordStatus.FILTERED
    assert reconciliation()["total"]["balanced"]


def test_transform_failure_with_on_failure_fail_goes_to_dlq(apply_config):
    rule = {**PHONE_RULE, "on_failure": "fail"}
    apply_config(sources=[PUSH_SOURCE], rules=[rule], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(1, phone_number=5551234567)], origin="t")
    run_batch(batch)
    record = Record.objects.get()
    assert record.status == RecordStatus.DLQ
    dead = DeadLetter.objects.get()
    assert dead.category == "transform" and "TRX_042_NORMALIZE_PHONE" in dead.reason and "not a string" in dead.reason


def test_postgresql_destination_is_idempotent_on_record_id(apply_config, warehouse):
    apply_config(sources=[PUSH_SOURCE], destinations=[postgres_destination(warehouse)], routes=[ROUTE_TO_ANALYTICS])
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(i) for i in range(20)], origin="t")
    assert run_batch(batch) == ["delivered"]
    # Pretend the worker died after inserting but before committing: deliver the same batch again.
    BatchDelivery.objects.update(status="pending")
    assert batch_deliver(batch_id=str(batch.id), destination_id="analytics_warehouse") == "delivered"
    rows = warehouse_rows(warehouse)
    assert len(rows) == 20 and len({r[0] for r in rows}) == 20
    assert {r[1]["id"] for r in rows} == {f"r{i}" for i in range(20)}


def test_unreachable_destination_retries_then_dead_letters(apply_config, warehouse):
    dest = postgres_destination(warehouse, port=1, retry_count=2)  # nothing listens on port 1
    apply_config(sources=[PUSH_SOURCE], destinations=[dest], routes=[ROUTE_TO_ANALYTICS])
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(i) for i in range(3)], origin="t")
    batch_transform(batch_id=str(batch.id))
    outcomes = []
    for _ in range(3):
        BatchDelivery.objects.update(next_attempt_at=None)  # the test does not wait out the backoff
        outcomes.append(batch_deliver(batch_id=str(batch.id), destination_id="analytics_warehouse"))
    assert outcomes == ["retry", "retry", "dlq"]
    delivery = BatchDelivery.objects.get()
    assert delivery.attempts == 3 and "cannot connect" in delivery.last_error
    assert DeadLetter.objects.count() == 3
    assert set(DeadLetter.objects.values_list("category", flat=True)) == {"transient"}
    assert all(DeadLetter.objects.values_list("retry_eligible", flat=True))
    assert Record.objects.filter(status=RecordStatus.DLQ).count() == 3
    assert reconciliation()["total"] == {**reconciliation()["total"], "dlq": 3, "balanced": True}


def test_missing_table_is_a_permanent_failure(apply_config, warehouse):
    apply_config(sources=[PUSH_SOURCE], destinations=[postgres_destination(warehouse, table="no_such_table")],
                 routes=[ROUTE_TO_ANALYTICS])
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(1)], origin="t")
    assert run_batch(batch) == ["dlq"]
    assert DeadLetter.objects.get().category == "permanent"
    assert "42P01" in DeadLetter.objects.get().reason


def test_unknown_and_disabled_sources_are_refused(apply_config):
    apply_config(sources=[PUSH_SOURCE, {**PUSH_SOURCE, "source_id": "off", "enabled": False}],
                 destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    with pytest.raises(ApplicationError) as unknown:
        records_ingest(source_id="nope", records=[{}], origin="t")
    assert unknown.value.status_code == 404
    with pytest.raises(ApplicationError) as disabled:
        records_ingest(source_id="off", records=[{}], origin="t")
    assert disabled.value.status_code == 409


def test_large_push_is_split_into_batches(archive_config, settings):
    settings.INGEST_BATCH_SIZE = 100
    batches = records_ingest(source_id="api_source_1", records=[good_record(i) for i in range(250)], origin="t")
    assert [b.received for b in batches] == [100, 100, 50]
    assert Record.objects.count() == 250
