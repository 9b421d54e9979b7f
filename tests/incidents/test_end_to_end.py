"""Escalation through the real stack: a real `celery worker -B` (django-celery-beat) fires the durable
timers; the worker is killed and a new one started; each escalation and each webhook happens exactly once.
The clock is controlled by declaring incidents in the past."""
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import services as s
from incidents.models import Escalation, EscalationTimer
from tests.conftest import wait_for

from .test_notifications import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def webhook_env(monkeypatch, settings):
    """Read by the worker processes (their settings come from the environment) and by this process."""
    receiver = Receiver()
    monkeypatch.setenv("INCIDENT_ESCALATION_INTERVAL_SECONDS", "1")
    monkeypatch.setenv("INCIDENT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("INCIDENT_NOTIFICATION_CHANNELS", "console,webhook")
    settings.INCIDENT_WEBHOOK_URL = receiver.url
    settings.INCIDENT_NOTIFICATION_CHANNELS = ["console", "webhook"]
    yield receiver
    receiver.close()


def declared_ago(people, severity: str, minutes: int, summary: str):
    """An incident declared `minutes` ago whose initial response came a minute later."""
    then = timezone.now() - timedelta(minutes=minutes)
    incident = s.incident_declare(actor=people.ops1, severity=severity, summary=summary, now=then)
    return s.incident_investigate(actor=people.oncall1, incident=incident, now=then + timedelta(minutes=1))


def engaged(incident) -> Counter:
    return Counter(Escalation.objects.filter(incident=incident, level__isnull=False).values_list("level", flat=True))


def hooks(receiver) -> Counter:
    return Counter(body["json"]["text"].split(":", 1)[0] for body in receiver.bodies)


def test_worker_restart_neither_skips_nor_repeats_escalations(webhook_env, people, rota, celery_worker_process):
    first = declared_ago(people, "P2", 35, "first")  # its 30 min level is due, the 1 h level is not
    worker = celery_worker_process()
    wait_for(lambda: engaged(first)[1] == 1 and len(webhook_env.bodies) >= 2, timeout=60,
             message="the first worker engages level 1 and posts the webhooks", on_fail=worker.log_tail)
    worker.kill()  # a crashed machine: no clean shutdown

    second = declared_ago(people, "P1", 65, "second")  # while no worker runs: levels 1 and 2 come due
    restarted = celery_worker_process()
    wait_for(lambda: engaged(second) == Counter({0: 1, 1: 1, 2: 1}) and len(webhook_env.bodies) >= 5, timeout=60,
             message="the new worker catches up", on_fail=restarted.log_tail)
    # A few more beat cycles change nothing.
    wait_for(lambda: EscalationTimer.objects.filter(incident=second, level__in=[1, 2], fired_at__isnull=False).count() == 2,
             timeout=10, message="timers marked fired")
    time.sleep(3)
    assert engaged(first) == Counter({0: 1, 1: 1}) and engaged(second) == Counter({0: 1, 1: 1, 2: 1})
    assert hooks(webhook_env) == Counter({
        f"*[P2] {first.incident_id} declared": 1, f"*[P2] {first.incident_id} escalated to Senior Engineer": 1,
        f"*[P1] {second.incident_id} declared": 1, f"*[P1] {second.incident_id} escalated to Engineering Manager": 1,
        f"*[P1] {second.incident_id} escalated to Director": 1,
    })
