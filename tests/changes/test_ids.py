"""Change ids CHG-YYYY-MMDD-NNN: per-day sequences, race-free under concurrent creation on PostgreSQL."""
import threading
from datetime import date

import pytest
from django.db import connection, transaction

from changes import services
from changes.models import ChangeRequest
from tests.changes.conftest import form
from tests.conftest import make_user


def test_format_matches_the_manuals_example(db):
    # The manual's configuration header: "Change ID: CHG-2024-0115-001".
    assert services.change_id_next(day=date(2024, 1, 15)) == "CHG-2024-0115-001"
    assert services.change_id_next(day=date(2024, 1, 15)) == "CHG-2024-0115-002"
    assert services.change_id_next(day=date(2024, 1, 16)) == "CHG-2024-0116-001"


@pytest.mark.django_db(transaction=True)
def test_concurrent_creation_never_repeats_an_id():
    assert connection.vendor == "postgresql"
    user = make_user("racer", "Operations Team")
    threads_count = 12
    barrier = threading.Barrier(threads_count)
    ids, errors = [], []

    def create():
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                change = services.change_create(actor=user, data=form(title="race"))
                ids.append(change.change_id)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(ids) == threads_count == len(set(ids))
    numbers = sorted(int(i.rsplit("-", 1)[1]) for i in ids)
    assert numbers == list(range(1, threads_count + 1))
    assert ChangeRequest.objects.count() == threads_count
