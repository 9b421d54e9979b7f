"""Runbook A paths: pause/resume, source status/test/drain, buffer status/resize and back-pressure,
validation failure listing and summary, roles, audit, metrics."""
import socket

import pytest
from rest_framework.test import APIClient

from ingestion.models import Batch, Record, SourceState
from ingestion.polling import source_poll
from ingestion.services import records_ingest
from opsconsole import roles
from opsconsole.models import AuditEntry
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE, client_for, make_user
from tests.pipeline.test_services import good_record

from .conftest import oauth2_auth, rest_source
from .servers import make_record

pytestmark = pytest.mark.django_db
PUSH_URL = "/api/sources/api_source_1/records"


@pytest.fixture
def pusher(db) -> APIClient:
    return client_for(make_user("pusher", roles.INGEST_CLIENT))


@pytest.fixture
def configured(apply_config, source_api, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    file_source = {"source_id": "file_src", "source_type": "file", "enabled": True,
                   "connection": {"path": str(inbox)}, "parsing": {"format": "jsonl"},
                   "validation": {"required_fields": ["id"]}}
    source_api.add([make_record(i) for i in range(5)])
    apply_config(sources=[PUSH_SOURCE, rest_source(source_api), file_source,
                          rest_source(source_api, "off_src", enabled=False)],
                 destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    return {"api": source_api, "inbox": inbox}


def audit_actions() -> list[str]:
    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def test_pause_all_refuses_pushes_with_retry_after_and_skips_polls_and_scans(configured, operator_client, pusher):
    response = operator_client.post("/api/alpha/admin/pause", '{"reason": "state backup"}', content_type="text/plain")
    assert response.status_code == 200, response.content
    assert response.json()["paused"] is True

    refused = pusher.post(PUSH_URL, [good_record(1)], format="json")
    assert refused.status_code == 503 and refused["Retry-After"] == "30"
    assert refused.json()["reason"] == "paused"
    assert source_poll(source_id="rest_src").reason == "paused"
    (configured["inbox"] / "a.jsonl").write_text('{"id": 1}\n')
    from ingestion.files import file_source_scan

    assert file_source_scan(source_id="file_src").get("paused") == 1
    assert Record.objects.count() == 0 and configured["api"].data_requests == 0

    assert operator_client.post("/api/alpha/admin/resume").json()["paused"] is False
    assert pusher.post(PUSH_URL, [good_record(1)], format="json").status_code == 202
    assert source_poll(source_id="rest_src").ingested == 5
    assert {"alpha.pause", "alpha.resume"} <= set(audit_actions())
    pause = AuditEntry.objects.get(action="alpha.pause")
    assert pause.actor_name == "oper" and pause.reason == "state backup"


def test_pause_one_source(configured, operator_client, pusher):
    response = operator_client.post("/api/alpha/admin/sources/rest_src/pause", {"reason": "vendor outage"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "paused"
    assert source_poll(source_id="rest_src").reason == "source paused"
    assert pusher.post(PUSH_URL, [good_record(1)], format="json").status_code == 202  # others go on
    assert operator_client.post("/api/alpha/admin/sources/rest_src/resume").json()["status"] == "active"
    assert source_poll(source_id="rest_src").ingested == 5
    assert operator_client.post("/api/alpha/admin/sources/nope/pause").status_code == 404


def test_status_answers_the_runbook_fields_and_disabled(configured, viewer_client):
    source_poll(source_id="rest_src")
    body = viewer_client.get("/api/alpha/admin/sources/rest_src/status").json()
    assert body["status"] == "active" and body["health"] == "HEALTHY" and body["connection_status"] == 1
    assert body["records_last_minute"] == 5 and body["records_last_hour"] == 5
    assert body["buffered"] == 5
    assert body["last_poll"]["outcome"] == "ok" and body["last_success_at"] and body["last_error"] is None
    assert body["polling"]["scheduled"] is True and body["polling"]["interval_seconds"] == 60
    assert viewer_client.get("/api/alpha/admin/sources/off_src/status").json()["status"] == "disabled"
    assert viewer_client.get("/api/ingestion/sources/off_src").json()["status"] == "disabled"  # the resource path
    assert viewer_client.get("/api/alpha/admin/sources/nope/status").status_code == 404
    grid = viewer_client.get("/api/alpha/admin/sources/status").json()
    assert {row["source_id"] for row in grid} == {"api_source_1", "rest_src", "file_src", "off_src"}


def _refusing_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _silent_server():
    """Accepts connections and never answers: a timeout."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock


def test_source_test_reports_latency_and_the_precise_failure(apply_config, source_api, operator_client, monkeypatch):
    monkeypatch.setenv("TEST_CLIENT_ID", "cid")
    monkeypatch.setenv("TEST_CLIENT_SECRET", "right")
    source_api.auth = "oauth2"
    source_api.clients = {"cid": "right"}
    silent = _silent_server()
    http_port = source_api.base_url.rsplit(":", 1)[1]
    sources = [
        rest_source(source_api, "ok_src", auth=oauth2_auth(source_api)),
        {**rest_source(source_api, "dns_src"), "connection": {"endpoint": "http://no-such-host.invalid/data", "timeout_ms": 1000}},
        {**rest_source(source_api, "refused_src"), "connection": {"endpoint": f"http://127.0.0.1:{_refusing_port()}/d", "timeout_ms": 1000}},
        {**rest_source(source_api, "slow_src"), "connection": {"endpoint": f"http://127.0.0.1:{silent.getsockname()[1]}/d", "timeout_ms": 300}},
        {**rest_source(source_api, "tls_src"), "connection": {"endpoint": f"https://127.0.0.1:{http_port}/data", "timeout_ms": 1000}},
        rest_source(source_api, "unauth_src", auth=oauth2_auth(source_api, client_secret_ref="env:TEST_WRONG_SECRET")),
        rest_source(source_api, "noauth_src"),  # the server wants a token, the source sends none: 401 at the endpoint
        rest_source(source_api, "secret_src", auth=oauth2_auth(source_api, client_secret_ref="env:TEST_UNSET_SECRET")),
    ]
    monkeypatch.setenv("TEST_WRONG_SECRET", "wrong")
    monkeypatch.delenv("TEST_UNSET_SECRET", raising=False)
    apply_config(sources=sources, destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    try:
        ok = operator_client.get("/api/alpha/admin/sources/ok_src/test").json()
        assert ok["ok"] is True and ok["latency_ms"] > 0 and ok["status_code"] == 200
        assert [s["step"] for s in ok["steps"]] == ["credentials", "token", "fetch", "parse"]
        expected = {"dns_src": "dns", "refused_src": "refused", "slow_src": "timeout", "tls_src": "tls",
                    "unauth_src": "unauthorized", "noauth_src": "unauthorized", "secret_src": "secret"}
        for source_id, kind in expected.items():
            body = operator_client.get(f"/api/alpha/admin/sources/{source_id}/test").json()
            assert body["ok"] is False and body["failure"]["kind"] == kind, (source_id, body)
            assert body["latency_ms"] is not None
        assert "right" not in str(ok) and "wrong" not in str(body)
    finally:
        silent.close()
    assert AuditEntry.objects.filter(action="alpha.source.test").count() == 8
    assert SourceState.objects.get(source_id="refused_src").last_test["failure"]["kind"] == "refused"


def test_drain_pushes_buffered_records_through_now(configured, operator_client, viewer_client):
    records_ingest(source_id="api_source_1", records=[good_record(i) for i in range(6)], origin="t", batch_size=2)
    assert viewer_client.get("/api/alpha/admin/buffer").json()["by_source"] == {"api_source_1": 6}
    assert viewer_client.get("/api/alpha/admin/sources/api_source_1/drain").status_code == 403
    body = operator_client.get("/api/alpha/admin/sources/api_source_1/drain").json()
    assert body["drained_records"] == 6 and body["drained_batches"] == 3 and body["remaining"] == 0
    assert not Batch.objects.filter(stage="validated").exists()
    assert operator_client.post("/api/alpha/admin/sources/api_source_1/drain").json()["drained_records"] == 0
    assert AuditEntry.objects.filter(action="alpha.source.drain").count() == 2


def test_back_pressure_warns_throttles_then_pauses_and_drops_nothing(configured, operator_client, pusher, settings):
    settings.ALPHA_THROTTLE_INTERVAL_SECONDS = 60
    response = operator_client.post("/api/alpha/admin/buffer/resize", '{"capacity": 10}', content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    assert response.json()["capacity"] == 10 and response.json()["previous_capacity"] == 100_000

    assert pusher.post(PUSH_URL, [good_record(i) for i in range(6)], format="json").status_code == 202
    status = operator_client.get("/api/alpha/admin/buffer/status").json()
    assert status["utilization"] == 0.6 and status["level"] == "warning"

    assert pusher.post(PUSH_URL, [good_record(i) for i in range(6, 8)], format="json").status_code == 202
    assert operator_client.get("/api/alpha/admin/buffer").json()["level"] == "throttle"
    assert pusher.post(PUSH_URL, [good_record(8)], format="json").status_code == 202  # first in the interval
    throttled = pusher.post(PUSH_URL, [good_record(9)], format="json")
    assert throttled.status_code == 429 and throttled["Retry-After"] == "60"

    settings.ALPHA_THROTTLE_INTERVAL_SECONDS = 0
    assert pusher.post(PUSH_URL, [good_record(9)], format="json").status_code == 202  # 10 of 10: full
    full = pusher.post(PUSH_URL, [good_record(10)], format="json")
    assert full.status_code == 503 and full.json()["reason"] == "buffer_full" and full["Retry-After"] == "5"
    assert source_poll(source_id="rest_src").reason == "buffer_full"
    assert configured["api"].data_requests == 1 or Record.objects.filter(source_id="rest_src").count() == 0

    operator_client.post("/api/alpha/admin/sources/api_source_1/drain")
    assert operator_client.get("/api/alpha/admin/buffer").json()["level"] == "normal"
    assert pusher.post(PUSH_URL, [good_record(10)], format="json").status_code == 202
    assert source_poll(source_id="rest_src").ingested == 5  # the source kept what it could not send
    assert Record.objects.filter(source_id="api_source_1").count() == 11
    from ingestion.models import BufferEvent

    levels = list(BufferEvent.objects.filter(kind="level").order_by("id").values_list("level", flat=True))
    assert levels[:3] == ["warning", "throttle", "full"]
    assert AuditEntry.objects.filter(action="alpha.buffer.resize").exists()


def test_buffer_resize_rejects_bad_input(configured, operator_client, viewer_client):
    for body in ('{"capacity": 0}', '{"capacity": "lots"}', "{}", '{"capacity": 1.5}'):
        response = operator_client.post("/api/alpha/admin/buffer/resize", body, content_type="application/json")
        assert response.status_code == 400, (body, response.content)
        assert "error" in response.json()
    assert viewer_client.post("/api/alpha/admin/buffer/resize", '{"capacity": 5}', content_type="application/json").status_code == 403


def test_validation_failures_listing_filters_and_last_hour_summary(configured, viewer_client):
    records_ingest(source_id="api_source_1", origin="t",
                   records=[good_record(1), {"id": "a"}, {"id": "b"}, {**good_record(2), "payload": "text"}])
    listing = viewer_client.get("/api/alpha/admin/validation-failures?error_code=MISSING_REQUIRED_FIELD").json()
    assert listing["count"] == 2 and {r["field"] for r in listing["results"]} == {"timestamp"}
    assert viewer_client.get("/api/ingestion/validation-failures?field=payload").json()["count"] == 1
    future = viewer_client.get("/api/ingestion/validation-failures?created_after=2999-01-01T00:00:00Z").json()
    assert future["count"] == 0
    summary = viewer_client.get("/api/alpha/admin/validation-failures/summary").json()
    assert summary["hours"] == 1
    rows = {(r["source_id"], r["error_code"]): r["count"] for r in summary["rows"]}
    assert rows == {("api_source_1", "MISSING_REQUIRED_FIELD"): 2, ("api_source_1", "SCHEMA_TYPE"): 1}
    assert viewer_client.get("/api/alpha/admin/validation-failures/summary?hours=x").status_code == 400


def test_roles_viewers_read_operators_act_anonymous_nothing(configured, viewer_client):
    anonymous = APIClient()
    for method, url in [("get", "/api/alpha/admin/sources/rest_src/status"), ("post", "/api/alpha/admin/pause"),
                        ("get", "/api/alpha/admin/buffer")]:
        assert getattr(anonymous, method)(url).status_code in (401, 403)
    for url in ["/api/alpha/admin/pause", "/api/alpha/admin/resume", "/api/alpha/admin/sources/rest_src/pause",
                "/api/alpha/admin/sources/rest_src/resume", "/api/alpha/admin/sources/rest_src/poll"]:
        assert viewer_client.post(url).status_code == 403, url
    for url in ["/api/alpha/admin/sources/rest_src/test", "/api/alpha/admin/sources/rest_src/drain"]:
        assert viewer_client.get(url).status_code == 403, url
    for url in ["/api/alpha/admin/sources/rest_src/status", "/api/alpha/admin/buffer", "/api/alpha/admin/sources/status",
                "/api/alpha/admin/validation-failures", "/api/alpha/admin/sources/rest_src/errors", "/api/alpha/metrics"]:
        assert viewer_client.get(url).status_code == 200, url
    assert not AuditEntry.objects.filter(action__startswith="alpha.").exists()


def test_metrics_have_source_labels_and_alpha_gauges(configured, viewer_client, operator_client):
    source_poll(source_id="rest_src")
    configured["api"].fail_next("500")
    source_poll(source_id="rest_src")
    text = viewer_client.get("/api/alpha/metrics").content.decode()
    assert 'alpha_records_ingested_total{source="rest_src"} 5.0' in text
    assert 'alpha_buffer_utilization{source=""} 5e-05' in text
    assert 'alpha_buffer_utilization{source="rest_src"} 5e-05' in text
    assert 'alpha_source_connection_status{source="rest_src"} 1.0' in text  # reached; answered 500
    assert 'alpha_source_connection_status{source="file_src"} 1.0' in text
    assert 'alpha_active_connections{source="rest_src"} 1.0' in text
    assert 'alpha_source_errors_total{kind="server_error",source="rest_src"} 1.0' in text
    assert 'alpha_source_fetch_duration_seconds_count{source="rest_src"} 1.0' in text
    assert 'alpha_parse_duration_seconds_count{source="rest_src"}' in text
    assert "off_src" not in text.split("alpha_source_connection_status")[1].split("#")[0]
    assert "gamma_" not in text and "beta_" not in text
    operator_client.post("/api/alpha/admin/sources/rest_src/pause")
    text = viewer_client.get("/metrics").content.decode()
    assert 'alpha_active_connections{source="rest_src"} 0.0' in text


def test_source_with_unresolvable_reference_shows_it_in_status_and_test(apply_config, source_api, operator_client, monkeypatch):
    monkeypatch.delenv("TEST_NOPE", raising=False)
    apply_config(sources=[rest_source(source_api, auth={"auth_type": "bearer", "auth_config": {"token_ref": "env:TEST_NOPE"}})],
                 destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    for _ in range(3):
        source_poll(source_id="rest_src")
    status = operator_client.get("/api/alpha/admin/sources/rest_src/status").json()
    assert status["health"] == "UNHEALTHY" and status["connection_status"] == 0
    assert status["last_error"]["kind"] == "secret" and "TEST_NOPE" in status["last_error"]["message"]
    test = operator_client.get("/api/alpha/admin/sources/rest_src/test").json()
    assert test["ok"] is False and test["failure"]["kind"] == "secret" and test["failure"]["stage"] == "credentials"
