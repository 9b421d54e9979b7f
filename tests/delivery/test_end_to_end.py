"""An HTTP destination outage through the real stack: a real worker with beat, a real HTTP server.
The breaker opens, records are held (not dead-lettered), the outage ends, the sweeper's probe closes
the breaker, and every record arrives exactly once."""
import httpx
import pytest
from rest_framework.authtoken.models import Token

from delivery.models import BreakerTransition, DeadLetter
from ingestion.selectors import reconciliation
from opsconsole import roles
from tests.conftest import PUSH_SOURCE, make_user, wait_for
from tests.delivery.conftest import ROUTE_TO_PARTNER, http_destination
from tests.pipeline.test_services import good_record

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
TOTAL = 600


def test_outage_holds_records_and_recovery_delivers_each_once(apply_config, sink, live_server, celery_worker_process):
    spec = http_destination(sink.url, delivery={"batch_size": 100, "retry_delay_ms": 100},
                            circuit_breaker={"failure_threshold": 3, "cooldown_seconds": 1})
    apply_config(sources=[PUSH_SOURCE], destinations=[spec], routes=[ROUTE_TO_PARTNER])
    token = Token.objects.create(user=make_user("client", roles.INGEST_CLIENT)).key
    sink.fail(10_000, status=503)  # the partner is down
    worker = celery_worker_process()
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Token {token}"}, timeout=30) as client:
        for start in range(0, TOTAL, 100):
            response = client.post("/api/sources/api_source_1/records",
                                   json=[good_record(i) for i in range(start, start + 100)])
            assert response.status_code == 202
    wait_for(lambda: reconciliation()["total"]["held"] == TOTAL, timeout=60, message="all records held",
             on_fail=worker.log_tail)
    assert DeadLetter.objects.count() == 0
    calls_while_down = len(sink.requests)
    assert calls_while_down < 15  # the open breaker stops the hammering
    with sink.lock:
        sink.script.clear()  # the partner recovers
    wait_for(lambda: reconciliation()["total"]["delivered"] == TOTAL, timeout=90, message="all records delivered",
             on_fail=worker.log_tail)
    ids = sink.delivered_ids()
    assert len(ids) == TOTAL and len(set(ids)) == TOTAL
    assert reconciliation()["total"]["balanced"]
    states = list(BreakerTransition.objects.order_by("id").values_list("target_state", flat=True))
    assert states[0] == "open" and states[-1] == "closed" and "half_open" in states
