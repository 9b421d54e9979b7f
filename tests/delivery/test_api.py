"""Gamma's runbook paths, called the way the manual calls them (curl -d sends form encoding)."""
import pytest
from rest_framework.test import APIClient

from delivery.models import BreakerTransition, CircuitBreaker, DeadLetter, OperationRun
from delivery.operations import dlq_export_run, dlq_replay_run
from opsconsole.models import AuditEntry
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE
from tests.delivery.conftest import ROUTE_TO_PARTNER, http_destination
from tests.delivery.test_delivery_services import deliver, ingest

pytestmark = pytest.mark.django_db
G = "/api/gamma/admin"


def curl_post(client, path, body: str = ""):
    """What `curl -X POST http://gamma:8080/admin/... -d '{...}'` sends."""
    return client.generic("POST", path, body.encode(), content_type="application/x-www-form-urlencoded")


@pytest.fixture
def gamma(apply_config, sink):
    apply_config(sources=[PUSH_SOURCE], destinations=[http_destination(sink.url), FILE_DESTINATION],
                 routes=[ROUTE_TO_PARTNER])
    return sink


def test_runbook_c2_walkthrough(gamma, operator_client):
    gamma.fail(1, status=400)
    deliver(ingest(3))
    stats = operator_client.get(f"{G}/dlq/stats").json()
    assert stats["size"] == 3
    page = operator_client.get(f"{G}/dlq/entries?limit=2&offset=0").json()
    assert page["count"] == 3 and len(page["results"]) == 2
    assert operator_client.get(f"{G}/dlq/entries?category=permanent&state=new").json()["count"] == 3
    analysis = operator_client.get(f"{G}/dlq/analysis").json()
    assert analysis["failure_reasons"][0]["count"] == 3
    ids = [e["id"] for e in page["results"]]
    replayed = curl_post(operator_client, f"{G}/dlq/replay", '{"entry_ids": [%d, %d]}' % tuple(ids))
    assert replayed.status_code == 200 and replayed.json()["replayed"] == 2
    purge = curl_post(operator_client, f"{G}/dlq/purge", '{"filter": {"category": "permanent"}}')
    assert purge.status_code == 400 and "reason" in purge.json()["error"]
    purge = curl_post(operator_client, f"{G}/dlq/purge", '{"filter": {"category": "permanent"}, "reason": "bad data"}')
    assert purge.json()["purged"] == 1
    detail = operator_client.get(f"{G}/dlq/entries/{ids[0]}").json()
    assert detail["state"] == "replayed" and detail["payload"]["id"].startswith("r")


def test_correct_via_api(gamma, operator_client):
    gamma.fail(1, status=400)
    deliver(ingest(1))
    entry = DeadLetter.objects.get()
    response = operator_client.post(f"{G}/dlq/entries/{entry.id}/correct", {"payload": {"id": "fixed"}, "note": "n"},
                                    format="json")
    assert response.status_code == 200 and response.json()["state"] == "corrected"
    bad = operator_client.post(f"{G}/dlq/entries/{entry.id}/correct", {"payload": [1]}, format="json")
    assert bad.status_code == 409 or bad.status_code == 400


def test_large_replay_runs_as_an_operation_with_progress(gamma, operator_client, monkeypatch):
    import delivery.operations

    monkeypatch.setattr(delivery.operations, "SYNC_LIMIT", 2)
    monkeypatch.setattr(delivery.operations, "CHUNK", 2)
    gamma.fail(1, status=400)
    deliver(ingest(5))
    response = curl_post(operator_client, f"{G}/dlq/replay", '{"filter": {"category": "permanent"}}')
    assert response.status_code == 202
    run_id = response.json()["operation_id"]
    assert operator_client.get(f"{G}/operations/{run_id}").json()["status"] == "queued"
    dlq_replay_run(run_id)  # what the delivery.dlq_replay_run task does on a worker
    run = operator_client.get(f"{G}/operations/{run_id}").json()
    assert run["status"] == "done" and run["done"] == run["total"] == 5 and run["result"]["replayed"] == 5
    assert run["progress"] == 1.0


def test_export_job_and_download(gamma, operator_client):
    gamma.fail(1, status=400)
    deliver(ingest(2))
    response = operator_client.post(f"{G}/dlq/export-jobs", {"format": "csv"}, format="json")
    assert response.status_code == 202
    run_id = response.json()["id"]
    assert operator_client.get(f"{G}/operations/{run_id}/download").status_code == 409  # not done yet
    dlq_export_run(run_id)
    download = operator_client.get(f"{G}/operations/{run_id}/download")
    assert download.status_code == 200
    text = b"".join(download.streaming_content).decode()
    assert text.startswith("entry_id,") and len(text.strip().splitlines()) == 3
    assert OperationRun.objects.get(id=run_id).result["rows"] == 2


def test_circuit_breaker_status_and_reset(gamma, operator_client, viewer_client):
    gamma.fail(3, status=503)
    for i in range(3):
        deliver(ingest(1, start=i))
    status = viewer_client.get(f"{G}/circuit-breakers/status").json()
    assert status["open"] == ["partner_api"]
    assert status["recent_transitions"][0]["target_state"] == "open"
    assert curl_post(viewer_client, f"{G}/circuit-breakers/partner_api/reset").status_code == 403
    reset = curl_post(operator_client, f"{G}/circuit-breakers/partner_api/reset", '{"reason": "recovered"}')
    assert reset.status_code == 200 and reset.json()["state"] == "CLOSED"
    assert BreakerTransition.objects.filter(target_state="closed").exists()
    assert AuditEntry.objects.filter(action="circuit_breaker.reset", reason="recovered").exists()
    assert curl_post(operator_client, f"{G}/circuit-breakers/nope/reset").status_code == 404
    assert CircuitBreaker.objects.get(destination_id="partner_api").state == "closed"


def test_destination_test_status_errors_and_test_delivery(gamma, operator_client):
    ok = operator_client.get(f"{G}/destinations/partner_api/test").json()
    assert ok["ok"] is True and ok["latency_ms"] >= 0
    gamma.fail(1, status=401)
    denied = operator_client.get(f"{G}/destinations/partner_api/test")
    assert denied.status_code == 502 and denied.json()["error"]["category"] == "authorization"
    delivery = curl_post(operator_client, f"{G}/destinations/partner_api/test-delivery", '{"test_field": "test_value"}')
    assert delivery.status_code == 200 and delivery.json()["record_id"].startswith("test-")
    [sent] = [r for records in gamma.accepted.values() for r in records if r["record_id"].startswith("test-")]
    assert sent["data"] == {"test_field": "test_value", "_opsconsole_test": True}
    assert AuditEntry.objects.filter(action="destination.test_delivery").exists()
    gamma.fail(1, status=500)
    deliver(ingest(2))
    deliver(ingest(1, start=5))
    status = operator_client.get(f"{G}/destinations/partner_api/status").json()
    assert status["state"] == "enabled" and status["circuit_breaker"]["state"] == "CLOSED"
    assert status["attempts"] == 2 and status["success_rate"] == 0.5
    assert status["latency_ms"]["p50"] is not None
    errors = operator_client.get(f"{G}/destinations/partner_api/errors?since=1h").json()
    assert errors["count"] == 1 and errors["errors"][0]["http_status"] == 500
    assert operator_client.get(f"{G}/destinations/partner_api/errors?since=soon").status_code == 400
    assert operator_client.get(f"{G}/destinations/nope/status").status_code == 404


def test_roles_on_gamma_paths(gamma, viewer_client):
    assert APIClient().get(f"{G}/dlq/stats").status_code in (401, 403)
    assert viewer_client.get(f"{G}/dlq/stats").status_code == 200
    assert curl_post(viewer_client, f"{G}/dlq/replay", '{"entry_ids": [1]}').status_code == 403
    assert curl_post(viewer_client, f"{G}/destinations/partner_api/test-delivery", '{"a": 1}').status_code == 403
