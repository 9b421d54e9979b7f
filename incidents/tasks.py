"""Incident tasks: thin, idempotent, routed to the ops queue (CELERY_TASK_ROUTES "ops.*")."""
from celery import shared_task

from .escalation import escalation_timers_fire_due
from .notifications import notification_send, notifications_send_due
from .pipeline_signals import pipeline_signals_check


@shared_task(name="ops.incidents_escalate_due")
def incidents_escalate_due() -> dict:
    """Beat: fire due escalation timers (matrix levels, response and mitigation triggers), then send any
    notification still pending (lost messages, retries with backoff)."""
    fired = escalation_timers_fire_due()
    sent = notifications_send_due()
    return {"timers_fired": fired, "notifications": dict(sent)}


@shared_task(name="ops.incidents_send_notification")
def incidents_send_notification(notification_id: int) -> str:
    return notification_send(notification_id=notification_id)


@shared_task(name="ops.incidents_check_pipeline_signals")
def incidents_check_pipeline_signals() -> list[str]:
    """Beat: open (or find) incidents for circuit breakers and dead letter queue growth."""
    return [f"{incident.incident_id}{' (new)' if created else ''}" for incident, created in pipeline_signals_check()]
