"""Records through the real stack: HTTP push -> a real Celery worker on Redis -> PostgreSQL and file
destinations, counted exactly once, also when the worker is SIGKILLed mid-run."""
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from ingestion.selectors import reconciliation
from opsconsole import roles
from tests.conftest import (
    FILE_DESTINATION, PHONE_RULE, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE, ROUTE_TO_ANALYTICS, make_user,
    postgres_destination, wait_for, warehouse_rows,
)
from tests.pipeline.test_services import good_record

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOTAL = 10_000
INVALID_EVERY = 50  # every 50th record lacks its payload: 200 rejected with a reason


def records(start: int, count: int) -> list[dict]:
    out = []
    for i in range(start, start + count):
        record = good_record(i, phone_number=f"555.{i % 1000:03d}.{i % 10000:04d}")
        if i % INVALID_EVERY == 0:
            del record["payload"]
        out.append(record)
    return out


def push_all(base_url: str, token: str, *, chunk: int = 1000) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=60) as client:
        for start in range(0, TOTAL, chunk):
            response = client.post("/api/sources/api_source_1/records", json=records(start, chunk))
            assert response.status_code == 202, response.text


def archive_ids() -> Counter:
    root = Path(settings.PIPELINE_OUTPUT_DIR) / "local_archive"
    return Counter(json.loads(line)["record_id"] for f in root.rglob("*.jsonl") for line in f.read_text().splitlines())


@pytest.fixture
def stack(apply_config, warehouse, live_server, celery_worker_process):
    apply_config(
        sources=[PUSH_SOURCE], rules=[PHONE_RULE], destinations=[FILE_DESTINATION, postgres_destination(warehouse)],
        routes=[ROUTE_TO_ANALYTICS, ROUTE_ALL_TO_ARCHIVE],
    )
    token = Token.objects.create(user=make_user("client", roles.INGEST_CLIENT)).key
    return {"url": live_server.url, "token": token, "warehouse": warehouse, "start_worker": celery_worker_process}


def settled() -> dict | None:
    total = reconciliation()["total"]
    return total if total["ingested"] == TOTAL and total["in_flight"] == 0 else None


def assert_exactly_once(stack) -> None:
    invalid = TOTAL // INVALID_EVERY
    total = reconciliation()["total"]
    assert total["balanced"] is True
    assert total["rejected"] == invalid
    assert total["delivered"] == TOTAL - invalid
    assert total["dlq"] == total["held"] == total["filtered"] == 0
    rows = warehouse_rows(stack["warehouse"])
    assert len(rows) == TOTAL - invalid
    assert {row[1]["phone_number"][:5] for row in rows} == {"+1555"}  # TRX_042 applied to every record
    ids = archive_ids()
    assert len(ids) == TOTAL - invalid and max(ids.values()) == 1  # the file destination has no duplicates
    assert set(ids) == {row[0] for row in rows}


def test_ten_thousand_records_delivered_exactly_once(stack):
    worker = stack["start_worker"]()
    push_all(stack["url"], stack["token"])
    wait_for(settled, timeout=240, message="all records settled", on_fail=worker.log_tail)
    assert_exactly_once(stack)


def test_worker_killed_mid_run_loses_and_duplicates_nothing(stack):
    worker = stack["start_worker"]()
    push_all(stack["url"], stack["token"])
    wait_for(lambda: reconciliation()["total"]["delivered"] > 0, timeout=120, message="first deliveries",
             on_fail=worker.log_tail)
    worker.kill()
    at_kill = reconciliation()["total"]
    assert at_kill["in_flight"] > 0, "the worker finished before it was killed; the test proves nothing"
    restarted = stack["start_worker"]()
    wait_for(settled, timeout=300, message="all records settled after restart", on_fail=restarted.log_tail)
    assert_exactly_once(stack)
