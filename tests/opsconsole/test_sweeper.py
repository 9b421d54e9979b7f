"""The sweeper re-sends batches and deliveries whose messages were lost."""
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from delivery.models import BatchDelivery
from ingestion.models import Batch
from ingestion.services import records_ingest
from opsconsole.sweeper import stuck_batches_resend
from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE
from tests.pipeline.test_services import good_record
from transform.services import batch_transform

pytestmark = pytest.mark.django_db


@pytest.fixture
def queues():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    return client


def test_stuck_batches_and_deliveries_are_resent_once_per_period(apply_config, queues):
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    [waiting] = records_ingest(source_id="api_source_1", records=[good_record(1)], origin="t")
    [routed] = records_ingest(source_id="api_source_1", records=[good_record(2)], origin="t")
    batch_transform(batch_id=str(routed.id))
    assert stuck_batches_resend(older_than_seconds=60) == {"batches": 0, "deliveries": 0}  # fresh work is left alone
    old = timezone.now() - timedelta(minutes=5)
    Batch.objects.filter(id=waiting.id).update(updated_at=old)
    BatchDelivery.objects.update(updated_at=old)
    assert stuck_batches_resend(older_than_seconds=60) == {"batches": 1, "deliveries": 1}
    assert queues.llen("beta") == 1 and queues.llen("gamma") == 1
    assert Batch.objects.get(id=waiting.id).sends == 2
    # Touched: the next sweep inside the period does not send them again.
    assert stuck_batches_resend(older_than_seconds=60) == {"batches": 0, "deliveries": 0}


def test_a_delivery_waiting_for_its_backoff_is_not_resent(apply_config, queues):
    apply_config(sources=[PUSH_SOURCE], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])
    [batch] = records_ingest(source_id="api_source_1", records=[good_record(1)], origin="t")
    batch_transform(batch_id=str(batch.id))
    BatchDelivery.objects.update(updated_at=timezone.now() - timedelta(minutes=5),
                                 next_attempt_at=timezone.now() + timedelta(minutes=1))
    assert stuck_batches_resend(older_than_seconds=60)["deliveries"] == 0
    assert queues.llen("gamma") == 0
