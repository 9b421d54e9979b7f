"""Gamma in-process: HTTP destination outcomes, circuit breakers, holding and release, authorization,
alternate routes. Real HTTP server on 127.0.0.1, real PostgreSQL."""
import time

import pytest
from django_fsm import TransitionNotAllowed

from delivery.breakers import breaker_get, breaker_reset, breakers_probe_due
from delivery.choices import BreakerState, DeliveryStatus
from delivery.models import BatchDelivery, BreakerTransition, CircuitBreaker, DeadLetter, DeliveryAttempt
from delivery.services import batch_deliver
from ingestion.choices import RecordStatus
from ingestion.models import Record
from ingestion.selectors import reconciliation
from ingestion.services import records_ingest
from opsconsole.models import AuditEntry
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE
from tests.delivery.conftest import ROUTE_TO_PARTNER, http_destination
from tests.pipeline.test_services import good_record
from transform.services import batch_transform

pytestmark = pytest.mark.django_db


def ingest(n: int, start: int = 0):
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(i) for i in range(start, start + n)], origin="t")
    batch_transform(batch_id=str(batch.id))
    return batch


def deliver(batch, destination_id="partner_api", *, due_now: bool = True) -> str:
    if due_now:
        BatchDelivery.objects.filter(batch=batch, destination_id=destination_id).update(next_attempt_at=None)
    return batch_deliver(batch_id=str(batch.id), destination_id=destination_id)


@pytest.fixture
def partner(apply_config, sink):
    apply_config(sources=[PUSH_SOURCE], destinations=[http_destination(sink.url)], routes=[ROUTE_TO_PARTNER])
    return sink


def test_http_delivery_sends_batch_with_auth_and_idempotency_key(partner):
    batch = ingest(3)
    assert deliver(batch) == "delivered"
    [request] = partner.requests
    assert request["headers"]["Authorization"] == "Bearer sink-token-123"
    assert request["headers"]["Idempotency-Key"] == f"{batch.id}:partner_api"
    assert sorted(partner.delivered_ids()) == sorted(str(r) for r in Record.objects.values_list("id", flat=True))
    assert DeliveryAttempt.objects.get().ok is True


def test_retry_after_is_honoured_for_429(partner):
    partner.fail(1, status=429, headers={"Retry-After": "7"})
    batch = ingest(1)
    before = time.time()
    assert deliver(batch, due_now=False) == "retry"
    delivery = BatchDelivery.objects.get()
    assert 6 <= delivery.next_attempt_at.timestamp() - before <= 8
    assert delivery.last_http_status == 429
    assert deliver(batch, due_now=False) == "skipped"  # not due yet: an early duplicate does nothing
    assert deliver(batch) == "delivered"


@pytest.mark.parametrize("status, category", [(400, "permanent"), (422, "permanent"), (401, "authorization")])
def test_client_errors_are_not_retried(partner, status, category):
    partner.fail(1, status=status)
    batch = ingest(2)
    assert deliver(batch) == "dlq"
    entries = DeadLetter.objects.all()
    assert {e.category for e in entries} == {category} and {e.http_status for e in entries} == {status}
    assert not any(e.retry_eligible for e in entries)
    assert Record.objects.filter(status=RecordStatus.DLQ).count() == 2
    assert breaker_get("partner_api").state == BreakerState.CLOSED  # the destination answered: it is up


def test_timeout_is_transient_and_retried_then_dead_lettered(apply_config, sink):
    patient = http_destination(sink.url, circuit_breaker={"failure_threshold": 10})  # keep the breaker out of it
    apply_config(sources=[PUSH_SOURCE], destinations=[patient], routes=[ROUTE_TO_PARTNER])
    sink.fail(3, status=200, delay=1.5)  # slower than timeout_ms=1000: no acknowledgment
    batch = ingest(1)
    assert [deliver(batch) for _ in range(3)] == ["retry", "retry", "dlq"]
    entry = DeadLetter.objects.get()
    assert entry.category == "transient" and entry.retry_eligible and "timeout" in entry.reason
    assert entry.attempts == 3


def test_outage_opens_breaker_holds_records_and_recovery_delivers_each_once(partner):
    partner.fail(3, status=503)
    batches = [ingest(2, start=10 * i) for i in range(5)]
    outcomes = [deliver(b) for b in batches[:3]]
    assert outcomes == ["retry", "retry", "held"]  # the third consecutive failure trips the breaker
    breaker = CircuitBreaker.objects.get(destination_id="partner_api")
    assert breaker.state == BreakerState.OPEN and "3 consecutive failures" in breaker.reason
    assert [deliver(b) for b in batches[3:]] == ["held", "held"]  # no call while OPEN
    assert len(partner.requests) == 3
    assert DeadLetter.objects.count() == 0
    total = reconciliation()["total"]
    assert total["held"] == 6 and total["in_flight"] == 4 and total["balanced"]
    # Cool-down passes; the sweeper sends the oldest held delivery as the probe; it succeeds.
    time.sleep(0.35)
    assert breakers_probe_due() == 1
    assert deliver(batches[2]) == "delivered"
    assert CircuitBreaker.objects.get().state == BreakerState.CLOSED
    assert list(BreakerTransition.objects.order_by("id").values_list("source_state", "target_state")) == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    # Closing released every held delivery; the retrying ones go when due.
    assert set(BatchDelivery.objects.values_list("status", flat=True)) == {DeliveryStatus.PENDING, DeliveryStatus.DELIVERED}
    for b in batches:
        deliver(b)
    assert reconciliation()["total"]["delivered"] == 10
    ids = partner.delivered_ids()
    assert len(ids) == 10 and len(set(ids)) == 10


def test_failed_probe_reopens(partner):
    partner.fail(4, status=503)
    batches = [ingest(1, start=i) for i in range(4)]
    for b in batches[:3]:
        deliver(b)
    time.sleep(0.35)
    assert deliver(batches[3]) == "held"  # the probe failed: OPEN again, records still held
    breaker = CircuitBreaker.objects.get()
    assert breaker.state == BreakerState.OPEN and breaker.reason.startswith("probe delivery failed")


def test_operator_reset_closes_and_releases(partner, operator):
    partner.fail(3, status=503)
    batches = [ingest(1, start=i) for i in range(3)]
    for b in batches:
        deliver(b)
    assert CircuitBreaker.objects.get().state == BreakerState.OPEN
    breaker_reset(actor=operator, destination_id="partner_api", reason="destination team fixed the LB")
    assert CircuitBreaker.objects.get().state == BreakerState.CLOSED
    assert BreakerTransition.objects.filter(target_state="closed", actor=operator).exists()
    audit = AuditEntry.objects.get(action="circuit_breaker.reset")
    assert audit.actor == operator and audit.details["released_deliveries"] == 1
    for b in batches:
        deliver(b)
    assert reconciliation()["total"]["delivered"] == 3


def test_breaker_transitions_allowed_and_forbidden(db):
    breaker = CircuitBreaker.objects.create(destination_id="x")
    with pytest.raises(TransitionNotAllowed):
        breaker.probe()  # CLOSED cannot go HALF_OPEN
    with pytest.raises(TransitionNotAllowed):
        breaker.close()  # already CLOSED
    breaker.trip()
    with pytest.raises(TransitionNotAllowed):
        breaker.trip()  # OPEN cannot trip again
    breaker.probe()
    breaker.trip()  # HALF_OPEN -> OPEN (probe failed)
    breaker.probe()
    breaker.close()
    assert breaker.state == BreakerState.CLOSED
    with pytest.raises(AttributeError):
        breaker.state = BreakerState.OPEN  # protected: only transitions change it


def test_unauthorized_route_is_refused_counted_and_visible(apply_config, sink):
    confidential = {**PUSH_SOURCE, "source_id": "hr_source", "data_classification": "confidential"}
    open_route = {**ROUTE_TO_PARTNER, "match": {}}
    apply_config(sources=[PUSH_SOURCE, confidential], destinations=[http_destination(sink.url)], routes=[open_route])
    [batch] = records_ingest(source_id="hr_source", records=[good_record(1)], origin="t")
    batch_transform(batch_id=str(batch.id))
    entry = DeadLetter.objects.get()
    assert entry.category == "authorization" and not entry.retry_eligible
    assert "not in allowed_sources" in entry.reason
    assert Record.objects.get().status == RecordStatus.DLQ
    assert BatchDelivery.objects.count() == 0 and sink.requests == []
    from monitoring.models import MetricCounter
    assert MetricCounter.objects.get(name="gamma_routes_refused_total").labels == "destination=partner_api,source=hr_source"


def test_classification_above_the_destination_is_refused(apply_config, sink):
    restricted = {**PUSH_SOURCE, "data_classification": "restricted"}
    apply_config(sources=[restricted], destinations=[http_destination(sink.url)], routes=[ROUTE_TO_PARTNER])
    ingest(1)
    assert "classification 'restricted' is above the destination's 'internal'" in DeadLetter.objects.get().reason


def test_alternate_destination_while_primary_breaker_is_open(apply_config, sink):
    route = {**ROUTE_TO_PARTNER, "alternate_destination": "local_archive"}
    archive = {**FILE_DESTINATION, "authorization": {"data_classification": "internal"}}
    apply_config(sources=[PUSH_SOURCE], destinations=[http_destination(sink.url), archive], routes=[route])
    breaker = breaker_get("partner_api")
    breaker.trip()
    breaker.save()
    batch = ingest(2)
    assert list(BatchDelivery.objects.filter(batch=batch).values_list("destination_id", flat=True)) == ["local_archive"]
    assert deliver(batch, "local_archive") == "delivered"


def test_a_second_route_to_the_same_destination_does_not_double_deliver(apply_config):
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION],
                 routes=[ROUTE_ALL_TO_ARCHIVE, {**ROUTE_ALL_TO_ARCHIVE, "rule_id": "DUP", "priority": 300}])
    batch = ingest(2)
    assert BatchDelivery.objects.get(batch=batch).record_ids.__len__() == 2


def test_batch_size_splits_a_delivery_into_parts_with_stable_ids(apply_config, sink):
    small = http_destination(sink.url, delivery={"batch_size": 2})
    apply_config(sources=[PUSH_SOURCE], destinations=[small], routes=[ROUTE_TO_PARTNER])
    sink.script.extend([(200, {}, b"{}", 0), (503, {}, b"busy", 0)])  # the second part fails once
    batch = ingest(5)
    assert deliver(batch) == "retry"
    assert deliver(batch) == "delivered"
    keys = [r["headers"]["Idempotency-Key"] for r in sink.requests]
    assert keys == [f"{batch.id}-0:partner_api", f"{batch.id}-1:partner_api",
                    f"{batch.id}-0:partner_api", f"{batch.id}-1:partner_api", f"{batch.id}-2:partner_api"]
    # The receiver kept one copy per key: every record exactly once.
    ids = sink.delivered_ids()
    assert len(ids) == 5 and len(set(ids)) == 5


def test_csv_file_destination(apply_config, settings):
    import csv
    from pathlib import Path

    csv_destination = {**FILE_DESTINATION, "format": {"type": "csv", "column_mapping": {
        "record_id": "id", "source_id": "source", "customer_id": "customer", "amount": "amount"}}}
    apply_config(sources=[PUSH_SOURCE], destinations=[csv_destination], routes=[ROUTE_ALL_TO_ARCHIVE])
    batch = ingest(3)
    assert deliver(batch, "local_archive") == "delivered"
    [path] = list((Path(settings.PIPELINE_OUTPUT_DIR) / "local_archive").rglob("*.csv"))
    rows = list(csv.DictReader(path.open()))
    assert [r["customer"] for r in rows] == ["c0", "c1", "c2"] or sorted(r["customer"] for r in rows) == ["c0", "c1", "c2"]
    assert set(rows[0]) == {"id", "source", "customer", "amount"} and rows[0]["source"] == "api_source_1"


def test_connection_refused_is_transient(apply_config):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead_end = http_destination(f"http://127.0.0.1:{port}/ingest", circuit_breaker={"failure_threshold": 10})
    apply_config(sources=[PUSH_SOURCE], destinations=[dead_end], routes=[ROUTE_TO_PARTNER])
    batch = ingest(1)
    assert deliver(batch) == "retry"
    delivery = BatchDelivery.objects.get()
    assert "cannot connect" in delivery.last_error and delivery.last_http_status is None
    attempt = DeliveryAttempt.objects.get()
    assert attempt.ok is False and attempt.category == "transient"
