"""The Beta runbook paths: roles (Viewers read, operators act), audit, clear 4xx on bad input."""
import json
import time

import pytest
from rest_framework.test import APIClient

from ingestion.services import records_ingest
from opsconsole.models import AuditEntry
from tests.conftest import FILE_DESTINATION, PHONE_RULE, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE
from tests.pipeline.test_services import good_record
from transform.cache import cache_store
from transform.choices import RefreshState
from transform.models import CacheRefresh
from transform.services import batch_transform, cache_refresh_run

from .conftest import csv_source

pytestmark = pytest.mark.django_db


@pytest.fixture
def beta_config(apply_beta, countries_csv):
    return apply_beta(sources=[PUSH_SOURCE], rules=[PHONE_RULE], enrichment=[csv_source(countries_csv)],
                      destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])


def test_every_path_needs_authentication(client):
    anonymous = APIClient()
    for path in ("/api/beta/admin/cache/status", "/api/beta/admin/quality/stats", "/api/beta/admin/drain",
                 "/api/beta/metrics"):
        assert anonymous.get(path).status_code in (401, 403)


def test_viewers_read_but_may_not_act(beta_config, viewer_client):
    for path in ("/api/beta/admin/cache/status", "/api/beta/admin/cache/stats", "/api/beta/admin/cache/refresh/status",
                 "/api/beta/admin/cache/export", "/api/beta/admin/quality/stats", "/api/beta/admin/quality/distribution",
                 "/api/beta/admin/quality/low-scores?threshold=0.5&limit=100", "/api/beta/admin/quality/dimensions",
                 "/api/beta/admin/drain", "/api/beta/admin/queues/depth"):
        assert viewer_client.get(path).status_code == 200, path
    for path in ("/api/beta/admin/cache/refresh/all", "/api/beta/admin/cache/refresh/countries",
                 "/api/beta/admin/cache/import", "/api/beta/admin/cache/clear", "/api/alpha/admin/cache/clear",
                 "/api/beta/admin/drain", "/api/beta/admin/resume", "/api/beta/admin/rules/test"):
        response = viewer_client.post(path, "{}", content_type="application/json")
        assert response.status_code == 403, path
        assert "error" in response.json()
    assert not AuditEntry.objects.filter(action__startswith="beta.").exists()


def test_cache_refresh_runs_in_background_with_progress(beta_config, operator_client):
    response = operator_client.post("/api/beta/admin/cache/refresh/all")
    assert response.status_code == 202
    job_id = response.json()["refresh"]["id"]
    # A second request while it is queued returns the same job instead of starting another.
    assert operator_client.post("/api/beta/admin/cache/refresh/all").json()["refresh"]["id"] == job_id
    status = operator_client.get("/api/beta/admin/cache/refresh/status").json()
    assert status["in_progress"] is True and status["active"][0]["state"] == "queued"
    assert cache_refresh_run(refresh_id=job_id) == RefreshState.DONE  # what the transform.cache_refresh task runs
    assert cache_refresh_run(refresh_id=job_id) is None  # a duplicate message does nothing
    status = operator_client.get("/api/beta/admin/cache/refresh/status").json()
    assert status["in_progress"] is False
    assert status["last"] | {} == {**status["last"], "state": "done", "keys_done": 3, "keys_total": 3, "percent": 100.0}
    stats = operator_client.get("/api/beta/admin/cache/stats").json()
    assert stats["entries"] == 3 and stats["sources"][0]["source"] == "countries"
    unknown = operator_client.post("/api/beta/admin/cache/refresh/nope")
    assert unknown.status_code == 404 and "Unknown enrichment source 'nope'" in unknown.json()["error"]
    assert AuditEntry.objects.filter(action="beta.cache.refresh").count() == 1


def test_export_import_and_clear(beta_config, operator_client):
    store = cache_store()
    fetched = time.time() - 100
    store.put_many("countries", {"DE": {"name": "Germany"}, "FR": None}, now=fetched, max_entries=10,
                   keep_seconds=10**10, times={"DE": fetched, "FR": fetched})
    exported = operator_client.get("/api/beta/admin/cache/export").json()
    assert exported["entries"] == 2
    cleared = operator_client.post("/api/beta/admin/cache/clear", '{"source": "countries"}',
                                   content_type="application/x-www-form-urlencoded").json()
    assert cleared["cleared"]["enrichment_entries"] == 2 and store.count("countries") == 0
    # curl -X POST .../cache/import -d @beta-cache.json: JSON sent as a form body.
    body = json.dumps(exported)
    imported = operator_client.post("/api/beta/admin/cache/import", body,
                                    content_type="application/x-www-form-urlencoded")
    assert imported.status_code == 200 and imported.json()["loaded"] == {"countries": 2}
    assert dict(store.items("countries"))["DE"].fetched_at == fetched  # ages kept
    bad = operator_client.post("/api/beta/admin/cache/import", '{"sources": {"countries": {"entries": [1]}}}',
                               content_type="application/json")
    assert bad.status_code == 400 and "entries[0]" in bad.json()["error"]
    garbage = operator_client.post("/api/beta/admin/cache/import", "not json", content_type="application/json")
    assert garbage.status_code == 400
    alpha = operator_client.post("/api/alpha/admin/cache/clear").json()
    assert alpha["module"] == "alpha"
    assert operator_client.post("/api/delta/admin/cache/clear").status_code == 404
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"beta.cache.clear", "beta.cache.import", "alpha.cache.clear"} <= actions


def test_quality_endpoints(beta_config, viewer_client):
    stale = {"id": "old", "timestamp": "2020-01-01T00:00:00Z", "payload": {}}
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(1), good_record(2), stale], origin="t")
    batch_transform(batch_id=str(batch.id))
    stats = viewer_client.get("/api/beta/admin/quality/stats").json()
    assert stats["scored"] == 3 and stats["levels"]["ok"] == 2 and stats["levels"]["warn"] == 1
    assert stats["thresholds"] == {"warn": 0.7, "error": 0.5, "reject": 0.3}
    distribution = viewer_client.get("/api/beta/admin/quality/distribution").json()
    assert [b["count"] for b in distribution["buckets"]] == [0, 0, 0, 0, 0, 0, 1, 0, 0, 2]
    low = viewer_client.get("/api/beta/admin/quality/low-scores?threshold=0.7&limit=100").json()
    assert low["count"] == 1 and low["records"][0]["score"] == 0.62
    assert low["records"][0]["issues"][0] == "completeness: missing customer_id, transaction_date, amount"
    dims = viewer_client.get("/api/beta/admin/quality/dimensions").json()["dimensions"]
    assert dims["completeness"]["records_below_1"] == 1 and dims["timeliness"]["average"] == pytest.approx(2 / 3, 1e-3)
    assert dims["completeness"]["top_issues"][0]["count"] == 1
    for bad in ("threshold=abc", "threshold=2", "limit=0", "limit=x"):
        response = viewer_client.get(f"/api/beta/admin/quality/low-scores?{bad}")
        assert response.status_code == 400 and "error" in response.json()


def test_drain_and_resume_paths(beta_config, operator_client, viewer_client):
    response = operator_client.post("/api/beta/admin/drain", '{"reason": "state backup"}',
                                    content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json()["draining"] is True and response.json()["drained"] is True
    pushed = operator_client.post("/api/sources/api_source_1/records", json.dumps([good_record(1)]),
                                  content_type="application/json")
    assert pushed.status_code == 503 and "draining" in pushed.json()["error"]
    assert viewer_client.get("/api/beta/admin/drain").json()["draining"] is True
    assert operator_client.post("/api/beta/admin/resume").json()["accepting"] is True
    assert AuditEntry.objects.get(action="beta.drain").reason == "state backup"


def test_rule_test_endpoint_and_beta_metrics(beta_config, operator_client):
    body = {"rule": PHONE_RULE, "records": [{"phone_number": "555 123 4567"}, {"x": 1}]}
    result = operator_client.post("/api/beta/admin/rules/test", json.dumps(body), content_type="application/json").json()
    assert result["summary"]["changed"] == 1 and result["results"][0]["after"] == {"phone_number": "+15551234567"}
    invalid = {"rule_yaml": "rule_id: X\ntransform: {type: cast, config: {field: a, to: money}}", "records": "[]"}
    response = operator_client.post("/api/beta/admin/rules/test", json.dumps(invalid), content_type="application/json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "transform.config.to"
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(1, phone_number="555-123-4567")],
                             origin="t")
    batch_transform(batch_id=str(batch.id))
    text = operator_client.get("/api/beta/metrics").content.decode()
    assert 'beta_rule_matches_total{rule="TRX_042_NORMALIZE_PHONE"} 1.0' in text
    assert "beta_queue_depth 0.0" in text and "beta_cache_size" in text and "gamma_" not in text
    assert 'beta_quality_score{source="api_source_1"}' in text
    depth = operator_client.get("/api/beta/admin/queues/depth").json()
    assert depth == {**depth, "records": 0, "batches": 0}
    CacheRefresh.objects.all().delete()
