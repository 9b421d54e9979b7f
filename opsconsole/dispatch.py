"""Sending the next stage's task only once the rows it reads are committed (DESIGN.md §3)."""
import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def send_task_now(name: str, args: list, countdown: float | None = None) -> None:
    from opsconsole.celery import app

    try:
        app.send_task(name, args=args, countdown=countdown)
    except Exception:  # broker down: the sweeper re-sends from the database, so log and go on
        logger.exception("could not send task %s; the sweeper will re-send it", name, extra={"component": "dispatch"})


def send_after_commit(name: str, args: list, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: send_task_now(name, args, countdown))
