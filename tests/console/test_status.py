"""The pipeline status badge (HEALTHY/DEGRADED/UNHEALTHY) from real signals."""
from datetime import timedelta

import pytest
from django.utils import timezone

from delivery.models import BatchDelivery, DeadLetter
from ingestion.choices import BatchStage
from ingestion.models import Batch, Record
from ingestion.services import records_ingest
from monitoring.selectors import DEGRADED, HEALTHY, UNHEALTHY, pipeline_status
from tests.pipeline.test_services import good_record

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
