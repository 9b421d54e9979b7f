"""Config reload keeps one django-celery-beat schedule per enabled rest_api source, and tells beat."""
import json

import pytest
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from tests.conftest import FILE_DESTINATION, PUSH_SOURCE, ROUTE_ALL_TO_ARCHIVE

from .conftest import rest_source

pytestmark = pytest.mark.django_db


class _Api:
    base_url = "http://127.0.0.1:9"


def poll_tasks() -> dict:
    return {t.name: t for t in PeriodicTask.objects.filter(name__startswith="alpha.poll:")}


def last_update():
    return PeriodicTasks.objects.filter(ident=1).values_list("last_update", flat=True).first()


def test_reload_creates_updates_and_removes_poll_schedules(apply_config):
    def apply(*sources):
        return apply_config(sources=[PUSH_SOURCE, *sources], destinations=[FILE_DESTINATION], routes=[ROUTE_ALL_TO_ARCHIVE])

    apply(rest_source(_Api, "a_src", interval=60), rest_source(_Api, "b_src", interval=5))
    tasks = poll_tasks()
    assert set(tasks) == {"alpha.poll:a_src", "alpha.poll:b_src"}  # none for the push source
    a = tasks["alpha.poll:a_src"]
    assert a.task == "ingestion.poll_source" and json.loads(a.args) == ["a_src"] and a.queue == "alpha"
    assert a.interval.every == 60 and a.interval.period == "seconds" and a.expire_seconds == 60 and a.enabled
    first = last_update()
    assert first is not None

    apply(rest_source(_Api, "a_src", interval=30), rest_source(_Api, "b_src", interval=5, enabled=False))
    tasks = poll_tasks()
    assert set(tasks) == {"alpha.poll:a_src"} and tasks["alpha.poll:a_src"].interval.every == 30
    assert tasks["alpha.poll:a_src"].id == a.id  # updated in place
    second = last_update()
    assert second > first  # a running beat reloads its schedule

    version = apply()
    assert poll_tasks() == {}
    assert version.changed
    from opsconsole.models import AuditEntry

    details = AuditEntry.objects.filter(action="config.reload").order_by("-id").first().details
    assert details["poll_schedules"]["removed"] == ["a_src"]


def test_an_unchanged_reload_repairs_a_deleted_schedule(apply_config):
    parts = {"sources": [rest_source(_Api, "a_src")], "destinations": [FILE_DESTINATION], "routes": [ROUTE_ALL_TO_ARCHIVE]}
    apply_config(**parts)
    PeriodicTask.objects.filter(name="alpha.poll:a_src").delete()
    version = apply_config(**parts)
    assert not version.changed
    assert "alpha.poll:a_src" in poll_tasks()
