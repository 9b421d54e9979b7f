"""Notification channels for real: a Slack-compatible webhook served by http.server on 127.0.0.1, email
through Django's locmem backend, in-console rows; every notification recorded, none sent twice."""
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from incidents import services as s
from incidents.choices import NotificationStatus
from incidents.models import Notification
from incidents.notifications import (
    notification_mark_read,
    notification_send,
    notifications_send_due,
)
from opsconsole.errors import ApplicationError

pytestmark = pytest.mark.django_db


class Receiver:
    """A webhook endpoint: records every POST body and answers with the status codes queued in `answers`."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append({"json": json.loads(self.rfile.read(length)),
                                        "content_type": self.headers.get("Content-Type")})
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code == 200 else b"invalid_payload")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(settings):
    receiver = Receiver()
    settings.INCIDENT_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.close()


def test_declaration_notifies_every_channel_once(people, rota, webhook):
    incident = s.incident_declare(actor=people.ops1, severity="P1", summary="Nothing flows", impact="All consumers")
    rows = Notification.objects.filter(incident=incident)
    assert sorted(rows.values_list("channel", "status")) == [
        ("console", "sent"), ("email", "pending"), ("webhook", "pending")]
    assert notifications_send_due() == {"sent": 2}
    assert notifications_send_due() == {}  # nothing pending: nothing sent twice
    [hook] = webhook.bodies
    assert hook["content_type"] == "application/json"
    assert hook["json"]["text"].startswith(f"*[P1] {incident.incident_id} declared: Nothing flows*")
    assert hook["json"]["incident"] == {"id": incident.incident_id, "severity": "P1", "status": "open",
                                        "summary": "Nothing flows",
                                        "url": f"http://console.test/incidents/{incident.incident_id}/"}
    [email] = mail.outbox
    assert email.to == ["oncall1@example.com"] and email.subject == f"[P1] {incident.incident_id} declared: Nothing flows"
    assert "Impact: All consumers" in email.body
    assert all(n.status == "sent" and n.sent_at for n in rows)
    webhook_row = rows.get(channel="webhook")
    assert notification_send(notification_id=webhook_row.pk) == "skipped"  # a duplicate task does nothing
    assert len(webhook.bodies) == 1
    assert incident.timeline.filter(kind="notification", message__startswith="Notifying oncall1").exists()


def test_webhook_url_from_a_secret_reference(people, webhook, settings, monkeypatch):
    monkeypatch.setenv("INCIDENT_HOOK_URL", webhook.url)
    settings.INCIDENT_WEBHOOK_URL = "env:INCIDENT_HOOK_URL"
    s.incident_declare(actor=people.ops1, severity="P3", summary="Source adapter down")
    notifications_send_due()
    assert len(webhook.bodies) == 1 and "Source adapter down" in webhook.bodies[0]["json"]["text"]


def test_webhook_failures_retry_with_backoff_then_fail_and_are_recorded(people, webhook, settings):
    settings.INCIDENT_NOTIFICATION_MAX_ATTEMPTS = 3
    webhook.answers = [500, 503, 500]
    incident = s.incident_declare(actor=people.ops1, severity="P2", summary="Flaky hook")
    row = Notification.objects.get(incident=incident, channel="webhook")
    now = timezone.now()
    assert notification_send(notification_id=row.pk, now=now) == "retry"
    row.refresh_from_db()
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at == now + timedelta(seconds=30)
    assert "webhook answered 500" in row.last_error
    assert notification_send(notification_id=row.pk, now=now + timedelta(seconds=10)) == "skipped"  # not due yet
    assert notification_send(notification_id=row.pk, now=now + timedelta(seconds=31)) == "retry"
    assert notification_send(notification_id=row.pk, now=now + timedelta(minutes=5)) == "failed"
    row.refresh_from_db()
    assert row.status == NotificationStatus.FAILED and row.attempts == 3 and len(webhook.bodies) == 3
    assert incident.timeline.filter(kind="notification", message__contains="failed after 3 attempt(s)").exists()


def test_webhook_client_errors_fail_at_once(people, webhook):
    webhook.answers = [400]
    incident = s.incident_declare(actor=people.ops1, severity="P2", summary="Bad payload")
    row = Notification.objects.get(incident=incident, channel="webhook")
    assert notification_send(notification_id=row.pk) == "failed"


def test_unreachable_webhook_is_retried(people, settings):
    settings.INCIDENT_WEBHOOK_URL = "http://127.0.0.1:1/hook"  # nothing listens on port 1
    incident = s.incident_declare(actor=people.ops1, severity="P2", summary="No hook")
    row = Notification.objects.get(incident=incident, channel="webhook")
    assert notification_send(notification_id=row.pk) == "retry"
    row.refresh_from_db()
    assert "webhook unreachable" in row.last_error


def test_email_skipped_without_address_and_channels_configurable(people, settings):
    incident = s.incident_declare(actor=people.ops1, severity="P4", summary="Docs gap")
    s.incident_escalate(actor=people.ops1, incident=incident, reason_kind="expertise", reason="ask the lead")
    lead_email = Notification.objects.get(incident=incident, recipient=people.lead, channel="email")
    assert lead_email.status == "skipped" and lead_email.last_error == "no email address"
    settings.INCIDENT_NOTIFICATION_CHANNELS = ["console"]
    other = s.incident_declare(actor=people.ops1, severity="P4", summary="Console only")
    assert set(Notification.objects.filter(incident=other).values_list("channel", flat=True)) == {"console"}


def test_console_notifications_are_read_by_their_recipient(people, rota):
    incident = s.incident_declare(actor=people.ops1, severity="P1", summary="p1")
    mine = Notification.objects.get(incident=incident, recipient=people.oncall1, channel="console")
    with pytest.raises(ApplicationError) as exc:
        notification_mark_read(user=people.ops2, notification=mine)
    assert exc.value.status_code == 403
    assert notification_mark_read(user=people.oncall1, notification=mine).read_at
