"""/metrics: the manual's counter names with source/destination labels, exact across processes."""
import pytest
from rest_framework.test import APIClient

from ingestion.services import records_ingest
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE
from tests.pipeline.test_services import good_record, run_batch

pytestmark = pytest.mark.django_db


def test_metrics_need_auth_and_show_pipeline_counters(apply_config, viewer_client):
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(1), good_record(2), {"id": 1}], origin="t")
    run_batch(batch)
    assert APIClient().get("/metrics").status_code in (401, 403)
    text = viewer_client.get("/metrics").content.decode()
    assert 'alpha_records_ingested_total{source="api_source_1"} 3.0' in text
    assert 'alpha_records_validated_total{source="api_source_1"} 2.0' in text
    assert 'alpha_validation_failures_total{error_code="SCHEMA_TYPE",source="api_source_1"} 1.0' in text \
        or 'alpha_validation_failures_total{error_code="MISSING_REQUIRED_FIELD",source="api_source_1"} 1.0' in text
    assert 'beta_records_transformed_total{source="api_source_1"} 2.0' in text
    assert 'gamma_records_delivered_total{destination="local_archive"} 2.0' in text
    assert "gamma_dlq_size 0.0" in text
    assert 'gamma_delivery_duration_seconds_bucket{destination="local_archive",le="+Inf"} 1.0' in text
    assert 'gamma_delivery_duration_seconds_bucket{destination="local_archive",le="0.01"}' in text
    assert 'pipeline_end_to_end_latency_seconds_count{source="api_source_1"} 2.0' in text
    assert 'alpha_validation_duration_seconds_count{source="api_source_1"} 1.0' in text
    assert 'beta_transform_duration_seconds_count{source="api_source_1"} 1.0' in text
    assert 'module_latency_seconds_count{module="alpha"} 1.0' in text
    assert 'beta_queue_depth 0.0' in text
    assert "django_http_requests" in text  # django-prometheus request metrics ride along


def test_health_and_readiness(viewer_client):
    assert viewer_client.get("/healthz").json() == {"status": "ok"}
    ready = viewer_client.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert ready.json()["status"] == "ready"


def test_openapi_schema_is_served_to_authenticated_users(viewer_client):
    response = viewer_client.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/sources/{source_id}/records" in response.content
    assert APIClient().get("/api/schema/").status_code in (401, 403)


def test_histogram_buckets_are_cumulative_with_the_manuals_bounds(db, viewer_client):
    from monitoring.metrics import PARSE_BUCKETS
    from monitoring.services import histogram_observe

    histogram_observe("alpha_parse_duration_seconds", {"source": "s"}, PARSE_BUCKETS, [0.0005, 0.003, 0.003, 2.0])
    text = viewer_client.get("/metrics").content.decode()
    assert 'alpha_parse_duration_seconds_bucket{le="0.001",source="s"} 1.0' in text
    assert 'alpha_parse_duration_seconds_bucket{le="0.005",source="s"} 3.0' in text
    assert 'alpha_parse_duration_seconds_bucket{le="0.1",source="s"} 3.0' in text
    assert 'alpha_parse_duration_seconds_bucket{le="+Inf",source="s"} 4.0' in text
    assert 'alpha_parse_duration_seconds_count{source="s"} 4.0' in text
    assert 'alpha_parse_duration_seconds_sum{source="s"} 2.0065' in text
