"""The pipeline status badge (HEALTHY/DEGRADED/UNHEALTHY) from real signals."""
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import BatchDelivery, DeadLetter
from ingestion.choices import BatchStage
from ingestion.models import Batch, Record
from ingestion.services import buffer_resize, ingestion_pause, ingestion_resume, records_ingest
from monitoring.selectors import DEGRADED, HEALTHY, UNHEALTHY, pipeline_status
from tests.conftest import FILE_DESTINATION
from tests.incidents.test_signals import trip
from tests.pipeline.test_services import good_record
from transform.services import beta_drain, beta_resume

pytestmark = pytest.mark.django_db


def test_an_empty_pipeline_is_healthy(db):
    assert pipeline_status() == pipeline_status().__class__(HEALTHY, [])


def test_fresh_in_flight_work_is_healthy(console_config):
    records_ingest(source_id="api_source_1", origin="t", records=[good_record(1)])
    assert pipeline_status().level == HEALTHY


def test_retrying_deliveries_and_dlq_growth_degrade(pipeline_data):
    status = pipeline_status()
    assert status.level == DEGRADED
    assert status.reasons == ["dead letter queue grew by 1 in the last hour", "1 deliveries retrying after errors"]


def test_dead_letters_older_than_an_hour_no_longer_count(pipeline_data):
    DeadLetter.objects.update(last_failed_at=timezone.now() - timedelta(hours=2))
    BatchDelivery.objects.update(last_error="")
    assert pipeline_status().level == HEALTHY


def test_a_batch_waiting_longer_than_the_stuck_threshold_is_unhealthy(pipeline_data, settings):
    assert settings.PIPELINE_STUCK_AFTER_SECONDS == 5
    Batch.objects.filter(stage=BatchStage.VALIDATED).update(created_at=timezone.now() - timedelta(seconds=6))
    status = pipeline_status()
    assert status.level == UNHEALTHY
    assert status.reasons[0] == "1 batch(es) awaiting transformation for more than 5 s"
    assert "1 deliveries retrying after errors" in status.reasons  # the lesser signals are listed too


def test_a_delivery_never_attempted_is_unhealthy(pipeline_data):
    BatchDelivery.objects.filter(status="pending").update(
        attempts=0, last_error="", next_attempt_at=None, created_at=timezone.now() - timedelta(minutes=1)
    )
    DeadLetter.objects.update(last_failed_at=timezone.now() - timedelta(hours=2))
    assert pipeline_status().reasons == ["1 deliveries not attempted for more than 5 s"]


def test_dlq_growth_above_100_an_hour_is_unhealthy(pipeline_data):
    dead = DeadLetter.objects.get()
    record = Record.objects.get(id=dead.record_id)
    DeadLetter.objects.bulk_create(
        DeadLetter(record=record, batch_id=dead.batch_id, source_id=dead.source_id, destination_id=f"d{i}",
                   category="transient", reason="x", attempts=1, first_failed_at=dead.first_failed_at,
                   last_failed_at=timezone.now(), retry_eligible=True)
        for i in range(100)
    )
    status = pipeline_status()
    assert status.level == UNHEALTHY and "dead letter queue grew by 101 in the last hour" in status.reasons


def test_status_badge_partial(pipeline_data, viewer_console):
    response = viewer_console.get("/partials/status/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'class="badge status-warn"' in body and ">DEGRADED<" in body
    assert "1 deliveries retrying after errors" in body  # the reasons, on hover


# --- every module's health checks: Alpha (switch, buffer, sources), Beta (drain), Gamma (breakers) ---


def test_ingestion_paused_by_an_operator_degrades(console_config, operator):
    ingestion_pause(actor=operator, reason="vendor maintenance")
    assert pipeline_status() == pipeline_status().__class__(DEGRADED, ["ingestion paused by an operator"])
    ingestion_resume(actor=operator)
    assert pipeline_status().level == HEALTHY


def test_buffer_at_the_throttle_threshold_degrades_and_a_full_buffer_is_unhealthy(console_config, operator):
    records_ingest(source_id="api_source_1", origin="t", records=[good_record(i) for i in range(1, 5)])
    buffer_resize(actor=operator, capacity=6)  # 67%: a warning on the Alpha dashboard, not a badge signal
    assert pipeline_status().level == HEALTHY
    buffer_resize(actor=operator, capacity=5)  # 80%: throttled
    assert pipeline_status().reasons == ["ingestion buffer at 80% of 5 records: ingestion throttled"]
    assert pipeline_status().level == DEGRADED
    buffer_resize(actor=operator, capacity=4)  # 100%: ingestion paused by back-pressure
    status = pipeline_status()
    assert status.level == UNHEALTHY
    assert status.reasons == ["ingestion buffer full (100% of 4 records): ingestion paused until Module Beta drains it"]


def test_an_unhealthy_enabled_source_degrades(apply_config, tmp_path):
    def file_source(source_id: str, enabled: bool) -> dict:
        return {"source_id": source_id, "source_type": "file", "enabled": enabled,
                "connection": {"path": str(tmp_path / "missing")}, "parsing": {"format": "jsonl"},
                "validation": {"required_fields": ["id"]}}

    apply_config(sources=[file_source("file_src", True), file_source("file_off", False)],
                 destinations=[FILE_DESTINATION])
    status = pipeline_status()
    assert status.level == DEGRADED and status.reasons == ["source file_src UNHEALTHY"]  # a disabled one is not
    (tmp_path / "missing").mkdir()
    assert pipeline_status().level == HEALTHY


def test_beta_draining_degrades(console_config, operator):
    beta_drain(actor=operator, reason="database backup")
    assert pipeline_status().reasons == ["Module Beta draining: ingestion refuses new records until resumed"]
    assert pipeline_status().level == DEGRADED
    beta_resume(actor=operator)
    assert pipeline_status().level == HEALTHY


def test_an_open_circuit_breaker_degrades_and_all_open_is_unhealthy(console_config):
    trip("analytics_warehouse")
    status = pipeline_status()
    assert status.level == DEGRADED
    assert status.reasons == ["circuit breaker OPEN for analytics_warehouse: its deliveries are held"]
    trip("local_archive")
    status = pipeline_status()
    assert status.level == UNHEALTHY
    assert status.reasons == ["circuit breakers OPEN for all destinations (analytics_warehouse, local_archive): "
                              "nothing is delivered"]
