"""The DLQ review workflow (Runbook C.2): replay exactly once, correct, export, purge, stats, analysis."""
import csv
import io
import threading

import orjson
import pytest
from django.db import connection
from django_fsm import TransitionNotAllowed

from delivery.choices import DeadLetterState
from delivery.dlq import (
    dead_letter_correct, dead_letters_mark_exported, dead_letters_replay_chunk, dead_letters_select, dead_letters_triage,
    dlq_analysis, dlq_stats,
)
from delivery.models import BatchDelivery, CircuitBreaker, DeadLetter
from delivery.operations import dlq_purge, dlq_replay
from delivery.services import batch_deliver
from ingestion.choices import RecordStatus
from ingestion.models import Record
from ingestion.selectors import reconciliation
from opsconsole.errors import ApplicationError
from opsconsole.models import AuditEntry
from tests.conftest import PUSH_SOURCE
from tests.delivery.conftest import ROUTE_TO_PARTNER, http_destination
from tests.delivery.test_delivery_services import deliver, ingest

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead(apply_config, sink):
    """Five records dead-lettered by a 400 from the partner API, then the partner fixed."""
    apply_config(sources=[PUSH_SOURCE], destinations=[http_destination(sink.url)], routes=[ROUTE_TO_PARTNER])
    sink.fail(1, status=400)
    batch = ingest(5)
    assert deliver(batch) == "dlq"
    return sink


def deliver_pending() -> list[str]:
    return [batch_deliver(batch_id=str(b), destination_id=d)
            for b, d in BatchDelivery.objects.filter(status="pending").values_list("batch_id", "destination_id")]


def test_replay_by_ids_delivers_once_and_a_second_click_is_refused(dead, operator):
    ids = list(DeadLetter.objects.values_list("id", flat=True)[:2])
    result = dlq_replay(actor=operator, entry_ids=ids)
    assert result["replayed"] == 2 and result["refused"] == []
    again = dlq_replay(actor=operator, entry_ids=ids)
    assert again["replayed"] == 0 and {r["reason"] for r in again["refused"]} == {"entry is Replayed"}
    assert deliver_pending() == ["delivered"]
    assert len(dead.delivered_ids()) == 2
    total = reconciliation()["total"]
    assert total["delivered"] == 2 and total["dlq"] == 3 and total["balanced"]
    assert AuditEntry.objects.filter(action="dlq.replay", actor=operator).count() == 2


def test_replay_by_filter_and_the_manuals_entry_prefix(dead, operator):
    DeadLetter.objects.filter(id=DeadLetter.objects.first().id).update(retry_eligible=True)
    assert dlq_replay(actor=operator, filter={"retry_eligible": True})["replayed"] == 1
    other = DeadLetter.objects.filter(state="new").first()
    assert dlq_replay(actor=operator, entry_ids=[f"entry_{other.id}"])["replayed"] == 1


def test_bad_selections_get_clear_errors(dead, operator):
    for kwargs, fragment in [
        ({}, "Give either"),
        ({"entry_ids": []}, "non-empty list"),
        ({"entry_ids": ["abc"]}, "numeric ids"),
        ({"entry_ids": [999999]}, "Unknown DLQ entries: 999999"),
        ({"filter": {"colour": "red"}}, "Unknown filter keys: colour"),
        ({"filter": {"failed_after": "yesterday"}}, "not an ISO 8601"),
    ]:
        with pytest.raises(ApplicationError) as error:
            dead_letters_select(**kwargs)
        assert fragment in error.value.message


@pytest.mark.django_db(transaction=True)
def test_two_operators_replaying_the_same_entries_at_once_deliver_once(apply_config, sink, operator):
    apply_config(sources=[PUSH_SOURCE], destinations=[http_destination(sink.url)], routes=[ROUTE_TO_PARTNER])
    sink.fail(1, status=400)
    batch = ingest(20)
    deliver(batch)
    ids = list(DeadLetter.objects.values_list("id", flat=True))
    results, barrier = [], threading.Barrier(2)

    def click():
        barrier.wait()
        try:
            results.append(dead_letters_replay_chunk(actor=operator, queryset=DeadLetter.objects.filter(id__in=ids)))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["replayed"] for r in results) == [0, 20]
    assert BatchDelivery.objects.filter(status="pending").count() == 1
    deliver_pending()
    assert sorted(sink.delivered_ids()) == sorted(str(r) for r in Record.objects.values_list("id", flat=True))


def test_replay_is_refused_while_the_breaker_is_open(dead, operator):
    breaker = CircuitBreaker.objects.get(destination_id="partner_api")
    breaker.trip()
    breaker.save()
    result = dlq_replay(actor=operator, entry_ids=list(DeadLetter.objects.values_list("id", flat=True)))
    assert result["replayed"] == 0
    assert {r["reason"] for r in result["refused"]} == {"circuit breaker of 'partner_api' is OPEN"}


def test_correct_then_replay_sends_the_corrected_record_and_keeps_the_original(dead, operator):
    entry = DeadLetter.objects.first()
    original = Record.objects.get(id=entry.record_id).data
    fixed = {**original, "amount": 99.5}
    dead_letter_correct(actor=operator, entry_id=entry.id, payload=fixed, note="amount was a string upstream")
    entry = DeadLetter.objects.get(id=entry.id)  # protected FSM fields cannot refresh_from_db
    assert entry.state == DeadLetterState.CORRECTED and entry.original_payload == original
    dlq_replay(actor=operator, entry_ids=[entry.id])
    deliver_pending()
    [sent] = [r for records in dead.accepted.values() for r in records]
    assert sent["data"]["amount"] == 99.5
    with pytest.raises(ApplicationError):
        dead_letter_correct(actor=operator, entry_id=entry.id, payload=fixed)  # REPLAYED cannot be corrected


def test_a_replay_that_fails_again_makes_a_new_entry(dead, operator):
    entry = DeadLetter.objects.first()
    dlq_replay(actor=operator, entry_ids=[entry.id])
    dead.fail(1, status=400)
    assert deliver_pending() == ["dlq"]
    assert DeadLetter.objects.filter(record_id=entry.record_id).count() == 2
    assert set(DeadLetter.objects.filter(record_id=entry.record_id).values_list("state", flat=True)) == {"replayed", "new"}
    assert reconciliation()["total"]["balanced"]


def test_purge_needs_a_reason_and_accounts_records_as_rejected(dead, operator):
    ids = list(DeadLetter.objects.values_list("id", flat=True))
    with pytest.raises(ApplicationError, match="reason"):
        dlq_purge(actor=operator, entry_ids=ids, reason=" ")
    assert dlq_purge(actor=operator, entry_ids=ids, reason="test data from a partner's staging")["purged"] == 5
    assert Record.objects.filter(status=RecordStatus.REJECTED, reason__startswith="purged from the DLQ by oper").count() == 5
    assert dlq_stats()["size"] == 0
    total = reconciliation()["total"]
    assert total["dlq"] == 0 and total["rejected"] == 5 and total["balanced"]
    assert dlq_purge(actor=operator, entry_ids=ids, reason="again")["refused"][0]["reason"] == "entry is Purged"


def test_triage_export_and_the_state_machine(dead, operator):
    first, second, third = DeadLetter.objects.order_by("id")[:3]
    dead_letters_triage(actor=operator, entry_ids=[first.id], note="looked at")
    with pytest.raises(ApplicationError):
        dead_letters_triage(actor=operator, entry_ids=[first.id])  # already TRIAGED
    dead_letters_mark_exported(actor=operator, entry_ids=[second.id])
    second = DeadLetter.objects.get(id=second.id)
    assert second.state == DeadLetterState.EXPORTED and second.decided_by == operator
    for method in ("replay", "correct", "triage", "export"):
        with pytest.raises(TransitionNotAllowed):
            getattr(second, method)()  # EXPORTED may only be purged
    second.purge()
    for method in ("replay", "correct", "triage", "export", "purge"):
        with pytest.raises(TransitionNotAllowed):
            getattr(second, method)()  # PURGED is final
    third.replay()
    for method in ("replay", "correct", "triage", "export", "purge"):
        with pytest.raises(TransitionNotAllowed):
            getattr(third, method)()  # REPLAYED is final


def test_stats_and_analysis(dead):
    stats = dlq_stats()
    assert stats["size"] == 5 and stats["growth_last_hour"] == 5
    assert stats["age_distribution"]["<1h"] == 5 and len(stats["growth_per_hour"]) == 24
    [reason] = dlq_analysis()["failure_reasons"]
    assert reason["count"] == 5 and reason["category"] == "permanent" and reason["reason"].startswith("HTTP 400")


def test_export_formats(dead, viewer_client):
    base = "/api/gamma/admin/dlq/export"
    rows = orjson.loads(b"".join(viewer_client.get(base + "?format=json").streaming_content))
    assert len(rows) == 5 and rows[0]["payload"]["id"].startswith("r")
    lines = b"".join(viewer_client.get(base + "?format=jsonl").streaming_content).splitlines()
    assert len(lines) == 5
    text = b"".join(viewer_client.get(base + "?format=csv&category=permanent").streaming_content).decode()
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 5 and orjson.loads(parsed[0]["payload"])["id"].startswith("r")
    assert viewer_client.get(base + "?format=xml").status_code == 400
