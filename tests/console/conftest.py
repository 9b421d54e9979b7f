"""Console fixtures: a logged-in Viewer and a pipeline with real records in every accounted place,
made by the real services (config reload, ingest, transform, deliver)."""
import pytest
from django.test import Client

from delivery.models import BatchDelivery
from delivery.services import batch_deliver
from ingestion.services import records_ingest
from opsconsole import roles
from tests.conftest import FILE_DESTINATION, PHONE_RULE, PUSH_SOURCE, make_user, postgres_destination
from tests.pipeline.test_services import good_record
from transform.services import batch_transform

ORDERS_SOURCE = {
    "source_id": "orders_feed", "source_type": "http_push", "enabled": True,
    "parsing": {"format": "json"}, "validation": {"required_fields": ["id"]},
}
# A phone number that is not a string makes the rule fail; on_failure: fail sends the record to the DLQ.
STRICT_PHONE_RULE = {**PHONE_RULE, "on_failure": "fail"}
ARCHIVE = {**FILE_DESTINATION, "authorization": {"data_classification": "internal", "allowed_sources": ["api_source_1"]}}
# Nothing listens on port 1: every attempt fails with a transient error, then the delivery is retried.
WAREHOUSE = {**postgres_destination("opsconsole_nowhere", port=1, retry_count=1),
             "authorization": {"data_classification": "internal", "allowed_sources": ["orders_feed"]}}
ROUTES = [
    {"rule_id": "ROUTE_API_TO_ARCHIVE", "enabled": True, "priority": 100,
     "match": {"source_id": {"in": ["api_source_1"]}}, "destination": "local_archive"},
    {"rule_id": "ROUTE_ORDERS_TO_WAREHOUSE", "enabled": True, "priority": 200,
     "match": {"source_id": {"in": ["orders_feed"]}}, "destination": "analytics_warehouse"},
]


@pytest.fixture
def console_config(apply_config, monkeypatch):
    monkeypatch.setenv("TEST_WAREHOUSE_USER", "postgres")
    monkeypatch.setenv("TEST_WAREHOUSE_PASSWORD", "unused")
    return apply_config(sources=[PUSH_SOURCE, ORDERS_SOURCE], rules=[STRICT_PHONE_RULE],
                        destinations=[ARCHIVE, WAREHOUSE], routes=ROUTES)


@pytest.fixture
def pipeline_data(console_config):
    """api_source_1: 2 delivered, 1 dead-lettered (transform), 1 rejected, 1 still in flight;
    orders_feed: 1 routed to a warehouse that refuses connections (retrying after an error)."""
    [done] = records_ingest(
        source_id="api_source_1", origin="console-test",
        records=[good_record(1), good_record(2), good_record(3, phone_number=5551234567), {"id": "x", "payload": {}}],
    )
    batch_transform(batch_id=str(done.id))
    assert batch_deliver(batch_id=str(done.id), destination_id="local_archive") == "delivered"
    [retrying] = records_ingest(source_id="orders_feed", origin="console-test", records=[good_record(10)])
    batch_transform(batch_id=str(retrying.id))
    assert batch_deliver(batch_id=str(retrying.id), destination_id="analytics_warehouse") == "retry"
    [waiting] = records_ingest(source_id="api_source_1", origin="console-test", records=[good_record(20)])
    return {"done": done, "retrying": retrying, "waiting": waiting,
            "failed_delivery": BatchDelivery.objects.get(batch=retrying)}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_user(db):
    return make_user("console-viewer", roles.VIEWER)


@pytest.fixture
def operator_user(db):
    return make_user("console-operator", roles.OPERATIONS_TEAM)


@pytest.fixture
def viewer_console(viewer_user) -> Client:
    return login(viewer_user)


@pytest.fixture
def operator_console(operator_user) -> Client:
    return login(operator_user)
