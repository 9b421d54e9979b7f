"""A rest_api source polled by beat and a real Celery worker, killed mid-run and restarted: every record
the upstream API serves is ingested and delivered exactly once (the cursor commits with the records)."""
import time

import pytest

from ingestion.models import Record
from ingestion.selectors import reconciliation
from tests.conftest import FILE_DESTINATION, ROUTE_ALL_TO_ARCHIVE, wait_for

from .conftest import rest_source
from .servers import make_record

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOTAL = 150
ARCHIVE = {**FILE_DESTINATION, "authorization": {"data_classification": "internal", "allowed_sources": ["rest_src"]}}


def settled() -> bool:
    total = reconciliation()["total"]
    return total["ingested"] == TOTAL and total["in_flight"] == 0


def test_beat_polls_through_a_worker_kill_without_gaps_or_repeats(source_api, apply_config, celery_worker_process):
    source_api.add([make_record(i) for i in range(TOTAL // 2)])
    # One page of 25 per poll, one poll a second: the run lasts long enough to be cut in the middle.
    apply_config(sources=[rest_source(source_api, batch_size=25, interval=1, polling={"max_pages": 1})],
                 destinations=[ARCHIVE], routes=[ROUTE_ALL_TO_ARCHIVE])
    worker = celery_worker_process()
    wait_for(lambda: Record.objects.count() >= 25, timeout=60, message="first polls", on_fail=worker.log_tail)
    worker.kill()
    at_kill = Record.objects.count()
    assert at_kill < TOTAL // 2, "the worker took everything before it was killed; the test proves nothing"
    source_api.add([make_record(i) for i in range(TOTAL // 2, TOTAL)])  # more arrives while Alpha is down
    time.sleep(0.5)
    restarted = celery_worker_process()
    wait_for(settled, timeout=90, message="all records polled and delivered", on_fail=restarted.log_tail)
    ids = list(Record.objects.values_list("payload__id", flat=True))
    assert len(ids) == len(set(ids)) == TOTAL
    total = reconciliation()["total"]
    assert total["balanced"] and total["delivered"] == TOTAL
