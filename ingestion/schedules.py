"""One django-celery-beat schedule per enabled rest_api source, kept in step with the applied configuration.

configuration.services calls `poll_schedules_sync()` inside every reload and rollback transaction, so
beat starts, re-times and stops polls with the configuration that is applied, never another one.
Rows are saved or deleted one by one: their signals tell a running beat (PeriodicTasks) to reload.
"""
import json

from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from .choices import SourceType
from .models import Source

TASK = "ingestion.poll_source"
PREFIX = "alpha.poll:"


def poll_task_name(source_id: str) -> str:
    return f"{PREFIX}{source_id}"


def poll_schedules_sync() -> dict[str, list[str]]:
    """Create, update or remove the poll schedules; returns the source ids per change."""
    wanted = {
        s.source_id: s.spec for s in Source.objects.filter(source_type=SourceType.REST_API, enabled=True)
    }
    existing = {t.name: t for t in PeriodicTask.objects.filter(name__startswith=PREFIX)}
    changes: dict[str, list[str]] = {"created": [], "updated": [], "removed": []}
    for source_id, spec in sorted(wanted.items()):
        every = int((spec.get("polling") or {}).get("interval_seconds") or 60)
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        args = json.dumps([source_id])
        # A tick older than its interval is stale: the next one polls anyway.
        fields = {"task": TASK, "interval": interval, "args": args, "queue": "alpha", "expire_seconds": every,
                  "enabled": True, "description": f"Poll rest_api source {source_id} every {every} s"}
        task = existing.pop(poll_task_name(source_id), None)
        if task is None:
            PeriodicTask.objects.create(name=poll_task_name(source_id), **fields)
            changes["created"].append(source_id)
        elif any(getattr(task, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(task, key, value)
            task.save()
            changes["updated"].append(source_id)
    for name, task in existing.items():
        task.delete()
        changes["removed"].append(name[len(PREFIX):])
    if any(changes.values()):
        PeriodicTasks.update_changed()
    return changes
