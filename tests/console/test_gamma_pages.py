"""Module Gamma's console pages: DLQ review (bulk and per entry), circuit breakers, a destination's page and
the Gamma dashboard, with DLQ entries and breakers produced by the real services against a real HTTP
destination on 127.0.0.1."""
import re

import pytest
from django.test import Client

import delivery.operations
from delivery.choices import BreakerState, DeadLetterState
from delivery.models import BatchDelivery, BreakerTransition, CircuitBreaker, DeadLetter, OperationRun
from delivery.operations import dlq_export_run, dlq_replay_run
from delivery.services import batch_deliver
from ingestion.choices import RecordStatus
from ingestion.models import Record
from opsconsole.models import AuditEntry
from tests.conftest import PUSH_SOURCE
from tests.delivery.conftest import ROUTE_TO_PARTNER, http_destination
from tests.delivery.http_sink import HttpSink
from tests.delivery.test_delivery_services import deliver, ingest

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def partner(apply_config):
    sink = HttpSink()
    apply_config(sources=[PUSH_SOURCE], destinations=[http_destination(sink.url)], routes=[ROUTE_TO_PARTNER])
    yield sink
    sink.close()


@pytest.fixture
def dead(partner):
    """Four records dead-lettered by a 400 from the partner API (which then answers 200 again)."""
    partner.fail(1, status=400)
    assert deliver(ingest(4)) == "dlq"
    return sorted(DeadLetter.objects.values_list("id", flat=True))


def open_breaker(partner) -> None:
    partner.fail(3, status=503)
    for i in range(3):
        deliver(ingest(1, start=100 + i))
    assert CircuitBreaker.objects.get(destination_id="partner_api").state == BreakerState.OPEN


def deliver_pending() -> list[str]:
    return [batch_deliver(batch_id=str(b), destination_id=d)
            for b, d in BatchDelivery.objects.filter(status="pending").values_list("batch_id", "destination_id")]


def bulk(client: Client, action: str, ids=(), query: str = "", htmx: bool = True, **extra):
    data = {"action": action, "entry_ids": [str(i) for i in ids], "query": query, **extra}
    return client.post("/dlq/bulk/", data, **(HTMX if htmx else {}))


def states(ids) -> list[str]:
    return list(DeadLetter.objects.filter(id__in=ids).order_by("id").values_list("state", flat=True))


def body(response) -> str:
    return response.content.decode()


# --- Access --------------------------------------------------------------------------------------------


def test_every_gamma_page_reads_for_a_viewer_and_redirects_anonymous(dead, viewer_console):
    run = OperationRun.objects.create(kind="dlq_export", params={"format": "csv"}, total=1)
    pages = ["/gamma/", "/dlq/", f"/dlq/{dead[0]}/", "/circuit-breakers/", "/destinations/partner_api/",
             f"/dlq/operations/{run.id}/"]
    for url in pages:
        response = viewer_console.get(url)
        assert response.status_code == 200, url
        text = body(response)
        # A Viewer sees everything but no button that acts.
        assert 'id="dlq-bulk"' not in text and "Reset (close)" not in text and "Send test record" not in text, url
        assert 'name="entry_ids"' not in text and 'id="correct-form"' not in text, url
        anonymous = Client().get(url)
        assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/?next="), url
    assert viewer_console.get("/dlq/999999/").status_code == 404
    assert viewer_console.get("/destinations/nowhere/").status_code == 404
    nav = body(viewer_console.get("/gamma/"))
    assert 'href="/gamma/"' in nav and 'href="/circuit-breakers/"' in nav and 'href="/dlq/"' in nav


def test_viewer_posts_are_refused_and_change_nothing(dead, partner, viewer_console):
    open_breaker(partner)
    for url, data in [
        ("/dlq/bulk/", {"action": "replay", "entry_ids": [str(dead[0])]}),
        ("/dlq/bulk/", {"action": "purge", "select_all": "on", "reason": "x"}),
        (f"/dlq/{dead[0]}/correct/", {"payload": '{"a": 1}'}),
        (f"/dlq/{dead[0]}/replay/", {}),
        (f"/dlq/{dead[0]}/purge/", {"reason": "x"}),
        ("/circuit-breakers/partner_api/reset/", {"reason": "x"}),
        ("/destinations/partner_api/test/", {}),
        ("/destinations/partner_api/test-delivery/", {"payload": '{"test_field": "test_value"}'}),
    ]:
        assert viewer_console.post(url, data, **HTMX).status_code == 403, url
    assert set(states(dead)) == {DeadLetterState.NEW}
    assert CircuitBreaker.objects.get().state == BreakerState.OPEN
    assert not AuditEntry.objects.exclude(action="config.reload").exists()


# --- DLQ review: list, summary, bulk actions --------------------------------------------------------------


def test_dlq_page_summary_filters_and_selection(dead, operator_console):
    response = operator_console.get("/dlq/")
    text = body(response)
    assert re.search(r'id="dlq-stat-size">4<', text) and re.search(r'id="dlq-stat-growth">4<', text)
    assert "Age of open entries" in text and "<svg" in text  # the age distribution, drawn on the server
    assert re.search(r'id="dlq-by-category">.*permanent</span> 4', text, re.S)
    assert text.count('name="entry_ids"') == 4 and 'form="dlq-bulk"' in text
    assert re.search(r'id="matching-count">4<', text)
    filtered = operator_console.get("/dlq/?category=transient")
    assert list(filtered.context["object_list"]) == [] and re.search(r'id="matching-count">0<', body(filtered))
    assert re.search(r'id="matching-count">4<', body(operator_console.get("/dlq/?category=permanent&retry_eligible=false")))


def test_bulk_replay_of_ticked_entries_delivers_them_once(dead, partner, operator_console, operator_user):
    response = bulk(operator_console, "replay", dead[:2], reason="partner fixed the schema")
    assert response.status_code == 200 and response["HX-Trigger"] == "dlq-changed"
    assert "Replayed 2." in body(response)
    assert states(dead) == ["replayed", "replayed", "new", "new"]
    again = bulk(operator_console, "replay", dead[:2])
    assert "Replayed 0; refused 2." in body(again) and "entry is Replayed" in body(again)
    assert deliver_pending() == ["delivered"]
    assert len(partner.delivered_ids()) == 2
    audit = AuditEntry.objects.filter(action="dlq.replay", actor=operator_user).order_by("id").first()
    assert audit.reason == "partner fixed the schema" and audit.details["replayed"] == dead[:2]


def test_bulk_replay_refused_while_the_breaker_is_open_says_why(dead, partner, operator_console):
    open_breaker(partner)
    response = bulk(operator_console, "replay", dead)
    text = body(response)
    assert "Replayed 0; refused 4." in text
    assert text.count("circuit breaker of &#x27;partner_api&#x27; is OPEN") == 4
    assert f'href="/dlq/{dead[0]}/"' in text
    assert set(states(dead)) == {DeadLetterState.NEW}


def test_select_all_matching_the_filter_triages_then_marks_exported(dead, operator_console):
    response = bulk(operator_console, "triage", select_all="on", query="category=permanent&state=new", reason="looked")
    assert "Triaged 4 entries." in body(response)
    assert set(states(dead)) == {DeadLetterState.TRIAGED}
    assert DeadLetter.objects.filter(note="looked").count() == 4
    refused = bulk(operator_console, "triage", dead[:1])
    assert 'id="outcome-error"' in body(refused) and f"#{dead[0]} is Triaged" in body(refused)
    exported = bulk(operator_console, "mark_exported", dead[:2], reason="sent to the partner team")
    assert "Marked 2 entries as exported." in body(exported)
    assert states(dead) == ["exported", "exported", "triaged", "triaged"]
    nothing = bulk(operator_console, "replay")
    assert "Select entries first" in body(nothing) and "HX-Trigger" not in nothing


def test_purge_needs_a_reason_and_then_rejects_the_records(dead, operator_console, operator_user):
    refused = bulk(operator_console, "purge", dead[:2])
    assert 'A &quot;reason&quot; is required' in body(refused) and "HX-Trigger" not in refused
    assert set(states(dead)) == {DeadLetterState.NEW}
    done = bulk(operator_console, "purge", dead[:2], reason="duplicates of a resent batch")
    assert "Purged 2." in body(done)
    assert states(dead)[:2] == ["purged", "purged"]
    assert Record.objects.filter(status=RecordStatus.REJECTED).count() == 2
    assert AuditEntry.objects.get(action="dlq.purge").reason == "duplicates of a resent batch"
    # Without JavaScript the same form posts and redirects back to the filtered list with messages.
    plain = bulk(operator_console, "purge", select_all="on", query="category=permanent", reason="bad data", htmx=False)
    assert plain.status_code == 302 and plain["Location"] == "/dlq/?category=permanent"
    assert set(states(dead)) == {DeadLetterState.PURGED}


def test_large_replay_runs_as_an_operation_with_a_polled_progress_partial(dead, operator_console, viewer_console,
                                                                           monkeypatch):
    monkeypatch.setattr(delivery.operations, "SYNC_LIMIT", 2)
    monkeypatch.setattr(delivery.operations, "CHUNK", 2)
    response = bulk(operator_console, "replay", select_all="on", query="category=permanent")
    text = body(response)
    run = OperationRun.objects.get()
    assert "in the background" in text and f'id="operation-{run.id}"' in text
    assert f'hx-get="/dlq/operations/{run.id}/"' in text and "0 / 4" in text
    partial = viewer_console.get(f"/dlq/operations/{run.id}/", **HTMX)
    assert 'data-status="queued"' in body(partial) and "hx-trigger" in body(partial) and "HX-Trigger" not in partial
    dlq_replay_run(run.id)  # what the delivery.dlq_replay_run task does on a worker
    partial = viewer_console.get(f"/dlq/operations/{run.id}/", **HTMX)
    text = body(partial)
    assert 'data-status="done"' in text and "4 / 4" in text and "Replayed 4; refused 0." in text
    assert "hx-trigger" not in text and partial["HX-Trigger"] == "dlq-changed"  # polling stops, the list refreshes
    assert set(states(dead)) == {DeadLetterState.REPLAYED}
    page = viewer_console.get(f"/dlq/operations/{run.id}/")
    assert "<h1>Operation" in body(page) and "<html" in body(page)


def test_export_job_shows_progress_then_a_download_link(dead, operator_console):
    response = bulk(operator_console, "export", query="category=permanent", format="csv")
    run = OperationRun.objects.get(kind="dlq_export")
    assert "Export of 4 entries started (csv)." in body(response) and run.total == 4
    dlq_export_run(run.id)
    partial = body(operator_console.get(f"/dlq/operations/{run.id}/", **HTMX))
    link = f'/api/gamma/admin/operations/{run.id}/download'
    assert "Exported 4 entries." in partial and f'href="{link}"' in partial
    download = operator_console.get(link)  # the console session is enough
    assert download.status_code == 200
    assert b"".join(download.streaming_content).decode().startswith("entry_id,")


# --- DLQ entry page ----------------------------------------------------------------------------------------


def test_entry_page_shows_the_failure_and_only_allowed_transitions(dead, operator_console):
    entry = DeadLetter.objects.get(id=dead[0])
    text = body(operator_console.get(f"/dlq/{entry.id}/"))
    assert 'data-state="new"' in text and "HTTP 400" in entry.reason and entry.reason.split(":")[0] in text
    assert "Permanent" in text and "<dt>HTTP status</dt><dd>400</dd>" in text and "<dt>Attempts</dt><dd>1</dd>" in text
    for name in ("triage", "replay", "export", "purge"):
        assert f'action="/dlq/{entry.id}/{name}/"' in text
    assert 'id="correct-form"' in text and 'id="payload-current"' in text
    assert f'&quot;id&quot;: &quot;{entry.record.data["id"]}&quot;' in text  # the record as it would be replayed

    assert operator_console.post(f"/dlq/{entry.id}/triage/", {"reason": "mine"}).status_code == 302
    text = body(operator_console.get(f"/dlq/{entry.id}/"))
    assert 'data-state="triaged"' in text and f'action="/dlq/{entry.id}/triage/"' not in text
    assert "dlq.triage" in text  # history

    operator_console.post(f"/dlq/{entry.id}/replay/")
    text = body(operator_console.get(f"/dlq/{entry.id}/"))
    assert 'data-state="replayed"' in text and "No action left" in text and 'id="correct-form"' not in text
    assert "dlq.replay" in text and "dlq.triage" in text

    purge = operator_console.post(f"/dlq/{dead[1]}/purge/", {"reason": ""}, follow=True)
    assert "A &quot;reason&quot; is required" in body(purge)
    assert DeadLetter.objects.get(id=dead[1]).state == DeadLetterState.NEW


def test_correct_form_validates_json_and_keeps_the_original(dead, partner, operator_console):
    entry = DeadLetter.objects.get(id=dead[0])
    bad = operator_console.post(f"/dlq/{entry.id}/correct/", {"payload": '{"id": "r1", oops}'}, **HTMX)
    assert bad.status_code == 200 and 'id="correct-form"' in body(bad)
    assert "Not valid JSON: Expecting property name enclosed in double quotes at line 1, column 14." in body(bad)
    listed = operator_console.post(f"/dlq/{entry.id}/correct/", {"payload": "[1, 2]"})
    assert listed.status_code == 400 and "Give a JSON object" in body(listed) and "<html" in body(listed)
    assert DeadLetter.objects.get(id=entry.id).state == DeadLetterState.NEW

    good = operator_console.post(f"/dlq/{entry.id}/correct/", {"payload": '{"id": "fixed", "amount": 10}',
                                                               "note": "schema v2"}, **HTMX)
    assert good.status_code == 204 and good["HX-Redirect"] == f"/dlq/{entry.id}/"
    entry = DeadLetter.objects.get(id=entry.id)
    assert entry.state == DeadLetterState.CORRECTED and entry.corrected_payload == {"id": "fixed", "amount": 10}
    text = body(operator_console.get(f"/dlq/{entry.id}/"))
    assert 'id="payload-original"' in text and 'id="payload-corrected"' in text and "&quot;fixed&quot;" in text
    assert "dlq.correct" in text and "schema v2" in text
    assert bulk(operator_console, "replay", [entry.id]).status_code == 200
    assert deliver_pending() == ["delivered"]
    [record] = [r for rs in partner.accepted.values() for r in rs if r["record_id"] == str(entry.record_id)]
    assert record["data"] == {"id": "fixed", "amount": 10}


# --- Circuit breakers ----------------------------------------------------------------------------------------


def test_breaker_panel_colours_and_reset_from_the_console(partner, operator_console, operator_user):
    text = body(operator_console.get("/circuit-breakers/"))
    assert 'id="breaker-partner_api"' in text and 'data-state="closed"' in text and "breaker-ok" in text
    assert "never tripped" in text and "Reset (close)" not in text
    open_breaker(partner)
    text = body(operator_console.get("/circuit-breakers/"))
    assert 'data-state="open"' in text and "breaker-bad" in text and "3 consecutive failures" in text
    assert 'id="open-count">1 open' in text and "Reset (close)" in text
    assert "<td>CLOSED</td>" in text  # the transitions table: CLOSED -> OPEN

    response = operator_console.post("/circuit-breakers/partner_api/reset/", {"reason": "partner recovered"}, **HTMX)
    text = body(response)
    assert response.status_code == 200 and 'data-state="closed"' in text and "held deliveries released" in text
    assert CircuitBreaker.objects.get().state == BreakerState.CLOSED
    transition = BreakerTransition.objects.order_by("-id").first()
    assert transition.target_state == BreakerState.CLOSED and transition.actor == operator_user
    assert AuditEntry.objects.get(action="circuit_breaker.reset").reason == "partner recovered"
    # The held records flow again.
    assert BatchDelivery.objects.filter(status="held").count() == 0
    assert set(deliver_pending()) == {"delivered"}
    assert operator_console.post("/circuit-breakers/nowhere/reset/", {}, **HTMX).status_code == 404
    # Without JavaScript the form posts and goes back to the page it came from, never off-site.
    plain = operator_console.post("/circuit-breakers/partner_api/reset/", {"next": "https://evil.example/"})
    assert plain.status_code == 302 and plain["Location"] == "/circuit-breakers/"
    back = operator_console.post("/circuit-breakers/partner_api/reset/", {"next": "/destinations/partner_api/"})
    assert back["Location"] == "/destinations/partner_api/"


# --- Destination page -------------------------------------------------------------------------------------------


def test_destination_page_status_errors_and_inline_tests(partner, operator_console):
    partner.fail(1, status=500)
    deliver(ingest(2))
    deliver(ingest(1, start=5))
    text = body(operator_console.get("/destinations/partner_api/"))
    assert re.search(r'id="status-breaker">CLOSED<', text) and re.search(r'id="status-success">50.0%<', text)
    assert re.search(r'id="status-attempts">2<', text) and re.search(r'id="status-p50">\d+ ms<', text)
    assert "Errors in the last hour (1)" in text and "HTTP 500" in text
    assert "ROUTE_TO_PARTNER" in text and 'id="send-test-record"' in text

    test = operator_console.post("/destinations/partner_api/test/", **HTMX)
    assert test.status_code == 200 and "Connected" in body(test)
    partner.fail(1, status=401)
    denied = body(operator_console.post("/destinations/partner_api/test/", **HTMX))
    assert "Failed" in denied and "authorization" in denied and "HTTP 401" in denied

    sent = operator_console.post("/destinations/partner_api/test-delivery/",
                                 {"payload": '{"test_field": "test_value"}'}, **HTMX)
    assert "Test record delivered" in body(sent)
    [record] = [r for rs in partner.accepted.values() for r in rs if r["record_id"].startswith("test-")]
    assert record["data"] == {"test_field": "test_value", "_opsconsole_test": True}
    assert AuditEntry.objects.filter(action="destination.test_delivery").count() == 1
    bad = body(operator_console.post("/destinations/partner_api/test-delivery/", {"payload": "test_field"}, **HTMX))
    assert "Not valid JSON" in bad and "Test record delivered" not in bad
    assert 'href="/destinations/partner_api/"' in body(operator_console.get("/destinations/"))


# --- Dashboard ----------------------------------------------------------------------------------------------------


def test_dashboard_is_empty_without_deliveries(partner, viewer_console):
    text = body(viewer_console.get("/gamma/"))
    assert text.count("No deliveries in the last hour.") >= 3  # rate, acknowledgments, latency, retries
    assert 'data-health="idle"' in text and "<polyline" not in text
    assert re.search(r'id="dash-records">0<', text)


def test_dashboard_shows_real_numbers(partner, viewer_console):
    deliver(ingest(3))                       # 3 records, first try
    partner.fail(1, status=500)
    batch = ingest(2, start=10)
    assert deliver(batch) == "retry"         # a failed attempt ...
    assert deliver(batch) == "delivered"     # ... and its retry
    partner.fail(1, status=400)
    assert deliver(ingest(1, start=20)) == "dlq"
    partner.fail(1, status=200, delay=1.2)   # slower than timeout_ms=1000: no acknowledgment
    assert deliver(ingest(1, start=30)) == "retry"
    response = viewer_console.get("/gamma/")
    context, text = response.context, body(response)
    assert context["rate"]["records"] == 5
    [rate] = context["rate"]["series"]
    assert rate["name"] == "partner_api" and sum(rate["values"]) == pytest.approx(5 / 5)  # 5 records, 5-minute buckets
    [health] = context["health"]
    assert (health["attempts"], health["ack_rate"], health["timeout_rate"], health["retry_rate"]) == (5, 0.4, 0.2, 0.2)
    assert health["p50"] is not None and health["css"] == "bad" and health["health"] == "failing"  # 40% acknowledged
    assert [(r["attempts"], r["deliveries"], r["delivered"]) for r in context["retries"]] == [(1, 3, 1), (2, 1, 1)]
    assert context["dlq"]["size"] == 1 and context["dlq"]["growth_last_hour"] == 1
    assert re.search(r'id="dash-records">5<', text) and re.search(r'id="dash-dlq-size">1<', text)
    assert re.search(r'<tr id="ack-partner_api"><td>partner_api</td><td class="kind-number">5</td><td class="kind-number">'
                     r'40.0%</td><td class="kind-number">20.0%</td><td class="kind-number">20.0%</td>', text)
    assert text.count("<polyline") >= 2 and 'class="bar"' in text  # rate and ack lines; latency and retry bars
    assert "No deliveries in the last hour." not in text
