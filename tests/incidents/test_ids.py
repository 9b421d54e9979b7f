"""INC-YYYYMMDD-NNNN under concurrent declarations on PostgreSQL: no duplicates, no gaps, per-day."""
import threading
from datetime import UTC, datetime

import pytest
from django.db import connection

from incidents import services as s
from incidents.models import Incident
from opsconsole.errors import ApplicationError

pytestmark = pytest.mark.django_db


def run_threads(count: int, work) -> list:
    barrier = threading.Barrier(count)
    results, errors = [], []

    def target(i):
        try:
            barrier.wait()
            results.extend(work(i))
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_declarations_get_distinct_consecutive_ids(people):
    day = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)

    def work(i):
        return [s.incident_declare(actor=people.ops1, severity="P4", summary=f"t{i}-{n}", now=day).incident_id
                for n in range(3)]

    ids = run_threads(8, work)
    assert len(ids) == 24 and len(set(ids)) == 24
    assert sorted(ids) == [f"INC-20250304-{n:04d}" for n in range(1, 25)]
    assert Incident.objects.count() == 24


def test_sequences_are_per_day_in_the_configured_zone(people, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    late = datetime(2025, 3, 4, 23, 30, tzinfo=UTC)  # already 5 March in Berlin
    assert s.incident_declare(actor=people.ops1, severity="P4", summary="a", now=late).incident_id == "INC-20250305-0001"
    assert s.incident_declare(actor=people.ops1, severity="P4", summary="b",
                              now=datetime(2025, 3, 4, 12, 0, tzinfo=UTC)).incident_id == "INC-20250304-0001"


def test_a_rolled_back_declaration_leaves_no_trace(people):
    day = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    with pytest.raises(ApplicationError):
        s.incident_declare(actor=people.ops1, severity="P4", summary="x", components=[("source", "missing")], now=day)
    assert s.incident_declare(actor=people.ops1, severity="P4", summary="y", now=day).incident_id == "INC-20250304-0001"
